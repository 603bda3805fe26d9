// Collection digests for anti-entropy: one digest for all documents of a coordinator, built
// from (document name, version hash) entries, so a round costs in proportion to what differs.
//
// Bloom ('anti-entropy'/'digest', digest 'bloom'):
//   request  { digest: 'bloom', salt, filter: bytes, count }
//   reply    { filter: bytes, count, lacking: string[], truncated }
//   Items are `salt|name|versionHash`; the salt changes every round, so a false positive (a
//   difference the filter hides) does not hide the same difference next round. `lacking` are
//   the responder's documents the requester's filter does not hold; the requester finds the
//   reverse with the responder's filter.
//
// Merkle (digest 'merkle', the default): 'compare' requests, each descending two tree levels, the
// first carrying our root, the last bringing the differing buckets' entries (diffFromRoot): see
// runtime/storage/merkle-exchange.ts. The trees are kept current as documents change
// (built once, on the first round that needs one), so a round costs O(differing · depth).
//
// Pull with the last step: when the walk knows the differing buckets before its last request
// (100k documents: depth 4, the third request), that request's `attach` is our sync request
// (createSyncRequest) for our documents in those buckets, at most MAX_PULLED_WITH_DIGEST; the
// peer answers `attached`, a sync answer (handleSyncRequest) with the states we lack of its
// documents in the buckets it found differing (one we did not list is one we lack). We join it
// (applySyncResponse); such a request asks for the peer's 'replicate' on the reply, as a sync
// pull does. Reconcile then exchanges only the documents the peer still needs something of.

import { z } from 'zod'
import { InvalidInput } from '../../effects/errors.js'
import { BloomFilter, bloomParameters, MerkleTree, merkleDepthFor, parseWire } from '../crdt/lattices/index.js'
import type { DigestOutcome, DigestStatus } from '../../machines/anti-entropy.js'
import type { CrdtCoordinator } from '../crdt/crdt-coordinator.js'
import { answerMerkle, diffFromRoot, merkleRequestSchema, type MerkleRequest } from '../storage/merkle-exchange.js'
import { parseSyncRequest } from '../crdt/sync-wire.js'

/** Names a bloom reply lists at most; the rest are found in later rounds. */
export const MAX_LACKING = 20_000
export const digestRequestSchema = z.union([
  z
    .object({
      digest: z.literal('bloom'),
      salt: z.string().min(1).max(64),
      filter: z.custom<Uint8Array>((v) => v instanceof Uint8Array),
      count: z.number().int().min(0),
    })
    .strict(),
  merkleRequestSchema,
])
export type DigestRequest = z.infer<typeof digestRequestSchema>

const bloomReplySchema = z
  .object({
    filter: z.custom<Uint8Array>((v) => v instanceof Uint8Array),
    count: z.number().int().min(0),
    lacking: z.array(z.string().min(1).max(256)).max(MAX_LACKING),
    truncated: z.boolean(),
  })
  .strict()

const item = (salt: string, name: string, hash: string): string => `${salt}|${name}|${hash}`

/**
 * Sends a digest request and resolves with the reply (the runtime binds it to the router, which
 * also counts the frames' bytes). `carriesStates`: the reply brings document states we join in,
 * so the peer must hold 'replicate'.
 */
export type DigestTransport = (request: DigestRequest, carriesStates: boolean) => Promise<unknown>

/** Documents a merkle walk's last request may pull (more are left to reconcile's exchanges). */
export const MAX_PULLED_WITH_DIGEST = 2_000

/** What a comparison found; its bytes are the transport's to count. */
export type Comparison = Omit<DigestOutcome, 'bytes'>

/** A merkle comparison whose last step already brought (and joined) the peer's states of `pulled`. */
export interface MerkleOutcome extends Comparison {
  /** differing documents joined from the peer's answer that the peer needs nothing of back */
  settled: string[]
  /** joined documents that changed here */
  pulled: number
}

export interface DigestSizes {
  /** minimum bloom filter bits */
  bloomFilterSize: number
  maxDigestBytes: number
}

/** The local side of both digests: answers peers, and runs the initiator's exchange. */
export class CollectionDigest {
  private readonly trees = new Map<number, MerkleTree>()

  constructor(
    private readonly coordinator: CrdtCoordinator,
    private readonly sizes: DigestSizes,
  ) {
    // Trees are kept current as documents change, so a round never rebuilds one: each write
    // marks its path stale, and the stale nodes are re-hashed once per burst of writes, right
    // after it, so a round (ours, or a peer's asking us) finds the hashes ready.
    coordinator.changes$.subscribe((name) => {
      if (this.trees.size === 0) return
      const hash = coordinator.versionHashOf(name)
      for (const tree of this.trees.values()) tree.set(name, hash)
      if (this.refreshing) return
      this.refreshing = true
      queueMicrotask(() => {
        this.refreshing = false
        for (const tree of this.trees.values()) tree.root()
      })
    })
  }

  private refreshing = false

  private count(): number {
    return this.coordinator.documentCount()
  }

  bloom(salt: string): BloomFilter {
    const n = this.count()
    const bits = Math.max(this.sizes.bloomFilterSize, bloomParameters({ expectedItems: n, falsePositiveRate: 0.01 }).bits)
    const filter = BloomFilter.withSize(bits, bloomParameters({ expectedItems: Math.max(1, n) }).hashes)
    for (const [name, hash] of this.coordinator.digestEntries()) filter.add(item(salt, name, hash))
    return filter
  }

  tree(depth: number): MerkleTree {
    let tree = this.trees.get(depth)
    if (tree === undefined) this.trees.set(depth, (tree = MerkleTree.build(this.coordinator.digestEntries(), depth)))
    return tree
  }

