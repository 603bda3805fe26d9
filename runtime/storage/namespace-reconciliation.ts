// Reconciliation of one storage namespace between two replicas, without the writer: each side
// keeps a Merkle tree over its records (key → version hash), the initiator walks the peer's tree
// down to the buckets that differ (merkle-exchange.ts), pulls the records it lacks or holds in
// another version, and pushes the ones the peer lacks or holds in another version. Both sides
// merge through the namespace's resolver exactly as replicated records are merged
// (StorageCoordinator.mergeReplica: LWW on the hybrid timestamp with peer-id tie-break, or the
// CRDT join), so after one exchange both hold the same records. The cost follows the difference:
// one root-to-bucket path per differing key, never the namespace's size.
//
// Wire (router family 'replication', request/reply; every payload carries the capability the
// sender presents, which must grant it 'replicate' on the namespace: checked before anything is
// answered, PermissionDenied otherwise):
//   digest { namespace, capability, request: MerkleRequest } → the merkle reply (merkle-exchange.ts)
//   pull   { namespace, capability, keys: string[] }        → { resolver, records: [[key, StoredRecord]], served }
// Keys in digests and pulls are the JSON of the normalized storage key. A pull answers the first
// `served` keys it was asked for (missing ones are left out), as many as fit in a frame; the
// initiator asks again for the rest. Pushing is replication's own 'apply'.
//
// Version hashes: an LWW record is identified by its stamp (wall, logical, writer) and tombstone
// flag; a CRDT record also by its data, because a join keeps the later stamp while the data grow.

import { z } from 'zod'
import { InvalidInput } from '../../effects/errors.js'
import { canonicalJson, MerkleTree, merkleDepthFor, parseWire, versionHash, type JsonValue } from '../crdt/lattices/index.js'
import { checkKey } from '../../effects/storage/storage-input.js'
import type { StorageKey } from '../../effects/storage/index.js'
import type { Clock } from '../../effects/time/index.js'
import { answerMerkle, diffBelowRoot, merkleRequestSchema, remoteRoot, type MerkleAsk } from './merkle-exchange.js'
import type { Router } from '../core/router.js'
import { estimateRecordBytes, resolverSchema, type NamespaceResolver, type StoredRecord } from './record.js'
import type { StorageCoordinator } from './storage-coordinator.js'

/** Keys per pull request. */
export const MAX_PULL_KEYS = 1_024

export interface ReconcileResult {
  /** records fetched from the peer and merged here */
  pulled: number
  /** records sent to the peer to merge */
  pushed: number
}

const namespaceField = z.string().max(100)
const digestRequestSchema = z.object({ namespace: namespaceField, capability: z.unknown(), request: merkleRequestSchema }).strict()
const pullRequestSchema = z.object({ namespace: namespaceField, capability: z.unknown(), keys: z.array(z.string().max(4096)).max(MAX_PULL_KEYS) }).strict()
const pullReplySchema = z.object({ resolver: resolverSchema, records: z.array(z.tuple([z.unknown(), z.unknown()])), served: z.number().int().min(1) }).strict()

export function recordVersionHash(resolver: NamespaceResolver, r: StoredRecord): string {
  const stamp = `${r[0]}.${r[1]}.${r[2]}.${r[3]}`
  if (resolver.kind === 'lww') return versionHash(stamp)
  const data = r[4] instanceof Uint8Array ? Buffer.from(r[4]).toString('base64') : canonicalJson(r[4] as JsonValue)
  return versionHash(`${stamp}|${data}`)
}

const encodeKey = (key: StorageKey): string => JSON.stringify(key)

function decodeKey(encoded: string): StorageKey {
  let parsed: unknown
  try {
    parsed = JSON.parse(encoded)
  } catch {
    throw new InvalidInput('reconciliation key is not JSON', {})
  }
  return checkKey(parsed).key
}

/** Merkle trees over the namespaces reconciled, one per depth asked for, kept current as records commit. */
class NamespaceDigests {
  readonly #trees = new Map<string, Map<number, MerkleTree>>()

  constructor(private readonly storage: StorageCoordinator) {}

  tree(namespace: string, depth: number): MerkleTree {
    let byDepth = this.#trees.get(namespace)
    if (byDepth === undefined) {
      this.#trees.set(namespace, (byDepth = new Map()))
      this.storage.onRecord(namespace, (key, record) => {
        const hash = recordVersionHash(this.storage.resolverOf(namespace), record)
        for (const tree of byDepth!.values()) tree.set(encodeKey(key), hash)
      })
    }
    let tree = byDepth.get(depth)
    if (tree === undefined) {
      const resolver = this.storage.resolverOf(namespace)
      tree = new MerkleTree(depth)
      for (const [key, record] of this.storage.entries(namespace)) tree.set(encodeKey(key), recordVersionHash(resolver, record))
      byDepth.set(depth, tree)
    }
    return tree
  }
}

