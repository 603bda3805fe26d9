// Merkle digest over (key, versionHash) entries, kept incrementally. Keys are placed in buckets
// by the first `depth` hex nibbles of MurmurHash3(key); a bucket's hash covers its entries
// sorted by key, an inner node's hash covers its non-empty children, so the tree's shape depends
// only on the keys and the hashes only on the entries: two peers holding the same entries get
// the same root whatever order they learnt them in.
//
// Nodes are addressed by (level, index): level 0 is the root, level `depth` the buckets, and the
// children of node i at level L are 16·i … 16·i + 15 at level L + 1 (so an index, written as
// `level` hex digits, is the node's prefix). A write touches one bucket and marks the `depth`
// nodes above it stale, O(depth); a stale node is re-hashed when it is next read, once however
// many writes fell under it, from its children's cached hashes. So a round after k writes costs
// O(k · depth) hashing, never a pass over the entries.
//
// Hashes are sha-256 truncated to 16 bytes: a bucket's over `len:key len:vh` per entry, an inner
// node's over its child mask (uint16 big-endian, bit c = child c non-empty) and its 16 child
// slots (16 bytes each, zeros for an empty child). An inner node keeps those slots, so giving a
// peer its children or comparing them with the peer's is a copy or a compare of bytes, with no
// look-up per child. The exchange over the wire is in merkle-wire.ts.

import * as nodeCrypto from 'node:crypto'
import { InvalidInput } from '../../../effects/errors.js'
import { murmur3, utf8 } from './hash.js'

export type MerkleEntry = readonly [key: string, versionHash: string]

export interface BucketDiff {
  /** Keys only the local side has. */
  readonly onlyLocal: string[]
  /** Keys only the remote side has. */
  readonly onlyRemote: string[]
  /** Keys both have with different version hashes. */
  readonly different: string[]
}

export const MERKLE_MAX_DEPTH = 8
/** Bytes of a node hash. */
export const MERKLE_HASH_BYTES = 16
const HASH_HEX = 32

/**
 * sha-256 of `data`, by the one-shot crypto.hash where Node has it (20.12 and 21.7 on), which
 * makes no Hash object. Every Hash object is a native handle the garbage collector tracks: at 100k
 * documents an anti-entropy exchange made thousands (version, bucket and node hashes), and the
 * young-generation collections they fell to spent 2.5 of their 8 ms on such handles
 * (node --trace-gc-nvp: heap.external_weak_global_handles).
 */
const oneShot = typeof nodeCrypto.hash === 'function'
const sha256: (data: string | Uint8Array) => Uint8Array = oneShot
  ? (data) => nodeCrypto.hash('sha256', data, 'buffer')
  : (data) => nodeCrypto.createHash('sha256').update(data).digest()
const sha256Hex: (data: string | Uint8Array) => string = oneShot
  ? (data) => nodeCrypto.hash('sha256', data, 'hex')
  : (data) => nodeCrypto.createHash('sha256').update(data).digest('hex')

/** Version hash of arbitrary bytes or text (sha-256, 16 bytes, hex), for building entries. */
export function versionHash(data: string | Uint8Array): string {
  return sha256Hex(data).slice(0, HASH_HEX)
}

/** Depth that gives about `bucketSize` keys per bucket for `expectedKeys` keys. */
export function merkleDepthFor(expectedKeys: number, bucketSize = 16): number {
  const buckets = Math.max(1, expectedKeys / Math.max(1, bucketSize))
  return Math.min(MERKLE_MAX_DEPTH, Math.max(1, Math.ceil(Math.log(buckets) / Math.log(16))))
}

/** A bucket: its entries and cached hash (undefined while stale). */
interface Bucket {
  readonly entries: Map<string, string>
  hash: Uint8Array | undefined
}

/**
 * An inner node: its children's hashes in 16 fixed slots (zeros where a child is empty), which
 * children are non-empty (`mask`) and which slots are stale (`stale`, refreshed on the next read).
 */
export interface MerkleInner {
  count: number
  mask: number
  stale: number
  readonly slots: Uint8Array
  hash: Uint8Array | undefined
}

const SLOTS = 16 * MERKLE_HASH_BYTES
/** mask (uint16 big-endian) then the 16 slots: what an inner node's hash covers. */
const hashInput = new Uint8Array(2 + SLOTS)

export class MerkleTree {
  private readonly buckets = new Map<number, Bucket>()
  /** Per level above the buckets, the non-empty inner nodes by index. */
  private readonly inner: Array<Map<number, MerkleInner>>

  constructor(readonly depth: number) {
    if (!Number.isSafeInteger(depth) || depth < 1 || depth > MERKLE_MAX_DEPTH) throw new InvalidInput('merkle depth out of range', { depth })
    this.inner = Array.from({ length: depth }, () => new Map())
  }

  static build(entries: Iterable<MerkleEntry>, depth: number): MerkleTree {
    const tree = new MerkleTree(depth)
    for (const [key, vh] of entries) tree.set(key, vh)
    return tree
  }

  get size(): number {
    return this.inner[0]!.get(0)?.count ?? 0
  }

  /** Number of nodes at `level` (16^level). */
  width(level: number): number {
    return 16 ** level
  }

  /** Index of the bucket holding `key`. */
  bucketIndex(key: string): number {
    return this.depth === 8 ? murmur3(utf8(key), 0) : murmur3(utf8(key), 0) >>> (32 - 4 * this.depth)
  }

