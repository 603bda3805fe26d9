// The Merkle digest exchange over the wire, for anything that keeps a MerkleTree of
// (name, versionHash) entries: anti-entropy over CRDT documents (anti-entropy/digest.ts) and
// reconciliation of storage namespaces (namespace-reconciliation.ts). Node lists and children
// are binary (runtime/crdt/lattices/merkle-wire.ts), bucket dumps too (merkle-buckets.ts):
//
//   { digest: 'merkle', op: 'root', depth }                         → { hash, count }
//   { digest: 'merkle', op: 'children', depth, level, nodes: bytes, unlessRoot? }
//                                                                   → { children: bytes } | { equal: true }
//   { digest: 'merkle', op: 'buckets', depth, nodes: bytes }         → { buckets: [index, entries][] }
//   { digest: 'merkle', op: 'compare', depth, level, nodes: bytes, children: bytes, unlessRoot? }
//        → { equal: true } | { nodes: bytes, children: bytes } | { nodes: bytes, buckets: bytes }
//
// 'compare' is the walk anti-entropy runs (diffFromRoot): the asker sends its own children of
// `nodes` (parents at `level`, at most MERKLE_COMPARE_PARENTS), the peer compares them with its
// own and answers the children it finds differing (`nodes`, at level + 1) with what lies below
// them: their children's hashes, or a dump of the buckets below them when those are the buckets
// themselves, or when level + 1 is the last inner level and its differing nodes hold at most
// MERKLE_DUMP_ENTRIES entries. Each round trip so descends two levels and the last brings the
// leaves: ceil(depth / 2) round trips for a difference within the dump budget, one more past
// it, one in all if the roots are equal (the first request carries the asker's root).
//
// Both sides build their tree at the depth the initiator names, so hashes compare node for node.

import { z } from 'zod'
import { InvalidInput } from '../../effects/errors.js'
import {
  MERKLE_MAX_DEPTH,
  MERKLE_MAX_NODES,
  MERKLE_HASH_BYTES,
  compareChildren,
  decodeBucketEntries,
  decodeNodeList,
  diffBuckets,
  encodeChildren,
  encodeNodeList,
  parseWire,
  type BucketDiff,
  type MerkleTree,
} from '../crdt/lattices/index.js'
import { diffBucketDump, encodeBucketDump } from '../crdt/lattices/merkle-buckets.js'

/** Parents one 'compare' request may name: their differing children then fit in one node list. */
export const MERKLE_COMPARE_PARENTS = MERKLE_MAX_NODES / 16
/**
 * Entries a 'compare' answer dumps at most in place of the last level of hashes. A dump sends
 * every entry under the differing nodes (16 buckets each) to save the round trip that would name
 * the differing buckets; measured at 100k documents (2,400 entries for 100 differences), the
 * encoding and decoding cost more than the round trip saved, so only small dumps replace it.
 */
export const MERKLE_DUMP_ENTRIES = 1_024

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes')
const depthSchema = z.number().int().min(1).max(MERKLE_MAX_DEPTH)
const nodeListSchema = bytes.refine((b) => b.byteLength <= MERKLE_MAX_NODES * 4 && b.byteLength % 4 === 0, 'bad merkle node list')

/** an inner level of the tree: the walk asks for the children of nodes at it */
const levelSchema = z
  .number()
  .int()
  .min(0)
  .max(MERKLE_MAX_DEPTH - 1)

