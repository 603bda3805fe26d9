// Merkle digest over (key, versionHash) entries. Keys are placed in buckets by the first
// `depth` hex nibbles of MurmurHash3(key); a bucket's hash covers its entries sorted by key,
// an inner node's hash covers its non-empty children, so the tree's shape depends only on the
// keys and the hashes only on the entries: two peers holding the same entries get the same
// root whatever order they learnt them in.
//
// Reconciling: exchange roots; while they differ, ask the peer for the children of the
// prefixes that differ (`children`), compare them with ours (`compareChildren`) and descend;
// at bucket depth, exchange the buckets' entries (`bucketEntries`, `diffBuckets`). Each
// differing key costs one root-to-bucket path, i.e. O(diff · depth · 16) nodes for a 16-way
// tree of depth ≈ log16(n / bucket size), whatever n is.
//
// Hashes are sha-256 truncated to 16 bytes (hex). Wire: MerkleNode = { prefix, hash } with
// prefix the node's hex nibbles ('' for the root); bucket entries = [key, versionHash][].

import { createHash } from 'node:crypto'
import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
import { murmur3, utf8 } from './hash.js'
import { parseWire, WIRE_LIMITS } from './lattice-wire.js'

export interface MerkleNode {
  readonly prefix: string
  readonly hash: string
}

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
const NIBBLES = '0123456789abcdef'
const HASH_HEX = 32

/** Version hash of arbitrary bytes or text (sha-256, 16 bytes, hex), for building entries. */
export function versionHash(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex').slice(0, HASH_HEX)
}

/** Depth that gives about `bucketSize` keys per bucket for `expectedKeys` keys. */
export function merkleDepthFor(expectedKeys: number, bucketSize = 16): number {
  const buckets = Math.max(1, expectedKeys / Math.max(1, bucketSize))
  return Math.min(MERKLE_MAX_DEPTH, Math.max(1, Math.ceil(Math.log(buckets) / Math.log(16))))
}

export class MerkleTree {
  private readonly buckets = new Map<string, Map<string, string>>()
  /** Number of keys under each non-empty prefix, root included. */
  private readonly counts = new Map<string, number>()
  /** Cached hashes; a change evicts its path to the root. */
  private readonly hashes = new Map<string, string>()

  constructor(readonly depth: number) {
    if (!Number.isSafeInteger(depth) || depth < 1 || depth > MERKLE_MAX_DEPTH) throw new InvalidInput('merkle depth out of range', { depth })
  }

  static build(entries: Iterable<MerkleEntry>, depth: number): MerkleTree {
    const tree = new MerkleTree(depth)
    for (const [key, vh] of entries) tree.set(key, vh)
    return tree
  }

  get size(): number {
    return this.counts.get('') ?? 0
  }

  bucketOf(key: string): string {
    return murmur3(utf8(key), 0).toString(16).padStart(8, '0').slice(0, this.depth)
  }

  set(key: string, vh: string): void {
    const prefix = this.bucketOf(key)
    let bucket = this.buckets.get(prefix)
    if (bucket === undefined) {
      bucket = new Map()
      this.buckets.set(prefix, bucket)
    }
    const had = bucket.has(key)
    if (had && bucket.get(key) === vh) return
    bucket.set(key, vh)
    this.touch(prefix, had ? 0 : 1)
  }

  delete(key: string): boolean {
    const prefix = this.bucketOf(key)
    const bucket = this.buckets.get(prefix)
    if (bucket === undefined || !bucket.delete(key)) return false
    if (bucket.size === 0) this.buckets.delete(prefix)
    this.touch(prefix, -1)
    return true
  }

  get(key: string): string | undefined {
    return this.buckets.get(this.bucketOf(key))?.get(key)
  }

  private touch(bucketPrefix: string, delta: number): void {
    for (let len = 0; len <= this.depth; len++) {
      const p = bucketPrefix.slice(0, len)
      this.hashes.delete(p)
      if (delta !== 0) {
        const n = (this.counts.get(p) ?? 0) + delta
        if (n === 0) this.counts.delete(p)
        else this.counts.set(p, n)
      }
    }
  }

  /** Hash of the node at `prefix`; '' for an empty subtree. */
  hash(prefix: string): string {
    if (!this.counts.has(prefix)) return ''
    const cached = this.hashes.get(prefix)
    if (cached !== undefined) return cached
    const h = createHash('sha256')
    if (prefix.length === this.depth) {
      for (const [key, vh] of this.bucketEntries(prefix)) h.update(`${key.length}:${key}${vh.length}:${vh}`)
    } else {
      for (const child of this.children(prefix)) h.update(child.prefix).update(child.hash)
    }
    const out = h.digest('hex').slice(0, HASH_HEX)
    this.hashes.set(prefix, out)
    return out
  }

