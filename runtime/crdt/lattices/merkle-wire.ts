// Binary forms of a Merkle exchange (see merkle.ts for the tree), so a level with thousands of
// nodes is a few byte copies and compares, not thousands of objects to validate and pack:
//
//   node list      uint32 big-endian node indices at one level (the parents asked about, or
//                  the buckets asked for), at most MERKLE_MAX_NODES
//   children       for each parent asked about, in order: a uint16 big-endian mask (bit c set
//                  = child c non-empty), then the 16-byte hash of each non-empty child in
//                  nibble order
//   bucket entries [key, versionHash][] (plain arrays, zod-checked)
//
// Reconciling: compare roots; while they differ, send the parents whose hashes differ, get their
// children (`encodeChildren`), keep the children whose hashes differ (`compareChildren`) and
// descend; at bucket level, exchange the buckets' entries and diff them. Each differing key
// costs one root-to-bucket path: O(diff · depth · 16) hashes whatever the key count.
// `reconcile` runs that exchange between two local trees (what a round does over the wire).

import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
import { parseWire, WIRE_LIMITS } from './lattice-wire.js'
import { diffBuckets, MERKLE_HASH_BYTES, type BucketDiff, type MerkleEntry, type MerkleTree } from './merkle.js'

/** Nodes one request may name (a children reply is then at most ~528 KB). */
export const MERKLE_MAX_NODES = 2_048

/** Packs node indices (< 2^32) as uint32 big-endian. */
export function encodeNodeList(indices: readonly number[]): Uint8Array {
  if (indices.length > MERKLE_MAX_NODES) throw new InvalidInput('too many merkle nodes', { nodes: indices.length, maxNodes: MERKLE_MAX_NODES })
  const out = new Uint8Array(indices.length * 4)
  const view = new DataView(out.buffer)
  for (let i = 0; i < indices.length; i++) view.setUint32(i * 4, indices[i]!)
  return out
}

/** Node indices from a node list, each checked to exist at a level `width` nodes wide. */
export function decodeNodeList(bytes: Uint8Array, width: number): number[] {
  if (bytes.byteLength % 4 !== 0) throw new InvalidInput('merkle node list is not a whole number of indices', { bytes: bytes.byteLength })
  if (bytes.byteLength / 4 > MERKLE_MAX_NODES) throw new InvalidInput('too many merkle nodes', { nodes: bytes.byteLength / 4, maxNodes: MERKLE_MAX_NODES })
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const out = new Array<number>(bytes.byteLength / 4)
  for (let i = 0; i < out.length; i++) {
    const index = view.getUint32(i * 4)
    if (index >= width) throw new InvalidInput('merkle node out of range', { index, width })
    out[i] = index
  }
  return out
}

/** The children of `parents` (node indices at `level` < depth): masks and hashes. */
export function encodeChildren(tree: MerkleTree, level: number, parents: readonly number[]): Uint8Array {
  if (level < 0 || level >= tree.depth) throw new InvalidInput('merkle level has no children', { level, depth: tree.depth })
  const nodes = parents.map((p) => tree.node(level, p))
  let length = 2 * parents.length
  for (const node of nodes) if (node !== undefined) length += popcount(node.mask) * MERKLE_HASH_BYTES
  const out = new Uint8Array(length)
  let at = 0
  for (const node of nodes) {
    const mask = node?.mask ?? 0
    out[at++] = mask >>> 8
    out[at++] = mask & 0xff
    for (let c = 0; c < 16; c++) {
      if ((mask & (1 << c)) === 0) continue
      const slots = node!.slots
      for (let i = c * MERKLE_HASH_BYTES, end = i + MERKLE_HASH_BYTES; i < end; i++) out[at++] = slots[i]!
    }
  }
  return out
}

/**
 * Compares the peer's children of `parents` (at `level`) with ours: the indices (at level + 1)
 * whose hashes differ, present on one side only included. InvalidInput if the bytes do not
 * describe exactly those parents.
 */