  /** Answers a peer's digest request. Throws InvalidInput for a malformed or oversized one. */
  answer(input: unknown, from?: string): unknown {
    if (input !== null && typeof input === 'object' && (input as { filter?: unknown }).filter instanceof Uint8Array) {
      const bytes = (input as { filter: Uint8Array }).filter.byteLength
      if (bytes > this.sizes.maxDigestBytes) throw new InvalidInput('digest too large', { bytes, maxBytes: this.sizes.maxDigestBytes })
    }
    const request = parseWire(digestRequestSchema, input, 'anti-entropy digest')
    if (request.digest === 'bloom') {
      const theirs = BloomFilter.deserialize(request.filter, { maxBytes: this.sizes.maxDigestBytes })
      const lacking: string[] = []
      let truncated = false
      for (const [name, hash] of this.coordinator.digestEntries()) {
        if (theirs.has(item(request.salt, name, hash))) continue
        if (lacking.length >= MAX_LACKING) {
          truncated = true
          break
        }
        lacking.push(name)
      }
      return { filter: this.bloom(request.salt).serialize(), count: this.count(), lacking, truncated }
    }
    const tree = this.tree(request.depth)
    return answerMerkle(tree, request, (attach, buckets) => this.statesFor(tree, attach, buckets, from))
  }

  /**
   * The last merkle step's pull, answered with the digest: `attach` is the asker's sync request
   * for its documents in the buckets it knows to differ; the answer is a sync answer (what the
   * asker lacks) for our documents in the buckets we found differing, those it did not list
   * being ones it lacks. Like a 'sync' request, it needs 'read' (the digest's right).
   */
  private statesFor(tree: MerkleTree, attach: unknown, buckets: readonly number[], from: string | undefined): unknown {
    const asked = parseSyncRequest(attach)
    if (asked.all) throw new InvalidInput('a digest pull names its documents')
    const listed = new Map(asked.docs.map((d) => [d.name, d]))
    const docs: Array<(typeof asked.docs)[number]> = []
    for (const index of buckets) for (const name of tree.bucketAt(index)?.entries.keys() ?? []) docs.push(listed.get(name) ?? { name, version: {} })
    if (docs.length > MAX_PULLED_WITH_DIGEST) return undefined
    // Only what the asker lacks: a document it holds as we do, or newer, is not worth a state entry.
    const answer = this.coordinator.handleSyncRequest({ all: false, docs }, from)
    return { docs: answer.docs.filter((d) => d.payload !== undefined) }
  }

  /** The initiator's side: which documents differ from the peer's (with merkle, some already pulled: see MerkleOutcome). */
  async compare(kind: 'bloom' | 'merkle', salt: string, send: DigestTransport, peer: string): Promise<Comparison | MerkleOutcome> {
    return kind === 'bloom' ? this.compareBloom(salt, send) : this.compareMerkle(send, peer)
  }

  private async compareBloom(salt: string, send: DigestTransport): Promise<Comparison> {
    const mine = this.bloom(salt)
    const request: DigestRequest = { digest: 'bloom', salt, filter: mine.serialize(), count: this.count() }
    const raw = await send(request, false)
    const reply = parseWire(bloomReplySchema, raw, 'bloom digest reply')
    const theirs = BloomFilter.deserialize(reply.filter, { maxBytes: this.sizes.maxDigestBytes })
    const remoteLacks: string[] = []
    for (const [name, hash] of this.coordinator.digestEntries()) if (!theirs.has(item(salt, name, hash))) remoteLacks.push(name)
    return outcome(reply.lacking, remoteLacks, [])
  }

  private async compareMerkle(send: DigestTransport, peer: string): Promise<MerkleOutcome> {
    const tree = this.tree(merkleDepthFor(Math.max(1, this.count())))
    const ask = (request: MerkleRequest): Promise<unknown> => send(request, 'attach' in request)
    // Once the walk knows the differing buckets, its last request also pulls their documents.
    const attach = (buckets: readonly number[]) => {
      const names: string[] = []
      for (const index of buckets) for (const name of tree.bucketAt(index)?.entries.keys() ?? []) names.push(name)
      return names.length > MAX_PULLED_WITH_DIGEST ? undefined : this.coordinator.createSyncRequest(peer, names)
    }
    const diff = await diffFromRoot(tree, ask, attach)
    const found = outcome(diff.onlyRemote, diff.onlyLocal, diff.different)
    const settled: string[] = []
    let pulled = 0
    for (const answer of diff.attached) {
      // not waiting for the write, as exchange()'s pull does not: the peer still holds what it sent
      const joined = this.coordinator.applySyncResponse(answer, peer)
      pulled += joined.changed.length
      // Settled: the peer now needs nothing of ours (it sent its version, and we hold no more).
      for (const [name, view] of joined.remote) if (this.coordinator.document(name)?.missingFor(view.version, view.mark) === undefined) settled.push(name)
    }
    return { ...found, settled, pulled }
  }
}

/** localLacks: the peer has them and we do not (or not that version); remoteLacks: the reverse. */
function outcome(localLacks: string[], remoteLacks: string[], both: string[]): Comparison {
  const differing = [...new Set([...localLacks, ...remoteLacks, ...both])].sort()
  let status: DigestStatus
  if (differing.length === 0) status = 'equal'
  else if (both.length > 0 || (localLacks.length > 0 && remoteLacks.length > 0)) status = 'diverged'
  else status = localLacks.length > 0 ? 'local-behind' : 'remote-behind'
  return { status, differing }
}