export interface NamespaceReconcilerOptions {
  storage: StorageCoordinator
  router: Router
  clock: Pick<Clock, 'now'>
  /** pull replies are kept under this many estimated bytes */
  maxReplyBytes: number
  /** sends records to the peer to merge (replication's chunked 'apply') */
  push(peer: string, namespace: string, records: Array<[StorageKey, StoredRecord]>, capability: unknown, deadlineAt: number): Promise<void>
}

export class NamespaceReconciler {
  readonly #o: NamespaceReconcilerOptions
  readonly #digests: NamespaceDigests

  constructor(options: NamespaceReconcilerOptions) {
    this.#o = options
    this.#digests = new NamespaceDigests(options.storage)
  }

  /** The responder's handlers, for the 'replication' family. */
  handlers() {
    return {
      digest: async ({ envelope, from }: { envelope: { payload: unknown }; from: string }) => {
        const r = parseWire(digestRequestSchema, envelope.payload, 'reconciliation digest request')
        await this.#o.storage.authorize(from, r.namespace, 'replicate', r.capability)
        return answerMerkle(this.#digests.tree(r.namespace, r.request.depth), r.request)
      },
      pull: async ({ envelope, from }: { envelope: { payload: unknown }; from: string }) => {
        const r = parseWire(pullRequestSchema, envelope.payload, 'reconciliation pull request')
        await this.#o.storage.authorize(from, r.namespace, 'replicate', r.capability)
        return this.#serve(r.namespace, r.keys)
      },
    }
  }

  /** Brings this peer's and `peer`'s copies of `namespace` to the same records. */
  async reconcile(peer: string, namespace: string, capability: { remote: unknown; local: unknown }, deadlineAt: number): Promise<ReconcileResult> {
    const { storage } = this.#o
    const request = (kind: string, payload: Record<string, unknown>) =>
      this.#o.router.request(
        peer,
        'replication',
        { kind, payload: { namespace, capability: capability.remote, ...payload }, deadline: deadlineAt },
        Math.max(1, deadlineAt - this.#o.clock.now()),
      )
    const ask: MerkleAsk = (merkle) => request('digest', { request: merkle })
    // Both trees must have the same depth: the one the larger side needs.
    const local = storage.count(namespace)
    let depth = merkleDepthFor(Math.max(1, local))
    let root = await remoteRoot(ask, depth)
    if (merkleDepthFor(Math.max(1, local, root.count)) !== depth) {
      depth = merkleDepthFor(Math.max(1, local, root.count))
      root = await remoteRoot(ask, depth)
    }
    const tree = this.#digests.tree(namespace, depth)
    if (root.hash === tree.root().hash) return { pulled: 0, pushed: 0 }
    const diff = await diffBelowRoot(tree, ask)

    let pulled = 0
    const wanted = [...diff.onlyRemote, ...diff.different]
    for (let next = 0; next < wanted.length;) {
      const keys = wanted.slice(next, next + MAX_PULL_KEYS)
      const reply = parseWire(pullReplySchema, await request('pull', { keys }), 'reconciliation pull reply')
      // only records of keys asked for (and answered) are taken
      const asked = new Set(keys.slice(0, reply.served))
      next += reply.served
      const records = reply.records.filter(([key]) => asked.has(encodeKey(checkKey(key).key))) as Array<[StorageKey, StoredRecord]>
      if (records.length === 0) continue
      // Merged with this peer's own authority, validated (drift, resolver, values) like any replica.
      await storage.mergeReplica(storage.peerId, { namespace, resolver: reply.resolver, records, capability: capability.local })
      pulled += records.length
    }
    // Read after the pull, so a key both sides changed goes back as the merged record.
    const records = storage.records(namespace, [...diff.onlyLocal, ...diff.different].map(decodeKey))
    if (records.length > 0) await this.#o.push(peer, namespace, records, capability.remote, deadlineAt)
    return { pulled, pushed: records.length }
  }

  #serve(namespace: string, encoded: readonly string[]): { resolver: NamespaceResolver; records: Array<[StorageKey, StoredRecord]>; served: number } {
    const records: Array<[StorageKey, StoredRecord]> = []
    let bytes = 0
    let served = 0
    for (const key of encoded) {
      const [entry] = this.#o.storage.records(namespace, [decodeKey(key)])
      if (entry) {
        bytes += estimateRecordBytes(entry)
        if (served > 0 && bytes > this.#o.maxReplyBytes) break
        records.push(entry)
      }
      served++
    }
    return { resolver: this.#o.storage.resolverOf(namespace), records, served: Math.max(1, served) }
  }
}
