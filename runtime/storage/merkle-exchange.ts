// The Merkle digest exchange over the wire, for anything that keeps a MerkleTree of
// (name, versionHash) entries: anti-entropy over CRDT documents (anti-entropy-digest.ts) and
// reconciliation of storage namespaces (namespace-reconciliation.ts). One request per tree
// level, see runtime/crdt/lattices/merkle.ts:
//
//   { digest: 'merkle', op: 'root', depth }              → { hash, count }
//   { digest: 'merkle', op: 'children', depth, prefixes } → { nodes: MerkleNode[] }
//   { digest: 'merkle', op: 'buckets', depth, prefixes }  → { buckets: [prefix, entries][] }
//
// Both sides build their tree at the depth the initiator names, so hashes compare node for node.

import { z } from 'zod'
import { InvalidInput } from '../../effects/errors.js'
import {
  MERKLE_MAX_DEPTH,
  compareChildren,
  decodeBucketEntries,
  decodeMerkleNodes,
  diffBuckets,
  parseWire,
  type BucketDiff,
  type MerkleEntry,
  type MerkleTree,
} from '../crdt/lattices/index.js'

/** Prefixes per merkle request. */
export const MAX_PREFIXES = 4_096

const prefixSchema = z.string().max(MERKLE_MAX_DEPTH).regex(/^[0-9a-f]*$/)
const depthSchema = z.number().int().min(1).max(MERKLE_MAX_DEPTH)

export const merkleRequestSchema = z.discriminatedUnion('op', [
  z.object({ digest: z.literal('merkle'), op: z.literal('root'), depth: depthSchema }).strict(),
  z.object({ digest: z.literal('merkle'), op: z.literal('children'), depth: depthSchema, prefixes: z.array(prefixSchema).max(MAX_PREFIXES) }).strict(),
  z.object({ digest: z.literal('merkle'), op: z.literal('buckets'), depth: depthSchema, prefixes: z.array(prefixSchema).max(MAX_PREFIXES) }).strict(),
])
export type MerkleRequest = z.infer<typeof merkleRequestSchema>

const rootReplySchema = z.object({ hash: z.string().max(64), count: z.number().int().min(0) }).strict()
const childrenReplySchema = z.object({ nodes: z.unknown() }).strict()
const bucketsReplySchema = z.object({ buckets: z.array(z.tuple([prefixSchema, z.unknown()])).max(MAX_PREFIXES) }).strict()

/** Sends one merkle request to the peer and resolves with its (unchecked) reply. */
export type MerkleAsk = (request: MerkleRequest) => Promise<unknown>

/** The responder's answer to a (validated) request, from its tree at the requested depth. */
export function answerMerkle(tree: MerkleTree, request: MerkleRequest): unknown {
  switch (request.op) {
    case 'root':
      return { hash: tree.root().hash, count: tree.size }
    case 'children':
      return { nodes: request.prefixes.flatMap((p) => tree.children(p)) }
    case 'buckets':
      return { buckets: request.prefixes.map((p) => [p, tree.bucketEntries(p) as unknown as string[][]]) }
  }
}

/** The peer's root at `depth`: its hash and how many entries its tree holds. */
export async function remoteRoot(ask: MerkleAsk, depth: number): Promise<{ hash: string; count: number }> {
  return parseWire(rootReplySchema, await ask({ digest: 'merkle', op: 'root', depth }), 'merkle root reply')
}

/**
 * The initiator's walk, once the roots are known to differ: descends level by level through the
 * prefixes whose hashes differ, then diffs the differing buckets' entries. onlyLocal / onlyRemote
 * are from `tree`'s side.
 */
export async function diffBelowRoot(tree: MerkleTree, ask: MerkleAsk): Promise<BucketDiff> {
  const depth = tree.depth
  let frontier = ['']
  for (let level = 0; level < depth && frontier.length > 0; level++) {
    const next: string[] = []
    for (let i = 0; i < frontier.length; i += MAX_PREFIXES) {
      const prefixes = frontier.slice(i, i + MAX_PREFIXES)
      const reply = parseWire(childrenReplySchema, await ask({ digest: 'merkle', op: 'children', depth, prefixes }), 'merkle children reply')
      next.push(...compareChildren(tree, prefixes, decodeMerkleNodes(reply.nodes)))
    }
    frontier = next
  }
  const diff: BucketDiff = { onlyLocal: [], onlyRemote: [], different: [] }
  for (let i = 0; i < frontier.length; i += MAX_PREFIXES) {
    const prefixes = frontier.slice(i, i + MAX_PREFIXES)
    const reply = parseWire(bucketsReplySchema, await ask({ digest: 'merkle', op: 'buckets', depth, prefixes }), 'merkle buckets reply')
    const asked = new Set(prefixes)
    for (const [prefix, wire] of reply.buckets) {
      if (!asked.has(prefix)) throw new InvalidInput('merkle bucket was not requested', { prefix })
      const entries: MerkleEntry[] = decodeBucketEntries(wire)
      const d = diffBuckets(tree.bucketEntries(prefix), entries)
      diff.onlyLocal.push(...d.onlyLocal)
      diff.onlyRemote.push(...d.onlyRemote)
      diff.different.push(...d.different)
    }
  }
  return diff
}
