// Validation shared by every Storage handler, so LMDB and memory reject exactly the same inputs
// with the same errors, and nothing is written when anything in a request is invalid.

import { z } from 'zod'
import { InvalidInput, invalidInput } from '../errors.js'
import { NAMESPACE_NAME, type BatchOp, type RangeOptions, type StorageKey } from './store.js'
import { MAX_KEY_BYTES, encodeKey } from './key-order.js'

export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024

// Control characters and lone surrogates would be escaped or replaced by lmdb's key encoder, so
// such a key would not read back as written.
const FORBIDDEN_KEY_TEXT = /[\u0000-\u001f]|\p{Cs}/u
const KeyText = z.string().refine((s) => !FORBIDDEN_KEY_TEXT.test(s), 'key strings may not contain control characters or lone surrogates')
// z.number() already refuses NaN and ±Infinity; -0 would sort apart from 0, so it becomes 0.
const KeyNumber = z.number().transform((n) => (Object.is(n, -0) ? 0 : n))
const KeyPart = z.union([KeyText, KeyNumber])
const KeySchema = z.union([KeyPart, z.array(KeyPart).min(1)])

export interface CheckedKey {
  /** the key as it will read back: a one-element array becomes its element */
  readonly key: StorageKey
  readonly bytes: Uint8Array
}

// LMDB never needs the encoded bytes (it encodes keys itself), MemoryStorage always does: they
// are computed on first use, unless the length check already had to.
class ValidKey implements CheckedKey {
  readonly key: StorageKey
  #bytes: Uint8Array | undefined

  constructor(key: StorageKey, bytes?: Uint8Array) {
    this.key = key
    this.#bytes = bytes
  }