  root(): MerkleNode {
    return { prefix: '', hash: this.hash('') }
  }

  /** The non-empty children of an inner node. */
  children(prefix: string): MerkleNode[] {
    this.checkPrefix(prefix, this.depth - 1)
    const out: MerkleNode[] = []
    for (const c of NIBBLES) {
      const p = prefix + c
      if (this.counts.has(p)) out.push({ prefix: p, hash: this.hash(p) })
    }
    return out
  }

  /** A bucket's entries, sorted by key. */
  bucketEntries(prefix: string): MerkleEntry[] {
    this.checkPrefix(prefix, this.depth)
    if (prefix.length !== this.depth) throw new InvalidInput('not a bucket prefix', { prefix, depth: this.depth })
    const bucket = this.buckets.get(prefix)
    if (bucket === undefined) return []
    return [...bucket].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  }

  private checkPrefix(prefix: string, maxLength: number): void {
    if (prefix.length > maxLength || !/^[0-9a-f]*$/.test(prefix)) throw new InvalidInput('bad merkle prefix', { prefix, maxLength })
  }
}

/**
 * Compare the peer's children of `requested` prefixes with ours: the child prefixes whose
 * hashes differ (present on one side only counts). At bucket depth these are buckets.
 */
export function compareChildren(local: MerkleTree, requested: readonly string[], remote: readonly MerkleNode[]): string[] {
  const wanted = new Set(requested)
  const theirs = new Map<string, string>()
  for (const n of remote) {
    if (!wanted.has(n.prefix.slice(0, -1)) || n.prefix.length === 0) throw new InvalidInput('merkle node was not requested', { prefix: n.prefix })
    theirs.set(n.prefix, n.hash)
  }
  const out: string[] = []
  for (const parent of requested) {
    for (const c of NIBBLES) {
      const p = parent + c
      const mine = local.hash(p)
      if (mine !== (theirs.get(p) ?? '')) out.push(p)
    }
  }
  return out
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

export interface MerkleReconciliation extends BucketDiff {
  /** Nodes and bucket entries sent by both sides (roots included). */
  readonly nodesExchanged: number
  readonly entriesExchanged: number
  /** Round trips: one per level descended, plus the bucket exchange. */
  readonly roundTrips: number
}

/** Runs the exchange between two local trees; what a sync round would do over the wire. */
export function reconcile(local: MerkleTree, remote: MerkleTree): MerkleReconciliation {
  if (local.depth !== remote.depth) throw new InvalidInput('merkle depths differ', { local: local.depth, remote: remote.depth })
  let nodes = 2
  let entries = 0
  let roundTrips = 1
  const result: BucketDiff = { onlyLocal: [], onlyRemote: [], different: [] }
  if (local.root().hash === remote.root().hash) return { ...result, nodesExchanged: nodes, entriesExchanged: 0, roundTrips }
  let frontier = ['']
  for (let level = 0; level < local.depth && frontier.length > 0; level++) {
    const theirs = frontier.flatMap((p) => remote.children(p))
    nodes += frontier.length + theirs.length
    roundTrips += 1
    frontier = compareChildren(local, frontier, theirs)
  }
  roundTrips += frontier.length > 0 ? 1 : 0
  for (const bucket of frontier) {
    const mine = local.bucketEntries(bucket)
    const theirs = remote.bucketEntries(bucket)
    entries += mine.length + theirs.length
    const d = diffBuckets(mine, theirs)
    result.onlyLocal.push(...d.onlyLocal)
    result.onlyRemote.push(...d.onlyRemote)
    result.different.push(...d.different)
  }
  return { ...result, nodesExchanged: nodes, entriesExchanged: entries, roundTrips }
}

const prefixSchema = z.string().max(MERKLE_MAX_DEPTH).regex(/^[0-9a-f]*$/)
const hashSchema = z.string().regex(/^[0-9a-f]{32}$/)

export const MERKLE_MAX_NODES = 65_536

export function decodeMerkleNodes(wire: unknown, maxNodes = MERKLE_MAX_NODES): MerkleNode[] {
  if (Array.isArray(wire) && wire.length > maxNodes) throw new InvalidInput('too many merkle nodes', { nodes: wire.length, maxNodes })
  return parseWire(z.array(z.object({ prefix: prefixSchema, hash: hashSchema }).strict()), wire, 'merkle nodes')
}

export function decodeBucketEntries(wire: unknown, maxEntries = WIRE_LIMITS.entries): MerkleEntry[] {
  if (Array.isArray(wire) && wire.length > maxEntries) throw new InvalidInput('too many bucket entries', { entries: wire.length, maxEntries })
  return parseWire(z.array(z.tuple([z.string().max(WIRE_LIMITS.keyLength), z.string().min(1).max(128)])), wire, 'merkle bucket entries')
}
