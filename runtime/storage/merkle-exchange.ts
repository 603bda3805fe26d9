// The Merkle digest exchange over the wire, for anything that keeps a MerkleTree of
// (name, versionHash) entries: anti-entropy over CRDT documents (anti-entropy/digest.ts) and
// reconciliation of storage namespaces (namespace-reconciliation.ts). One request per tree
// level; node lists and children are binary (runtime/crdt/lattices/merkle-wire.ts):
//
//   { digest: 'merkle', op: 'root', depth }                         → { hash, count }
//   { digest: 'merkle', op: 'children', depth, level, nodes: bytes, unlessRoot? }
//                                                                   → { children: bytes } | { equal: true }
//   { digest: 'merkle', op: 'buckets', depth, nodes: bytes }         → { buckets: [index, entries][] }
//
// Both sides build their tree at the depth the initiator names, so hashes compare node for node.

import { z } from 'zod'
import { InvalidInput } from '../../effects/errors.js'
import {
  MERKLE_MAX_DEPTH,
  MERKLE_MAX_NODES,
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

const bytes = z.custom<Uint8Array>((v) => v instanceof Uint8Array, 'expected bytes')
const depthSchema = z.number().int().min(1).max(MERKLE_MAX_DEPTH)
const nodeListSchema = bytes.refine((b) => b.byteLength <= MERKLE_MAX_NODES * 4 && b.byteLength % 4 === 0, 'bad merkle node list')

export const merkleRequestSchema = z.discriminatedUnion('op', [
  z.object({ digest: z.literal('merkle'), op: z.literal('root'), depth: depthSchema }).strict(),
  z
    .object({
      digest: z.literal('merkle'),
      op: z.literal('children'),
      depth: depthSchema,
      level: z
        .number()
        .int()
        .min(0)
        .max(MERKLE_MAX_DEPTH - 1),
      nodes: nodeListSchema,
      /** the asker's root hash: a responder with the same root answers { equal: true } and nothing else */
      unlessRoot: z
        .string()
        .regex(/^[0-9a-f]{0,32}$/)
        .optional(),
    })
    .strict(),
  z.object({ digest: z.literal('merkle'), op: z.literal('buckets'), depth: depthSchema, nodes: nodeListSchema }).strict(),
])
export type MerkleRequest = z.infer<typeof merkleRequestSchema>

const rootReplySchema = z.object({ hash: z.string().max(64), count: z.number().int().min(0) }).strict()
const childrenReplySchema = z.union([
  z.object({ children: bytes.refine((b) => b.byteLength <= MERKLE_MAX_NODES * (2 + 16 * 16), 'merkle children too large') }).strict(),
  z.object({ equal: z.literal(true) }).strict(),
])
const bucketsReplySchema = z.object({ buckets: z.array(z.tuple([z.number().int().min(0), z.unknown()])).max(MERKLE_MAX_NODES) }).strict()

/** Sends one merkle request to the peer and resolves with its (unchecked) reply. */
export type MerkleAsk = (request: MerkleRequest) => Promise<unknown>

/** The responder's answer to a (validated) request, from its tree at the requested depth. */
export function answerMerkle(tree: MerkleTree, request: MerkleRequest): unknown {
  switch (request.op) {
    case 'root':
      return tree.root()
    case 'children':
      if (request.level >= tree.depth) throw new InvalidInput('merkle level has no children', { level: request.level, depth: tree.depth })
      if (request.unlessRoot !== undefined && request.unlessRoot === tree.root().hash) return { equal: true }
      return { children: encodeChildren(tree, request.level, decodeNodeList(request.nodes, tree.width(request.level))) }
    case 'buckets':
      return { buckets: decodeNodeList(request.nodes, tree.width(tree.depth)).map((i) => [i, tree.bucketEntriesAt(i) as unknown as string[][]]) }
  }
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
 * The whole walk without a root exchange of its own: the first request names every node of level
 * 1 (of level 0 in a one-level tree) and carries our root hash. A peer with the same root answers
 * `equal` (nothing differs: one small round trip); otherwise the answer is that level's children
 * and the walk goes on from there, a round trip shorter than root, then children level by level.
 */
export async function diffFromRoot(tree: MerkleTree, ask: MerkleAsk): Promise<BucketDiff> {
  const depth = tree.depth
  const level = depth > 1 ? 1 : 0
  const parents = Array.from({ length: tree.width(level) }, (_, i) => i)
  const request: MerkleRequest = { digest: 'merkle', op: 'children', depth, level, nodes: encodeNodeList(parents), unlessRoot: tree.root().hash }
  const reply = parseWire(childrenReplySchema, await ask(request), 'merkle children reply')
  if ('equal' in reply) return { onlyLocal: [], onlyRemote: [], different: [] }
  return descend(tree, ask, level + 1, compareChildren(tree, level, parents, reply.children))
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