  get bytes(): Uint8Array {
    return (this.#bytes ??= encodeKey(this.key))
  }
}

// Fast path. A UTF-16 unit takes at most 3 bytes in UTF-8 (a surrogate pair 4 for 2 units), and a
// string may gain one escape byte, so a string this short cannot exceed the key limit; a number
// takes at most 9 bytes, plus one separator inside an array.
const SAFE_KEY_UNITS = Math.floor((MAX_KEY_BYTES - 1) / 3)

/** Worst-case encoded size of a key part that is certainly valid, or -1 when it needs the full check. */
function plainPartBytes(part: unknown): number {
  if (typeof part === 'string') return part.length <= SAFE_KEY_UNITS && !FORBIDDEN_KEY_TEXT.test(part) ? part.length * 3 + 1 : -1
  if (typeof part === 'number') return Number.isFinite(part) ? 9 : -1
  return -1
}

const normalPart = (part: string | number): string | number => (Object.is(part, -0) ? 0 : part)

/**
 * The normalized form of a key that the schema below would certainly accept within the size
 * limit (short strings, finite numbers, short arrays of them), or undefined when it takes the
 * full check. Must never accept what the full check rejects, nor normalize differently.
 */
function plainKey(input: unknown): StorageKey | undefined {
  if (!Array.isArray(input)) return plainPartBytes(input) < 0 ? undefined : normalPart(input as string | number)
  if (input.length === 0) return undefined
  // A one-element array is its element (but an array inside an array is never a plain key).
  if (input.length === 1) return plainPartBytes(input[0]) < 0 ? undefined : normalPart(input[0] as string | number)
  let bytes = 0
  for (const part of input) {
    const n = plainPartBytes(part)
    if (n < 0) return undefined
    bytes += n + 1
  }
  return bytes <= MAX_KEY_BYTES ? input.map(normalPart) : undefined
}

export function checkKey(input: unknown): CheckedKey {
  const plain = plainKey(input)
  return plain === undefined ? checkKeyFully(input) : new ValidKey(plain)
}

function checkKeyFully(input: unknown): CheckedKey {
  const parsed = KeySchema.safeParse(input)
  if (!parsed.success) throw invalidInput('storage key', parsed.error.issues)
  const key = Array.isArray(parsed.data) && parsed.data.length === 1 ? parsed.data[0]! : parsed.data
  const bytes = encodeKey(key)
  if (bytes.length > MAX_KEY_BYTES) throw new InvalidInput(`storage key exceeds ${MAX_KEY_BYTES} bytes`, { bytes: bytes.length })
  return new ValidKey(key, bytes)
}

export function checkNamespaceName(name: unknown): string {
  if (typeof name !== 'string' || !NAMESPACE_NAME.test(name)) {
    throw new InvalidInput('namespace names are 1..64 of [A-Za-z0-9_.:-]', { name })
  }
  return name
}

const RangeSchema = z
  .object({
    start: z.unknown().optional(),
    end: z.unknown().optional(),
    limit: z.number().int().nonnegative().optional(),
    reverse: z.boolean().optional(),
  })
  .strict()

export interface CheckedRange {
  start?: CheckedKey
  end?: CheckedKey
  limit?: number
  reverse: boolean
}

export function checkRange(options: RangeOptions | undefined): CheckedRange {
  const parsed = RangeSchema.safeParse(options ?? {})
  if (!parsed.success) throw invalidInput('range options', parsed.error.issues)
  const { start, end, limit, reverse } = parsed.data
  return {
    start: start === undefined ? undefined : checkKey(start),
    end: end === undefined ? undefined : checkKey(end),
    limit,
    reverse: reverse === true,
  }
}

/**
 * Rejects what neither handler can store (functions, symbols, undefined at the top) and values
 * whose estimated encoded size exceeds the limit. The estimate is close to msgpack's size for
 * bytes and strings, which is where large values come from; it stops as soon as it passes.
 */
export function checkValue(value: unknown, maxBytes: number): void {
  if (value === undefined) throw new InvalidInput('storage values may not be undefined')
  const size = flatSize(value) ?? estimateSize(value, maxBytes)
  if (size > maxBytes) throw new InvalidInput(`storage value exceeds ${maxBytes} bytes`, { maxBytes })
}

function checkValueFully(value: unknown, maxBytes: number): void {
  if (value === undefined) throw new InvalidInput('storage values may not be undefined')
  if (estimateSize(value, maxBytes) > maxBytes) throw new InvalidInput(`storage value exceeds ${maxBytes} bytes`, { maxBytes })
}

/**
 * estimateSize's figure for the common flat values (bytes, a primitive, an array of primitives
 * with at most one byte array: a stored record), without its bookkeeping; undefined for anything
 * else. Nothing in such a value can throw or be counted twice, so the figure is the same.
 */
function flatSize(value: unknown): number | undefined {
  if (typeof value !== 'object') return value === undefined ? undefined : primitiveSize(value)
  if (value === null) return 1
  if (ArrayBuffer.isView(value)) return value.byteLength + 5
  if (!Array.isArray(value)) return undefined
  let total = 5
  let views = 0
  for (let i = 0; i < value.length; i++) {
    const item: unknown = value[i]
    const size = primitiveSize(item)
    if (size !== undefined) total += size
    else if (typeof item === 'object' && item !== null && ArrayBuffer.isView(item) && views++ === 0) total += item.byteLength + 5
    else return undefined
  }
  return total
}

/** Encoded size of a primitive (null and undefined included); undefined for objects and the rest. */
function primitiveSize(v: unknown): number | undefined {
  switch (typeof v) {
    case 'string':
      return utf8Length(v) + 5
    case 'number':
    case 'bigint':
      return 9
    case 'boolean':
    case 'undefined':
      return 1
    case 'object':
      return v === null ? 1 : undefined
    default:
      return undefined
  }
}

function estimateSize(root: unknown, maxBytes: number): number {
  const seen = new Set<object>()
  let total = 0
  const stack: unknown[] = [root]
  while (stack.length > 0 && total <= maxBytes) {
    const v = stack.pop()
    const size = primitiveSize(v)
    if (size !== undefined) {
      total += size
      continue
    }
    if (typeof v === 'function' || typeof v === 'symbol') throw new InvalidInput(`storage values may not contain a ${typeof v}`)
    const obj = v as object
    if (seen.has(obj)) {
      total += 2
      continue
    }
    seen.add(obj)
    if (ArrayBuffer.isView(obj)) total += obj.byteLength + 5
    else if (obj instanceof ArrayBuffer) total += obj.byteLength + 5
    else if (obj instanceof Date) total += 12
    else if (obj instanceof Map) {
      total += 5
      for (const [k, val] of obj) stack.push(k, val)
    } else if (obj instanceof Set) {
      total += 5
      for (const item of obj) stack.push(item)
    } else if (Array.isArray(obj)) {
      total += 5
      for (const item of obj) stack.push(item)
    } else {
      total += 5
      // own enumerable string keys, as Object.entries lists them, without an array per entry
      const record = obj as Record<string, unknown>
      for (const k in record) {
        if (!Object.hasOwn(record, k)) continue
        total += utf8Length(k) + 1
        stack.push(record[k])
      }
    }
  }
  return total
}

function utf8Length(s: string): number {
  let n = 0
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i)
    if (c < 0x80) n += 1
    else if (c < 0x800) n += 2
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
      n += 4
      i++
    } else n += 3
  }
  return n
}