export function compareChildren(local: MerkleTree, level: number, parents: readonly number[], remote: Uint8Array): number[] {
  if (level < 0 || level >= local.depth) throw new InvalidInput('merkle level has no children', { level, depth: local.depth })
  const out: number[] = []
  let at = 0
  for (const parent of parents) {
    if (at + 2 > remote.byteLength) throw new InvalidInput('merkle children truncated', { bytes: remote.byteLength })
    const theirs = (remote[at]! << 8) | remote[at + 1]!
    at += 2
    if (at + popcount(theirs) * MERKLE_HASH_BYTES > remote.byteLength) throw new InvalidInput('merkle children truncated', { bytes: remote.byteLength })
    const node = local.node(level, parent)
    const mine = node?.mask ?? 0
    for (let c = 0; c < 16; c++) {
      const bit = 1 << c
      if ((theirs & bit) === 0) {
        if ((mine & bit) !== 0) out.push(parent * 16 + c)
        continue
      }
      if ((mine & bit) === 0 || !sameHash(node!.slots, c * MERKLE_HASH_BYTES, remote, at)) out.push(parent * 16 + c)
      at += MERKLE_HASH_BYTES
    }
  }
  if (at !== remote.byteLength) throw new InvalidInput('merkle children do not match the nodes asked about', { bytes: remote.byteLength, read: at })
  return out
}

function sameHash(mine: Uint8Array, from: number, theirs: Uint8Array, at: number): boolean {
  for (let i = 0; i < MERKLE_HASH_BYTES; i++) if (mine[from + i] !== theirs[at + i]) return false
  return true
}

function popcount(mask: number): number {
  let n = 0
  for (let m = mask; m !== 0; m &= m - 1) n++
  return n
}

const bucketEntriesSchema = z.array(z.tuple([z.string().max(WIRE_LIMITS.keyLength), z.string().min(1).max(128)]))

export function decodeBucketEntries(wire: unknown, maxEntries = WIRE_LIMITS.entries): MerkleEntry[] {
  if (Array.isArray(wire) && wire.length > maxEntries) throw new InvalidInput('too many bucket entries', { entries: wire.length, maxEntries })
  return parseWire(bucketEntriesSchema, wire, 'merkle bucket entries')
}

export interface MerkleReconciliation extends BucketDiff {
  /** Node hashes sent by both sides (roots included). */
  readonly nodesExchanged: number
  readonly entriesExchanged: number
  /** Round trips: the roots, one per level descended, plus the bucket exchange. */
  readonly roundTrips: number
}

/** Runs the exchange between two local trees; what a sync round would do over the wire. */
export function reconcile(local: MerkleTree, remote: MerkleTree): MerkleReconciliation {
  if (local.depth !== remote.depth) throw new InvalidInput('merkle depths differ', { local: local.depth, remote: remote.depth })
  let nodes = 2
  let entries = 0
  let roundTrips = 1
  const result = { onlyLocal: [] as string[], onlyRemote: [] as string[], different: [] as string[] }
  if (local.root().hash === remote.root().hash) return { ...result, nodesExchanged: nodes, entriesExchanged: 0, roundTrips }
  let frontier = [0]
  for (let level = 0; level < local.depth && frontier.length > 0; level++) {
    const theirs = encodeChildren(remote, level, frontier)
    nodes += frontier.length + (theirs.byteLength - 2 * frontier.length) / MERKLE_HASH_BYTES
    roundTrips += 1
    frontier = compareChildren(local, level, frontier, theirs)
  }
  roundTrips += frontier.length > 0 ? 1 : 0
  for (const bucket of frontier) {
    const mine = local.bucketEntriesAt(bucket)
    const theirs = remote.bucketEntriesAt(bucket)
    entries += mine.length + theirs.length
    const d = diffBuckets(mine, theirs)
    result.onlyLocal.push(...d.onlyLocal)
    result.onlyRemote.push(...d.onlyRemote)
    result.different.push(...d.different)
  }
  return { ...result, nodesExchanged: nodes, entriesExchanged: entries, roundTrips }
}