export const merkleRequestSchema = z.discriminatedUnion('op', [
  z.object({ digest: z.literal('merkle'), op: z.literal('root'), depth: depthSchema }).strict(),
  z
    .object({
      digest: z.literal('merkle'),
      op: z.literal('children'),
      depth: depthSchema,
      level: levelSchema,
      nodes: nodeListSchema,
      /** the asker's root hash: a responder with the same root answers { equal: true } and nothing else */
      unlessRoot: z
        .string()
        .regex(/^[0-9a-f]{0,32}$/)
        .optional(),
    })
    .strict(),
  z.object({ digest: z.literal('merkle'), op: z.literal('buckets'), depth: depthSchema, nodes: nodeListSchema }).strict(),
  z
    .object({
      digest: z.literal('merkle'),
      op: z.literal('compare'),
      depth: depthSchema,
      level: levelSchema,
      nodes: bytes.refine((b) => b.byteLength <= MERKLE_COMPARE_PARENTS * 4 && b.byteLength % 4 === 0, 'bad merkle node list'),
      children: bytes.refine((b) => b.byteLength <= MERKLE_COMPARE_PARENTS * (2 + 16 * MERKLE_HASH_BYTES), 'merkle children too large'),
      unlessRoot: z
        .string()
        .regex(/^[0-9a-f]{0,32}$/)
        .optional(),
      /** the asker's own payload about the buckets it knows to differ (the last step only), for the peer's `attach` handler */
      attach: z.unknown().optional(),
    })
    .strict(),
])
export type MerkleRequest = z.infer<typeof merkleRequestSchema>

const rootReplySchema = z.object({ hash: z.string().max(64), count: z.number().int().min(0) }).strict()
const childrenReplySchema = z.union([
  z.object({ children: bytes.refine((b) => b.byteLength <= MERKLE_MAX_NODES * (2 + 16 * 16), 'merkle children too large') }).strict(),
  z.object({ equal: z.literal(true) }).strict(),
])
const compareReplySchema = z.union([
  z.object({ equal: z.literal(true) }).strict(),
  z.object({ nodes: nodeListSchema, children: bytes.refine((b) => b.byteLength <= MERKLE_MAX_NODES * (2 + 16 * 16), 'merkle children too large') }).strict(),
  z.object({ nodes: nodeListSchema, buckets: bytes, attached: z.unknown().optional() }).strict(),
])
const bucketsReplySchema = z.object({ buckets: z.array(z.tuple([z.number().int().min(0), z.unknown()])).max(MERKLE_MAX_NODES) }).strict()

/** Sends one merkle request to the peer and resolves with its (unchecked) reply. */
export type MerkleAsk = (request: MerkleRequest) => Promise<unknown>

/**
 * Answers a compare request's `attach` (the asker's payload about the buckets it knows to differ)
 * given the buckets the peer found differing; what it returns travels back as `attached`.
 */
export type MerkleAttachHandler = (attach: unknown, buckets: readonly number[]) => unknown

/** The responder's answer to a (validated) request, from its tree at the requested depth. */
export function answerMerkle(tree: MerkleTree, request: MerkleRequest, onAttach?: MerkleAttachHandler): unknown {
  switch (request.op) {
    case 'root':
      return tree.root()
    case 'children':
      if (request.level >= tree.depth) throw new InvalidInput('merkle level has no children', { level: request.level, depth: tree.depth })
      if (request.unlessRoot !== undefined && request.unlessRoot === tree.root().hash) return { equal: true }
      return { children: encodeChildren(tree, request.level, decodeNodeList(request.nodes, tree.width(request.level))) }
    case 'buckets':
      return { buckets: decodeNodeList(request.nodes, tree.width(tree.depth)).map((i) => [i, tree.bucketEntriesAt(i) as unknown as string[][]]) }
    case 'compare':
      return answerCompare(tree, request, onAttach)
  }
}

function answerCompare(tree: MerkleTree, request: Extract<MerkleRequest, { op: 'compare' }>, onAttach: MerkleAttachHandler | undefined): unknown {
  const { level } = request
  if (level >= tree.depth) throw new InvalidInput('merkle level has no children', { level, depth: tree.depth })
  if (request.attach !== undefined && (onAttach === undefined || level + 1 !== tree.depth))
    throw new InvalidInput('merkle compare carries a payload this peer does not take there', { level, depth: tree.depth })
  if (request.unlessRoot !== undefined && request.unlessRoot === tree.root().hash) return { equal: true }
  const differing = compareChildren(tree, level, decodeNodeList(request.nodes, tree.width(level)), request.children)
  const nodes = encodeNodeList(differing)
  const below = level + 1
  if (below === tree.depth) {
    const buckets = encodeBucketDump(tree, differing)
    const attached = request.attach === undefined ? undefined : onAttach!(request.attach, differing)
    return attached === undefined ? { nodes, buckets } : { nodes, buckets, attached }
  }
  if (below === tree.depth - 1 && entriesUnder(tree, below, differing) <= MERKLE_DUMP_ENTRIES)
    return { nodes, buckets: encodeBucketDump(tree, childrenOf(differing)) }
  return { nodes, children: encodeChildren(tree, below, differing) }
}