const BatchOpSchema = z.discriminatedUnion('type', [
  z.object({ type: z.literal('put'), namespace: z.string(), key: z.unknown(), value: z.unknown() }),
  z.object({ type: z.literal('delete'), namespace: z.string(), key: z.unknown() }),
])

export type CheckedBatchOp = { type: 'put'; namespace: string; key: CheckedKey; value: unknown } | { type: 'delete'; namespace: string; key: CheckedKey }

/** Validates a whole batch before any of it is applied (all or nothing starts here). */
export function checkBatch(ops: readonly BatchOp[], maxValueBytes: number): CheckedBatchOp[] {
  if (!Array.isArray(ops)) throw new InvalidInput('batch needs an array of operations')
  const out: CheckedBatchOp[] = new Array(ops.length)
  // Batches usually touch one or two namespaces: test each name once in a row.
  let validNamespace: string | undefined
  for (let index = 0; index < ops.length; index++) {
    const op: unknown = ops[index]
    const plain = plainOp(op, validNamespace)
    if (plain !== undefined) {
      validNamespace = plain.namespace
      // Shape, namespace and key are what the full check would have passed; the value check is the same one.
      if (plain.type === 'put') checkValue(plain.value, maxValueBytes)
      out[index] = plain
      continue
    }
    out[index] = checkOpFully(op, index, maxValueBytes)
  }
  return out
}

function checkOpFully(op: unknown, index: number, maxValueBytes: number): CheckedBatchOp {
  const parsed = BatchOpSchema.safeParse(op)
  if (!parsed.success) throw invalidInput(`batch operation ${index}`, parsed.error.issues)
  const namespace = checkNamespaceName(parsed.data.namespace)
  const key = checkKeyFully(parsed.data.key)
  if (parsed.data.type === 'delete') return { type: 'delete', namespace, key }
  checkValueFully(parsed.data.value, maxValueBytes)
  return { type: 'put', namespace, key, value: parsed.data.value }
}

/**
 * The checks without their fast paths: what checkKey, checkValue and checkBatch must agree with
 * on every input (the storage-input tests hold them to it).
 */
export const fullChecks = {
  key: checkKeyFully,
  value: checkValueFully,
  batch: (ops: readonly unknown[], maxValueBytes: number): CheckedBatchOp[] => ops.map((op, index) => checkOpFully(op, index, maxValueBytes)),
}

/** A plain-object operation whose shape, namespace and key certainly pass, or undefined for the full check. */
function plainOp(op: unknown, validNamespace: string | undefined): CheckedBatchOp | undefined {
  if (typeof op !== 'object' || op === null) return undefined
  const proto: unknown = Object.getPrototypeOf(op)
  if (proto !== Object.prototype && proto !== null) return undefined
  const { type, namespace, key: rawKey, value } = op as { type?: unknown; namespace?: unknown; key?: unknown; value?: unknown }
  if (type !== 'put' && type !== 'delete') return undefined
  if (typeof namespace !== 'string' || (namespace !== validNamespace && !NAMESPACE_NAME.test(namespace))) return undefined
  const key = plainKey(rawKey)
  if (key === undefined) return undefined
  if (type === 'delete') return { type, namespace, key: new ValidKey(key) }
  return value === undefined ? undefined : { type, namespace, key: new ValidKey(key), value }
}
