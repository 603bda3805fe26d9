// Validation shared by every Storage handler, so LMDB and memory reject exactly the same inputs
// with the same errors, and nothing is written when anything in a request is invalid.

import { z } from 'zod'
import { InvalidInput, invalidInput } from '../errors.js'
import { NAMESPACE_NAME, type BatchOp, type RangeOptions, type StorageKey } from './index.js'
import { MAX_KEY_BYTES, encodeKey } from './key-order.js'

export const DEFAULT_MAX_VALUE_BYTES = 16 * 1024 * 1024

// Control characters and lone surrogates would be escaped or replaced by lmdb's key encoder, so
// such a key would not read back as written.
const KeyText = z.string().refine((s) => !/[\u0000-\u001f]|\p{Cs}/u.test(s), 'key strings may not contain control characters or lone surrogates')
// z.number() already refuses NaN and ±Infinity; -0 would sort apart from 0, so it becomes 0.
const KeyNumber = z.number().transform((n) => (Object.is(n, -0) ? 0 : n))
const KeyPart = z.union([KeyText, KeyNumber])
const KeySchema = z.union([KeyPart, z.array(KeyPart).min(1)])

export interface CheckedKey {
  /** the key as it will read back: a one-element array becomes its element */
  key: StorageKey
  bytes: Uint8Array
}

export function checkKey(input: unknown): CheckedKey {
  const parsed = KeySchema.safeParse(input)
  if (!parsed.success) throw invalidInput('storage key', parsed.error.issues)
  const key = Array.isArray(parsed.data) && parsed.data.length === 1 ? parsed.data[0]! : parsed.data
  const bytes = encodeKey(key)
  if (bytes.length > MAX_KEY_BYTES) throw new InvalidInput(`storage key exceeds ${MAX_KEY_BYTES} bytes`, { bytes: bytes.length })
  return { key, bytes }
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
  const size = estimateSize(value, maxBytes)
  if (size > maxBytes) throw new InvalidInput(`storage value exceeds ${maxBytes} bytes`, { maxBytes })
}

function estimateSize(root: unknown, maxBytes: number): number {
  const seen = new Set<object>()
  let total = 0
  const stack: unknown[] = [root]
  while (stack.length > 0 && total <= maxBytes) {
    const v = stack.pop()
    switch (typeof v) {
      case 'string':
        total += utf8Length(v) + 5
        continue
      case 'number':
      case 'bigint':
        total += 9
        continue
      case 'boolean':
      case 'undefined':
        total += 1
        continue
      case 'function':
      case 'symbol':
        throw new InvalidInput(`storage values may not contain a ${typeof v}`)
    }
    if (v === null) {
      total += 1
      continue
    }
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
      for (const [k, val] of Object.entries(obj)) {
        total += utf8Length(k) + 1
        stack.push(val)
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

export type CheckedBatchOp =
  | { type: 'put'; namespace: string; key: CheckedKey; value: unknown }
  | { type: 'delete'; namespace: string; key: CheckedKey }

/** Validates a whole batch before any of it is applied (all or nothing starts here). */
export function checkBatch(ops: readonly BatchOp[], maxValueBytes: number): CheckedBatchOp[] {
  if (!Array.isArray(ops)) throw new InvalidInput('batch needs an array of operations')
  return ops.map((op, index) => {
    const parsed = BatchOpSchema.safeParse(op)
    if (!parsed.success) throw invalidInput(`batch operation ${index}`, parsed.error.issues)
    const namespace = checkNamespaceName(parsed.data.namespace)
    const key = checkKey(parsed.data.key)
    if (parsed.data.type === 'delete') return { type: 'delete', namespace, key }
    checkValue(parsed.data.value, maxValueBytes)
    return { type: 'put', namespace, key, value: parsed.data.value }
  })
}