function entriesUnder(tree: MerkleTree, level: number, nodes: readonly number[]): number {
  let count = 0
  for (const index of nodes) count += tree.node(level, index)?.count ?? 0
  return count
}

/** The 16 children (at the level below) of each of `nodes`, in order. */
function childrenOf(nodes: readonly number[]): number[] {
  const out = new Array<number>(nodes.length * 16)
  for (let i = 0; i < nodes.length; i++) for (let c = 0; c < 16; c++) out[i * 16 + c] = nodes[i]! * 16 + c
  return out
}

/** The peer's root at `depth`: its hash and how many entries its tree holds. */
export async function remoteRoot(ask: MerkleAsk, depth: number): Promise<{ hash: string; count: number }> {
  return parseWire(rootReplySchema, await ask({ digest: 'merkle', op: 'root', depth }), 'merkle root reply')
}

/**
 * The initiator's walk, once the roots are known to differ: descends level by level through the
 * nodes whose hashes differ, then diffs the differing buckets' entries. onlyLocal / onlyRemote
 * are from `tree`'s side.
 */
export function diffBelowRoot(tree: MerkleTree, ask: MerkleAsk): Promise<BucketDiff> {
  return descend(tree, ask, 0, [0])
}

/**
 * The whole walk, by 'compare' requests, without a root exchange of its own: the first sends our
 * root's children and our root hash (a peer with the same root answers `equal`: nothing differs,
 * one small round trip); each answer names the children that differ and what lies below them,
 * our own compare of which gives the next parents two levels down; buckets come as dumps, diffed
 * against ours. Chunks of parents at one level go out together, so a level costs one round trip.
 */
export async function diffFromRoot(tree: MerkleTree, ask: MerkleAsk, attach?: (buckets: readonly number[]) => unknown): Promise<MerkleWalk> {
  const depth = tree.depth
  const diff = { onlyLocal: [] as string[], onlyRemote: [] as string[], different: [] as string[], attached: [] as unknown[] }
  // set once the differing buckets are known before the last request (it then asks about them)
  let known: number[] | undefined
  let level = 0
  let parents = [0]
  let unlessRoot: string | undefined = tree.root().hash
  while (parents.length > 0) {
    const chunks: number[][] = []
    for (let i = 0; i < parents.length; i += MERKLE_COMPARE_PARENTS) chunks.push(parents.slice(i, i + MERKLE_COMPARE_PARENTS))
    const replies = await Promise.all(
      chunks.map((chunk) =>
        ask({
          digest: 'merkle',
          op: 'compare',
          depth,
          level,
          nodes: encodeNodeList(chunk),
          children: encodeChildren(tree, level, chunk),
          ...(unlessRoot !== undefined ? { unlessRoot } : {}),
          ...withAttached(known !== undefined && attach !== undefined ? attach(bucketsUnder(known, chunk)) : undefined),
        }),
      ),
    )
    const below = level + 1
    const next: number[] = []
    for (let k = 0; k < chunks.length; k++) {
      const reply = parseWire(compareReplySchema, replies[k], 'merkle compare reply')
      if ('equal' in reply) {
        if (unlessRoot === undefined) throw new InvalidInput('merkle compare reply says equal to a request without a root')
        return diff
      }
      const differing = childrenNamed(reply.nodes, chunks[k]!, tree.width(below))
      if ('buckets' in reply) {
        if (below < depth - 1) throw new InvalidInput('merkle buckets dumped above the last inner level', { level: below, depth })
        diffBucketDump(tree, below === depth ? differing : childrenOf(differing), reply.buckets, diff)
        if (reply.attached !== undefined) diff.attached.push(reply.attached)
      } else for (const index of compareChildren(tree, below, differing, reply.children)) next.push(index)
    }
    unlessRoot = undefined
    // `next` is two levels down; buckets are not asked about themselves, but their parents are.
    if (level + 2 < depth) {
      level += 2
      parents = next
    } else {
      level = depth - 1
      parents = parentsOf(next)
      known = next
    }
  }
  return diff
}