  /** Hex prefix of the bucket holding `key`. */
  bucketOf(key: string): string {
    return prefixOf(this.depth, this.bucketIndex(key))
  }

  set(key: string, vh: string): void {
    const index = this.bucketIndex(key)
    let bucket = this.buckets.get(index)
    if (bucket === undefined) this.buckets.set(index, (bucket = { entries: new Map(), hash: undefined }))
    const previous = bucket.entries.get(key)
    if (previous === vh) return
    bucket.entries.set(key, vh)
    bucket.hash = undefined
    this.touch(index, previous === undefined ? 1 : 0)
  }

  delete(key: string): boolean {
    const index = this.bucketIndex(key)
    const bucket = this.buckets.get(index)
    if (bucket === undefined || !bucket.entries.delete(key)) return false
    bucket.hash = undefined
    if (bucket.entries.size === 0) this.buckets.delete(index)
    this.touch(index, -1)
    return true
  }

  get(key: string): string | undefined {
    return this.buckets.get(this.bucketIndex(key))?.entries.get(key)
  }

  /** Marks the path above bucket `index` stale, counting `delta` keys in or out. O(depth). */
  private touch(index: number, delta: number): void {
    for (let level = this.depth - 1, child = index; level >= 0; level--) {
      const i = Math.floor(child / 16)
      const nodes = this.inner[level]!
      let node = nodes.get(i)
      if (node === undefined) nodes.set(i, (node = { count: 0, mask: 0, stale: 0, slots: new Uint8Array(SLOTS), hash: undefined }))
      node.count += delta
      node.stale |= 1 << (child & 15)
      node.hash = undefined
      if (node.count === 0) nodes.delete(i)
      child = i
    }
  }

  /** Hash of node (level, index); undefined for an empty subtree. The bytes are the tree's: do not modify. */
  hashAt(level: number, index: number): Uint8Array | undefined {
    if (level === this.depth) return this.bucketHash(index)
    return this.node(level, index)?.hash
  }

  /** Inner node (level < depth, index) with its slots current; undefined if empty. Do not modify. */
  node(level: number, index: number): MerkleInner | undefined {
    const node = this.inner[level]?.get(index)
    if (node === undefined || node.hash !== undefined) return node
    for (let c = 0; node.stale !== 0; c++) {
      const bit = 1 << c
      if ((node.stale & bit) === 0) continue
      node.stale &= ~bit
      const child = this.hashAt(level + 1, index * 16 + c)
      if (child === undefined) {
        node.mask &= ~bit
        node.slots.fill(0, c * MERKLE_HASH_BYTES, (c + 1) * MERKLE_HASH_BYTES)
      } else {
        node.mask |= bit
        node.slots.set(child, c * MERKLE_HASH_BYTES)
      }
    }
    hashInput[0] = node.mask >>> 8
    hashInput[1] = node.mask & 0xff
    hashInput.set(node.slots, 2)
    node.hash = sha256(hashInput).subarray(0, MERKLE_HASH_BYTES)
    return node
  }

  private bucketHash(index: number): Uint8Array | undefined {
    const bucket = this.buckets.get(index)
    if (bucket === undefined || bucket.hash !== undefined) return bucket?.hash
    let text = ''
    for (const [key, vh] of this.bucketEntriesAt(index)) text += `${key.length}:${key}${vh.length}:${vh}`
    bucket.hash = sha256(text).subarray(0, MERKLE_HASH_BYTES)
    return bucket.hash
  }

  /** The root: its hash in hex ('' for an empty tree) and how many keys the tree holds. */
  root(): { hash: string; count: number } {
    return { hash: hex(this.hashAt(0, 0)), count: this.size }
  }

  /** Hex hash of the node at `prefix` ('' for the root); '' for an empty subtree. */
  hash(prefix: string): string {
    if (prefix.length > this.depth || !/^[0-9a-f]*$/.test(prefix)) throw new InvalidInput('bad merkle prefix', { prefix, depth: this.depth })
    return hex(this.hashAt(prefix.length, prefix.length === 0 ? 0 : parseInt(prefix, 16)))
  }

  /** Bucket `index` with its hash current (its entries unsorted): undefined if empty. The tree's own objects: do not modify. */
  bucketAt(index: number): { readonly entries: ReadonlyMap<string, string>; readonly hash: Uint8Array } | undefined {
    const hash = this.bucketHash(index)
    return hash === undefined ? undefined : { entries: this.buckets.get(index)!.entries, hash }
  }

  /** Bucket `index`'s entries, sorted by key. */
  bucketEntriesAt(index: number): MerkleEntry[] {
    const bucket = this.buckets.get(index)
    if (bucket === undefined) return []
    return [...bucket.entries].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  }
}

const hex = (hash: Uint8Array | undefined): string => (hash === undefined ? '' : Buffer.from(hash.buffer, hash.byteOffset, hash.byteLength).toString('hex'))

/** Hex prefix of node `index` at `level`. */
export function prefixOf(level: number, index: number): string {
  return level === 0 ? '' : index.toString(16).padStart(level, '0')
}

export function diffBuckets(local: readonly MerkleEntry[], remote: readonly MerkleEntry[]): BucketDiff {
  const theirs = new Map(remote)
  const onlyLocal: string[] = []
  const different: string[] = []
  for (const [key, vh] of local) {
    const other = theirs.get(key)
    if (other === undefined) onlyLocal.push(key)
    else if (other !== vh) different.push(key)
    theirs.delete(key)
  }
  return { onlyLocal, onlyRemote: [...theirs.keys()], different }
}
