// Bucket dumps: the entries of a list of buckets as one byte string, so the last step of a
// Merkle walk carries the leaves themselves instead of one more level of hashes (a round trip
// less), and the reader decodes only the buckets whose hashes differ from its own:
//
//   per bucket, in the order both sides name them:
//     uint32 BE   entry count (0: the bucket is empty, nothing else follows)
//     16 bytes    the bucket's hash (merkle.ts)
//     uint32 BE   byte length of the entries that follow
//     per entry:  uint16 BE key byte length, the key (UTF-8),
//                 uint8 version-hash byte length (1..128), the version hash (UTF-8)
//
// A reader checks every length against the bytes it holds: a dump that does not describe exactly
// the buckets named is InvalidInput, before any entry is used.

import { InvalidInput } from '../../../effects/errors.js'
import { WIRE_LIMITS } from './lattice-wire.js'
import { MERKLE_HASH_BYTES, type MerkleTree } from './merkle.js'

/** Bytes of a key at most: keyLength UTF-16 units, 3 UTF-8 bytes each. */
const MAX_KEY_BYTES = 3 * WIRE_LIMITS.keyLength
const MAX_VERSION_BYTES = 128

/** A BucketDiff being filled in by one or more dumps. */
export interface BucketDiffInto {
  readonly onlyLocal: string[]
  readonly onlyRemote: string[]
  readonly different: string[]
}

/** The entries of `buckets` (bucket indices of `tree`) in the dump format above. */
export function encodeBucketDump(tree: MerkleTree, buckets: readonly number[]): Uint8Array {
  const out = new ByteWriter(64 * buckets.length)
  for (const index of buckets) {
    const bucket = tree.bucketAt(index)
    if (bucket === undefined) {
      out.uint32(0)
      continue
    }
    out.uint32(bucket.entries.size)
    out.bytes(bucket.hash)
    const lengthAt = out.skip(4)
    const from = out.length
    for (const [key, vh] of bucket.entries) {
      out.string(key, 2)
      out.string(vh, 1)
    }
    out.uint32At(lengthAt, out.length - from)
  }
  return out.done()
}

/**
 * Compares the peer's dump of `buckets` with our own buckets, adding to `into` what differs
 * (onlyLocal / onlyRemote from our side). Buckets with our hash are skipped without decoding.
 */
export function diffBucketDump(tree: MerkleTree, buckets: readonly number[], dump: Uint8Array, into: BucketDiffInto): void {
  const view = new DataView(dump.buffer, dump.byteOffset, dump.byteLength)
  const text = Buffer.from(dump.buffer, dump.byteOffset, dump.byteLength)
  const truncated = () => new InvalidInput('merkle bucket dump truncated', { bytes: dump.byteLength })
  let at = 0
  for (const index of buckets) {
    if (at + 4 > dump.byteLength) throw truncated()
    const count = view.getUint32(at)
    at += 4
    const mine = tree.bucketAt(index)
    if (count === 0) {
      if (mine !== undefined) for (const key of mine.entries.keys()) into.onlyLocal.push(key)
      continue
    }
    if (count > WIRE_LIMITS.entries) throw new InvalidInput('too many bucket entries', { entries: count, maxEntries: WIRE_LIMITS.entries })
    if (at + MERKLE_HASH_BYTES + 4 > dump.byteLength) throw truncated()
    const same = mine !== undefined && sameBytes(mine.hash, dump, at)
    at += MERKLE_HASH_BYTES
    const end = at + 4 + view.getUint32(at)
    at += 4
    if (end > dump.byteLength) throw truncated()
    const theirs = same ? undefined : new Map<string, string>()
    for (let e = 0; e < count; e++) {
      if (at + 2 > end) throw truncated()
      const keyEnd = at + 2 + view.getUint16(at)
      if (keyEnd + 1 > end) throw truncated()
      const vhLength = dump[keyEnd]!
      const vhEnd = keyEnd + 1 + vhLength
      if (vhLength === 0 || vhEnd > end) throw new InvalidInput('merkle bucket entry malformed', { bucket: index })
      if (theirs !== undefined) {
        const key = text.toString('utf8', at + 2, keyEnd)
        if (theirs.has(key)) throw new InvalidInput('merkle bucket dump repeats a key', { bucket: index })
        theirs.set(key, text.toString('utf8', keyEnd + 1, vhEnd))
      }
      at = vhEnd
    }
    if (at !== end) throw new InvalidInput('merkle bucket entries do not fill their length', { bucket: index })
    if (theirs === undefined) continue
    if (mine !== undefined)
      for (const [key, vh] of mine.entries) {
        const other = theirs.get(key)
        if (other === undefined) into.onlyLocal.push(key)
        else if (other !== vh) into.different.push(key)
        theirs.delete(key)
      }
    for (const key of theirs.keys()) into.onlyRemote.push(key)
  }
  if (at !== dump.byteLength) throw new InvalidInput('merkle bucket dump does not match the buckets asked about', { bytes: dump.byteLength, read: at })
}

function sameBytes(mine: Uint8Array, theirs: Uint8Array, at: number): boolean {
  for (let i = 0; i < mine.byteLength; i++) if (mine[i] !== theirs[at + i]) return false
  return true
}

/** An append-only byte buffer that grows by doubling. */
class ByteWriter {
  private buffer: Buffer
  private at = 0

  constructor(initial: number) {
    this.buffer = Buffer.allocUnsafe(Math.max(256, initial))
  }

  get length(): number {
    return this.at
  }

  uint32(value: number): void {
    this.reserve(4)
    this.buffer.writeUInt32BE(value, this.at)
    this.at += 4
  }

  uint32At(at: number, value: number): void {
    this.buffer.writeUInt32BE(value, at)
  }

  /** Reserves `n` bytes to be written later (uint32At); their offset. */
  skip(n: number): number {
    this.reserve(n)
    this.at += n
    return this.at - n
  }

  bytes(value: Uint8Array): void {
    this.reserve(value.byteLength)
    this.buffer.set(value, this.at)
    this.at += value.byteLength
  }

  /** `value` as UTF-8 after its byte length in `lengthBytes` (1 or 2) bytes. */
  string(value: string, lengthBytes: 1 | 2): void {
    const max = lengthBytes === 1 ? MAX_VERSION_BYTES : MAX_KEY_BYTES
    this.reserve(lengthBytes + 3 * value.length)
    const written = this.buffer.write(value, this.at + lengthBytes, 'utf8')
    if (written > max) throw new InvalidInput('merkle entry too long for a bucket dump', { bytes: written, maxBytes: max })
    if (lengthBytes === 1) this.buffer[this.at] = written
    else this.buffer.writeUInt16BE(written, this.at)
    this.at += lengthBytes + written
  }

  done(): Uint8Array {
    return new Uint8Array(this.buffer.buffer, this.buffer.byteOffset, this.at)
  }

  private reserve(n: number): void {
    if (this.at + n <= this.buffer.length) return
    const grown = Buffer.allocUnsafe(Math.max(2 * this.buffer.length, this.at + n))
    this.buffer.copy(grown, 0, 0, this.at)
    this.buffer = grown
  }
}