/** A walk's differences, and the peer's answers (`attached`) to what diffFromRoot's `attach` added to the last requests. */
export interface MerkleWalk extends BucketDiff {
  readonly attached: unknown[]
}

const withAttached = (attach: unknown): { attach?: unknown } => (attach === undefined ? {} : { attach })

/** Those of increasing `buckets` whose parents are among increasing `parents`. */
function bucketsUnder(buckets: readonly number[], parents: readonly number[]): number[] {
  const out: number[] = []
  let p = 0
  for (const bucket of buckets) {
    const parent = Math.floor(bucket / 16)
    while (p < parents.length && parents[p]! < parent) p++
    if (parents[p] === parent) out.push(bucket)
  }
  return out
}

/** The node list of a reply: strictly increasing children (at the level below) of `parents` (increasing). */
function childrenNamed(bytes: Uint8Array, parents: readonly number[], width: number): number[] {
  const nodes = decodeNodeList(bytes, width)
  let p = 0
  for (let i = 0; i < nodes.length; i++) {
    const parent = Math.floor(nodes[i]! / 16)
    while (p < parents.length && parents[p]! < parent) p++
    if (p === parents.length || parents[p] !== parent || (i > 0 && nodes[i]! <= nodes[i - 1]!))
      throw new InvalidInput('merkle compare reply names a node that is not a child asked about', { index: nodes[i] })
  }
  return nodes
}

/** The parents of increasing `nodes`, each once. */
function parentsOf(nodes: readonly number[]): number[] {
  const out: number[] = []
  for (const index of nodes) {
    const parent = Math.floor(index / 16)
    if (out[out.length - 1] !== parent) out.push(parent)
  }
  return out
}

/** From `frontier` (differing nodes at `level`) down to the buckets, then their entries. */
async function descend(tree: MerkleTree, ask: MerkleAsk, from: number, start: number[]): Promise<BucketDiff> {
  const depth = tree.depth
  let frontier = start
  for (let level = from; level < depth && frontier.length > 0; level++) {
    const next: number[] = []
    for (let i = 0; i < frontier.length; i += MERKLE_MAX_NODES) {
      const parents = frontier.slice(i, i + MERKLE_MAX_NODES)
      const reply = parseWire(
        childrenReplySchema,
        await ask({ digest: 'merkle', op: 'children', depth, level, nodes: encodeNodeList(parents) }),
        'merkle children reply',
      )
      if ('equal' in reply) throw new InvalidInput('merkle children reply says equal to a request without a root')
      for (const index of compareChildren(tree, level, parents, reply.children)) next.push(index)
    }
    frontier = next
  }
  const diff: BucketDiff = { onlyLocal: [], onlyRemote: [], different: [] }
  for (let i = 0; i < frontier.length; i += MERKLE_MAX_NODES) {
    const buckets = frontier.slice(i, i + MERKLE_MAX_NODES)
    const reply = parseWire(bucketsReplySchema, await ask({ digest: 'merkle', op: 'buckets', depth, nodes: encodeNodeList(buckets) }), 'merkle buckets reply')
    const asked = new Set(buckets)
    for (const [index, wire] of reply.buckets) {
      if (!asked.delete(index)) throw new InvalidInput('merkle bucket was not requested', { index })
      const d = diffBuckets(tree.bucketEntriesAt(index), decodeBucketEntries(wire))
      diff.onlyLocal.push(...d.onlyLocal)
      diff.onlyRemote.push(...d.onlyRemote)
      diff.different.push(...d.different)
    }
  }
  return diff
}
