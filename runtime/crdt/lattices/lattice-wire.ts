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
