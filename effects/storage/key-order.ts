// Key encoding that reproduces the byte layout lmdb-js stores keys in (its "ordered-binary"
// format), so MemoryStorage orders keys exactly as LmdbStorage does: LMDB compares keys as raw
// bytes, and so do we. The layout, for the keys we accept (see StorageKeyInput):
//
//   number  9 bytes from the IEEE-754 bits B (big-endian):
//             positive: (B >> 4) | 1 << 60  then  (B & 0xf) << 4      first byte 0x10..0x17
//             negative: C = B ^ 0x7fff_ffff_ffff_ffff; C >> 4, then (C & 0xf) << 4   0x08..0x0f
//           standing alone, trailing zero bytes are trimmed to a length of 4, 6 or 8 (this does
//           not change the order: a trimmed key is a prefix of its untrimmed form)
//   string  UTF-8; the empty string is the single byte 27 (strings starting below U+001C get
//           that escape byte too, but we reject control characters in keys)
//   array   elements joined by a 0 byte; numbers inside arrays always take all 9 bytes
//
// Hence: negative numbers < positive numbers < strings, and arrays compare element by element
// with a shorter prefix first. A one-element array is the same key as its element (lmdb reads
// it back unwrapped), which the key validation normalizes up front.

import type { StorageKey } from './store.js'

const floatView = new DataView(new ArrayBuffer(8))
const utf8 = new TextEncoder()
const SIGN_FLIP = 0x7fff_ffff_ffff_ffffn
const TOP_NIBBLE_ONE = 1n << 60n

/** LMDB's compiled-in key limit (lmdb-js); longer keys fail at write time there. */
export const MAX_KEY_BYTES = 1978

/** The stored bytes of an already-normalized key. */
export function encodeKey(key: StorageKey): Uint8Array {
  if (typeof key === 'string') return encodeString(key)
  if (typeof key === 'number') return encodeNumber(key, true)
  const parts = key.map((part) => (typeof part === 'string' ? encodeString(part) : encodeNumber(part, false)))
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0) + parts.length - 1)
  let at = 0
  parts.forEach((p, i) => {
    if (i > 0) out[at++] = 0
    out.set(p, at)
    at += p.length
  })
  return out
}

/** Byte-wise order, shorter prefix first: LMDB's default key comparison. */
export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length)
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i]! - b[i]!
  return a.length - b.length
}

/**
 * The bytes as a string of code units 0..255: JS string comparison on it is byte-wise
 * comparison, and it can key a Map.
 */
export function keyToSortable(bytes: Uint8Array): string {
  let s = ''
  for (let i = 0; i < bytes.length; i += 8192) s += String.fromCharCode(...bytes.subarray(i, i + 8192))
  return s
}

function encodeString(s: string): Uint8Array {
  const body = utf8.encode(s)
  if (s.length > 0 && s.charCodeAt(0) >= 28) return body
  const out = new Uint8Array(body.length + 1)
  out[0] = 27
  out.set(body, 1)
  return out
}

function encodeNumber(n: number, trim: boolean): Uint8Array {
  floatView.setFloat64(0, n)
  const bits = floatView.getBigUint64(0)
  const c = n < 0 ? bits ^ SIGN_FLIP : bits
  const head = n < 0 ? c >> 4n : (c >> 4n) | TOP_NIBBLE_ONE
  const out = new Uint8Array(9)
  new DataView(out.buffer).setBigUint64(0, head)
  out[8] = Number(c & 0xfn) << 4
  if (!trim || n < 0 || out[8] !== 0) return out
  if (out[6] !== 0 || out[7] !== 0) return out.subarray(0, 8)
  if (out[4] !== 0 || out[5] !== 0) return out.subarray(0, 6)
  return out.subarray(0, 4)
}
