// Wire values for CRDT states: plain data that both JSON and the router's MessagePack codec
// carry unchanged (Uint8Array is only for binary payloads such as Yjs updates, which
// MessagePack keeps binary). Every decoder in this folder goes through `parseWire` (the shared
// parseInput of effects/errors.ts), so a malformed message becomes InvalidInput before any state
// is touched.

import { z } from 'zod'
export { parseInput as parseWire } from '../../../effects/errors.js'

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue }

export type WireValue = null | boolean | number | string | Uint8Array | WireValue[] | { [key: string]: WireValue }

/** Limits that keep one decoded message from exhausting memory. */
export const WIRE_LIMITS = {
  replicaIdLength: 256,
  keyLength: 4096,
  entries: 1_000_000,
} as const

export const replicaIdSchema = z.string().min(1).max(WIRE_LIMITS.replicaIdLength)
export const counterSchema = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
export const jsonValueSchema: z.ZodType<JsonValue> = z.json() as z.ZodType<JsonValue>
export const bytesSchema = z.instanceof(Uint8Array)

/** Deepest JSON value the fast check walks; deeper ones go to the schema. */
const FAST_JSON_DEPTH = 64

/**
 * The fast check of a JSON value, for values as MessagePack decodes them: what it accepts,
 * jsonValueSchema accepts and returns unchanged (a copy with the same content). Plain objects and
 * dense arrays only, finite numbers, no `__proto__` key (the schema's copy would turn it into a
 * prototype), no symbol keys. Anything else is left to the schema, which stays the authority:
 * z.json()'s recursive union cost a CRDT pull more, and allocated more, than joining what it pulled.
 */
export function isJsonValue(value: unknown, depth = 0): value is JsonValue {
  if (value === null) return true
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return true
    case 'number':
      return Number.isFinite(value)
    case 'object':
      break
    default:
      return false
  }
  if (depth >= FAST_JSON_DEPTH) return false
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) if (!isJsonValue(value[i], depth + 1)) return false
    return true
  }
  return isJsonObject(value as object, depth)
}

function isJsonObject(value: object, depth: number): boolean {
  if (Object.getPrototypeOf(value) !== Object.prototype || Object.getOwnPropertySymbols(value).length > 0) return false
  const record = value as Record<string, unknown>
  for (const key in record) {
    if (!Object.hasOwn(record, key)) continue
    if (key === '__proto__' || !isJsonValue(record[key], depth + 1)) return false
  }
  return true
}

/** A non-negative safe integer: what counterSchema accepts. */
export const isCounter = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 0

/** A string of 1 to replicaIdLength code units: what replicaIdSchema accepts. */
export const isReplicaId = (value: unknown): value is string => typeof value === 'string' && value.length > 0 && value.length <= WIRE_LIMITS.replicaIdLength

/** Whether `value` is a plain object whose own keys are exactly `keys` (none undefined). */
export function hasExactly(value: unknown, keys: readonly string[]): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return false
  const record = value as Record<string, unknown>
  let own = 0
  for (const key in record) {
    if (!Object.hasOwn(record, key)) continue
    if (!keys.includes(key) || record[key] === undefined) return false
    own++
  }
  return own === keys.length && Object.getOwnPropertySymbols(record).length === 0
}

/**
 * JSON with object keys sorted, so equal values always give equal strings. Used where a
 * total order over values is needed (LWW's last tie break) and for hashing versions.
 */
export function canonicalJson(value: JsonValue): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value)
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`
  const keys = Object.keys(value).sort()
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonicalJson(value[k]!)}`).join(',')}}`
}
