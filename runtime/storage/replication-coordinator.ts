// Replication coordinator (pattern 3): copies keys of a namespace to peers under a policy
// (all-ack, k-of-n quorum, async), over router family 'replication'. Each replication runs the
// replication chart (machines/replication.ts); each peer's sending is a child that retries
// through withRetry (the retry machine) until the deadline. Receivers merge what arrives with the
// namespace's resolver (LWW by hybrid logical clock, or a CRDT join) through the storage
// coordinator, which first checks that the sender holds 'replicate' on the namespace.
//
// Wire (request/reply): apply { namespace, resolver, records: [[key, StoredRecord]], capability }
// → { applied, unchanged }. Keys go in chunks that fit a frame; a peer acks a replication once
// every chunk is merged. A retry resends only the chunks not yet acknowledged (merging is
// idempotent, so a chunk whose ack was lost is harmless to resend). 'digest' and 'pull' serve
// namespace reconciliation between replicas (namespace-reconciliation.ts), which pushes by 'apply'.
//
// Nothing is dropped silently: before the first send, a repair intent for every target peer and
// key is persisted (repair-intents.ts) and each peer's is cleared when it acknowledges, so every
// peer that has not — failed, timed out, cut short by a failed quorum, or the origin died first —
// is retried by repair() later, after a restart too (anti-entropy can drive it).

import { Subject, type Observable, type Subscription } from 'rxjs'
import { createActor, fromCallback, toPromise } from 'xstate'
import { z } from 'zod'
import { AuraError, InvalidInput, NotFound, errorFromReport, isAuraError } from '../../effects/errors.js'
import type { CapabilityToken } from '../core/capability.js'
import type { Random } from '../../effects/random/index.js'
import type { StorageKey } from '../../effects/storage/index.js'
import type { Clock } from '../../effects/time/index.js'
import {
  replicationInputSchema,
  replicationMachine,
  replicationPolicySchema,
  requiredAcks,
  type PeerResult,
  type PeerSenderInput,
  type ReplicationEvent,
  type ReplicationOutput,
  type ReplicationPolicy,
} from '../../machines/replication.js'
import { errorInfo } from '../../machines/kernel.js'
import { deadlineTimerActor } from '../core/effect-actors.js'
import type { RuntimeEventInput } from '../core/events.js'
import { withRetry, type RetryPolicy } from '../timeouts/with-retry.js'
import type { Router } from '../core/router.js'
import { NamespaceReconciler, type ReconcileResult } from './namespace-reconciliation.js'
import { RepairIntents, type RepairEntry } from './repair-intents.js'
import type { StorageCoordinator, StoredRecord } from './storage-coordinator.js'
import { estimateRecordBytes } from './record.js'

export type { ReplicationPolicy, PeerResult } from '../../machines/replication.js'
export type { RepairEntry } from './repair-intents.js'
export type { ReconcileResult } from './namespace-reconciliation.js'

const FAMILY = 'replication'

const DEFAULT_POLICY: RetryPolicy = { maxAttempts: 6, initialDelayMs: 50, maxDelayMs: 1_000, multiplier: 2, jitter: 'equal' }

export const replicationCoordinatorOptionsSchema = z
  .object({
    storage: z.custom<StorageCoordinator>((v) => typeof v === 'object' && v !== null),
    router: z.custom<Router>((v) => typeof v === 'object' && v !== null),
    clock: z.custom<Clock>((v) => typeof v === 'object' && v !== null),
    random: z.custom<Random>((v) => typeof v === 'object' && v !== null),
    retry: z.custom<RetryPolicy>((v) => typeof v === 'object' && v !== null).default(DEFAULT_POLICY),
    /** whole replication deadline when the caller gives none */
    defaultTimeoutMs: z.number().positive().default(10_000),
    /** one request's wait for its reply */
    attemptTimeoutMs: z.number().positive().default(5_000),
    /** records per apply message, and their estimated bytes (kept under the router's frame limit) */
    chunkRecords: z.number().int().positive().default(1_000),
    chunkBytes: z.number().int().positive().optional(),
    /** apply messages in flight per peer */
    window: z.number().int().positive().default(2),
    emit: z.custom<(event: RuntimeEventInput) => void>((v) => typeof v === 'function').optional(),
    inspect: z.custom<(event: unknown) => void>((v) => typeof v === 'function').optional(),
  })
  .strict()
export type ReplicationCoordinatorOptions = z.input<typeof replicationCoordinatorOptionsSchema>

/** The token each peer is shown: one for all (e.g. from a namespace owner they trust), or one per peer. */
export type PresentedCapability = CapabilityToken | Readonly<Record<string, CapabilityToken>>

export interface ReconcileOptions {
  /** shown to the peer: 'replicate' on the namespace there */
  capability: PresentedCapability
  /** authorizes merging what is pulled here ('replicate' on the namespace here); default: `capability` when it is one token */
  localCapability?: CapabilityToken
  /** default: the coordinator's defaultTimeoutMs */
  timeoutMs?: number
}

export interface ReconcileOnOptions extends ReconcileOptions {
  namespaces: readonly string[]
}

const token = z.custom<CapabilityToken>((v) => typeof v === 'object' && v !== null)
const reconcileOptionsShape = {
  capability: z.custom<PresentedCapability>((v) => typeof v === 'object' && v !== null),
  localCapability: token.optional(),
  timeoutMs: z.number().positive().optional(),
}
const reconcileArgsSchema = z.object({
  peer: z.string().min(1).max(128),
  namespace: z.string().min(1).max(100),
  options: z.object(reconcileOptionsShape).strict(),
})
const reconcileOnSchema = z.object({ ...reconcileOptionsShape, namespaces: z.array(z.string().min(1).max(100)).min(1) }).strict()

export interface ReplicateOptions {
  capability: PresentedCapability
  /** default: the coordinator's defaultTimeoutMs */
  timeoutMs?: number
  retry?: RetryPolicy
}

export interface ReplicationProgress {
  id: string
  namespace: string
  /** a peer's status changed, or (peer undefined) the replication reached `phase` */
  peer?: string
  status?: PeerResult['status']
  attempts?: number
  error?: { code: string; message: string }
  phase?: 'satisfied' | 'settled' | 'failed' | 'cancelled'
}

export interface ReplicationResult {
  id: string
  policy: ReplicationPolicy
  required: number
  /** peers that had acknowledged when the policy was met */
  acked: string[]
  peers: Record<string, PeerResult>
  /** every peer's final fate (acked, failed or timed out), once known */
  settled: Promise<ReplicationOutput>
}

export class ReplicationCoordinator {
  readonly #o: z.output<typeof replicationCoordinatorOptionsSchema>
  readonly #progress = new Subject<ReplicationProgress>()
  readonly progress$: Observable<ReplicationProgress> = this.#progress.asObservable()
  readonly #repairs: RepairIntents
  readonly #reconciler: NamespaceReconciler
  #seq = 0

  constructor(options: ReplicationCoordinatorOptions) {
    const parsed = replicationCoordinatorOptionsSchema.safeParse(options)
    if (!parsed.success) throw new InvalidInput('invalid replication coordinator options', { issues: parsed.error.issues })
    this.#o = parsed.data
    this.#repairs = new RepairIntents(this.#o.storage.effect)
    this.#reconciler = new NamespaceReconciler({
      storage: this.#o.storage,
      router: this.#o.router,
      clock: this.#o.clock,
      maxReplyBytes: this.#maxChunkBytes(),
      push: (peer, namespace, records, capability, deadlineAt) => this.#push(peer, namespace, records, capability, deadlineAt),
    })
  }

  /** Serves 'apply', 'digest' and 'pull' from peers, each only if the sender holds 'replicate' on the namespace. */
  async attach(): Promise<void> {
    await this.#o.router.register(FAMILY, {
      ...this.#reconciler.handlers(),
      apply: async ({ envelope, from }) => {
        const p = (envelope.payload ?? {}) as Record<string, unknown>
        if (typeof p.namespace !== 'string') throw new InvalidInput('apply needs a namespace')
        return this.#o.storage.mergeReplica(from, {
          namespace: p.namespace,
          resolver: p.resolver as never,
          records: p.records as never,
          capability: p.capability,
        })
      },
    })
  }

  /**
   * Replicates the local records of `keys` (one key or many) to `peers`. Resolves when the policy
   * is met (all: every peer acked; quorum k: k acks; async: at once), rejects when it cannot be
   * met by the deadline (DeadlineExceeded) or too many peers refused (their common error code).
   */
  async replicateToPeers(
    namespace: string,
    keys: StorageKey | readonly StorageKey[],
    peers: readonly string[],
    policy: ReplicationPolicy,
    options: ReplicateOptions,
  ): Promise<ReplicationResult> {
    const parsedPolicy = replicationPolicySchema.safeParse(policy)
    if (!parsedPolicy.success) throw new InvalidInput('invalid replication policy', { issues: parsedPolicy.error.issues })
    const list = Array.isArray(keys) ? (keys as StorageKey[]) : [keys as StorageKey]
    const records = this.#o.storage.records(namespace, list)
    if (records.length === 0) throw new NotFound('none of the keys is stored here', { namespace, keys: list.length })
    const required = requiredAcks(parsedPolicy.data, peers.length)
    const timeoutMs = options.timeoutMs ?? this.#o.defaultTimeoutMs
    const input = replicationInputSchema.safeParse({ peers: [...peers], required, deadlineAt: this.#o.clock.now() + timeoutMs })
    if (!input.success) throw new InvalidInput('invalid replication request', { issues: input.error.issues })
    const capabilityFor = this.#capabilities(options.capability, peers)
    const resolver = this.#o.storage.resolverOf(namespace)
    const chunks = this.#chunk(records)
    const id = `${this.#o.router.self.slice(-6)}-${++this.#seq}`
    const retry = options.retry ?? this.#o.retry
    const startedAt = this.#o.clock.now()

    const machine = replicationMachine.provide({
      actors: {
        deadlineTimer: deadlineTimerActor(this.#o.clock),
        peerSender: fromCallback<ReplicationEvent, PeerSenderInput>(({ input: { peer, deadlineAt }, sendBack }) => {
          const controller = new AbortController()
          let attempts = 0
          const acked = new Set<number>()
          const payloadOf = (i: number) => ({ namespace, resolver, records: chunks[i]!, capability: capabilityFor(peer) })
          withRetry(
            async (attempt, signal) => {
              attempts = attempt
              await this.#sendChunks(peer, chunks.length, acked, payloadOf, deadlineAt, signal)
            },
            {
              policy: retry,
              deadlineAt,
              signal: controller.signal,
              clock: this.#o.clock,
              random: this.#o.random,
              ...(this.#o.inspect ? { inspect: this.#o.inspect } : {}),
            },
          ).then(
            () => !controller.signal.aborted && sendBack({ type: 'PEER_ACKED', peer, attempts }),
            (error: unknown) => !controller.signal.aborted && sendBack({ type: 'PEER_FAILED', peer, attempts, error: errorInfo(error) }),
          )
          return () => controller.abort()
        }),
      },
    })

    const intent = await this.#repairs.record(
      namespace,
      records.map(([key]) => key),
      peers,
    )
    const clearing: Array<Promise<void>> = []
    const actor = createActor(machine, { input: input.data, ...(this.#o.inspect ? { inspect: this.#o.inspect } : {}) })
    const satisfied = new Promise<ReplicationResult>((resolve, reject) => {
      let previous: Record<string, PeerResult> = {}
      let answered = false
      const settled = toPromise(actor).then(async (output) => {
        this.#o.emit?.({ type: 'latency', name: 'replication.settled', ms: this.#o.clock.now() - startedAt })
        for (const peer of peers) if (output.peers[peer]?.status !== 'acked') intent.missed(peer)
        await Promise.all(clearing)
        return output
      })
      // The repair bookkeeping must not become an unhandled rejection when nobody awaits `settled`.
      settled.catch((error) =>
        this.#o.emit?.({ type: 'error', code: isAuraError(error) ? error.code : 'STORAGE', where: 'replication.repair', message: String(error) }),
      )
      actor.subscribe((snapshot) => {
        const { results } = snapshot.context
        for (const [peer, r] of Object.entries(results)) {
          if (previous[peer]?.status !== r.status && r.status !== 'pending') {
            if (r.status === 'acked') clearing.push(intent.acked(peer))
            this.#progress.next({
              id,
              namespace,
              peer,
              status: r.status,
              attempts: r.attempts,
              ...(r.error ? { error: { code: r.error.code, message: r.error.message } } : {}),
            })
          }
        }
        previous = results
        const phase =
          snapshot.status === 'done'
            ? snapshot.output!.status === 'succeeded'
              ? 'settled'
              : snapshot.output!.status
            : snapshot.value === 'satisfied'
              ? 'satisfied'
              : undefined
        if (phase) this.#progress.next({ id, namespace, phase })
        if (answered || phase === undefined) return
        answered = true
        if (phase === 'satisfied' || phase === 'settled') {
          this.#o.emit?.({ type: 'latency', name: 'replication.satisfied', ms: this.#o.clock.now() - startedAt })
          const acked = Object.entries(results).flatMap(([peer, r]) => (r.status === 'acked' ? [peer] : []))
          resolve({ id, policy: parsedPolicy.data, required, acked, peers: structuredClone(results), settled })
        } else {
          const output = snapshot.output!
          // the peers' own errors are in `peers`; the whole replication fails with their common code
          const details = { id, namespace, required, acked: output.acked.length, peers: output.peers }
          const error = errorFromReport({ code: output.error?.code, message: output.error?.message }, 'PEER_UNREACHABLE', 'replication failed', {
            details,
          }) as AuraError
          this.#o.emit?.({ type: 'error', code: error.code, where: 'replication', message: error.message })
          reject(error)
        }
      })
    })
    actor.start()
    return satisfied
  }

  /** Keys awaiting repair, per peer. */
  pendingRepairs(): RepairEntry[] {
    return this.#repairs.pending()
  }

  /**
   * Runs repair() on every tick of `ticks` — anti-entropy's `rounds$` in the usual composition —
   * so the 'async' policy means what it says: fire now, repair later by anti-entropy. A tick that
   * arrives while a repair is still running is skipped, not queued.
   */
  repairOn(ticks: Observable<unknown>, options: ReplicateOptions): Subscription {
    let running = false
    return ticks.subscribe(() => {
      if (running || this.#repairs.idle().length === 0) return
      running = true
      this.repair(options)
        .catch((error) =>
          this.#o.emit?.({ type: 'error', code: isAuraError(error) ? error.code : 'STORAGE', where: 'replication.repairOn', message: String(error) }),
        )
        .finally(() => (running = false))
    })
  }

  /** Retries every pending repair no replication is working on (all-ack per peer and namespace); entries acknowledged are removed. */
  async repair(options: ReplicateOptions): Promise<{ repaired: number; remaining: number }> {
    const groups = new Map<string, RepairEntry[]>()
    // entries a replication in flight covers are left to it: it acks them or leaves them for next time
    for (const entry of this.#repairs.idle()) {
      const group = `${entry.peer}\u0000${entry.namespace}`
      groups.set(group, [...(groups.get(group) ?? []), entry])
    }
    let repaired = 0
    for (const entries of groups.values()) {
      const { peer, namespace } = entries[0]!
      try {
        const result = await this.replicateToPeers(
          namespace,
          entries.map((e) => e.key),
          [peer],
          { kind: 'all' },
          options,
        )
        await result.settled
        repaired += entries.length
      } catch {
        // stays queued for the next round
      }
    }
    return { repaired, remaining: this.pendingRepairs().length }
  }

  /**
   * Brings `namespace` here and on `peer` to the same records without the writer: exchanges Merkle
   * digests, pulls what this peer lacks, pushes what `peer` lacks, both merged by the namespace's
   * resolver (namespace-reconciliation.ts). `capability` must grant this peer 'replicate' on the
   * namespace there, and `localCapability` (or the same token, e.g. from an owner both trust) here;
   * PermissionDenied otherwise, with nothing applied on either side.
   */
  async reconcile(peer: string, namespace: string, options: ReconcileOptions): Promise<ReconcileResult> {
    const parsed = reconcileArgsSchema.safeParse({ peer, namespace, options })
    if (!parsed.success) throw new InvalidInput('invalid reconcile request', { issues: parsed.error.issues })
    const capability = this.#capabilities(options.capability, [peer])(peer)
    const local = options.localCapability ?? (typeof (options.capability as CapabilityToken).signature === 'string' ? capability : undefined)
    if (local === undefined) throw new InvalidInput('reconcile needs a localCapability when capabilities are given per peer')
    // Checked before any digest is asked for, so a peer without the right here learns nothing.
    await this.#o.storage.authorizeOwn(namespace, 'replicate', local)
    const startedAt = this.#o.clock.now()
    const result = await this.#reconciler.reconcile(peer, namespace, { remote: capability, local }, startedAt + (options.timeoutMs ?? this.#o.defaultTimeoutMs))
    this.#o.emit?.({ type: 'latency', name: 'replication.reconcile', ms: this.#o.clock.now() - startedAt })
    return result
  }

  /**
   * Reconciles `namespaces` with every peer an anti-entropy round completed with: pass
   * `antiEntropy.progress$` (its PeerCompleted events name the peers; `rounds$` summaries do not).
   * A peer still being reconciled when it completes again is skipped, not queued.
   */
  reconcileOn(progress: Observable<{ type: string; peerId?: string }>, options: ReconcileOnOptions): Subscription {
    const parsed = reconcileOnSchema.safeParse(options)
    if (!parsed.success) throw new InvalidInput('invalid reconcileOn options', { issues: parsed.error.issues })
    const { namespaces, ...reconcileOptions } = options
    const running = new Set<string>()
    return progress.subscribe((event) => {
      const peer = event.peerId
      if (event.type !== 'PeerCompleted' || peer === undefined || running.has(peer)) return
      running.add(peer)
      void (async () => {
        for (const namespace of namespaces) {
          await this.reconcile(peer, namespace, reconcileOptions).catch((error: unknown) =>
            this.#o.emit?.({
              type: 'error',
              code: isAuraError(error) ? error.code : 'NETWORK',
              where: 'replication.reconcileOn',
              message: String(error),
              remote: peer,
            }),
          )
        }
      })().finally(() => running.delete(peer))
    })
  }

  // ---------------------------------------------------------------------------------------------

  async #sendChunks(
    peer: string,
    total: number,
    acked: Set<number>,
    payloadOf: (i: number) => unknown,
    deadlineAt: number,
    signal: AbortSignal,
  ): Promise<void> {
    const todo = Array.from({ length: total }, (_, i) => i).filter((i) => !acked.has(i))
    const lane = async () => {
      for (let next = todo.shift(); next !== undefined; next = todo.shift()) {
        if (signal.aborted) throw new AuraError('CANCELLED', 'replication to this peer was stopped')
        const wait = Math.max(1, Math.min(this.#o.attemptTimeoutMs, deadlineAt - this.#o.clock.now()))
        await this.#o.router.request(peer, FAMILY, { kind: 'apply', payload: payloadOf(next), deadline: deadlineAt }, wait)
        acked.add(next)
      }
    }
    await Promise.all(Array.from({ length: Math.min(this.#o.window, todo.length) }, lane))
  }

  #capabilities(capability: PresentedCapability, peers: readonly string[]): (peer: string) => CapabilityToken {
    if (typeof capability !== 'object' || capability === null) throw new InvalidInput('replication needs a capability to present')
    if (typeof (capability as CapabilityToken).signature === 'string') return () => capability as CapabilityToken
    const byPeer = capability as Record<string, CapabilityToken>
    const missing = peers.filter((p) => !Object.hasOwn(byPeer, p))
    if (missing.length > 0) throw new InvalidInput('no capability to present to some peers', { missing: missing.join(',') })
    return (peer) => byPeer[peer]!
  }

  #maxChunkBytes(): number {
    return this.#o.chunkBytes ?? Math.max(1024, Math.floor(this.#o.router.maxFrameBytes * 0.75))
  }

  /** Sends records to one peer to merge, in chunks, until every chunk is acknowledged. */
  async #push(peer: string, namespace: string, records: Array<[StorageKey, StoredRecord]>, capability: unknown, deadlineAt: number): Promise<void> {
    const chunks = this.#chunk(records)
    const resolver = this.#o.storage.resolverOf(namespace)
    const payloadOf = (i: number) => ({ namespace, resolver, records: chunks[i]!, capability })
    await this.#sendChunks(peer, chunks.length, new Set(), payloadOf, deadlineAt, new AbortController().signal)
  }

  #chunk(records: Array<[StorageKey, StoredRecord]>): Array<Array<[StorageKey, StoredRecord]>> {
    const maxBytes = this.#maxChunkBytes()
    const chunks: Array<Array<[StorageKey, StoredRecord]>> = []
    let current: Array<[StorageKey, StoredRecord]> = []
    let bytes = 0
    for (const entry of records) {
      const size = estimateRecordBytes(entry)
      if (current.length > 0 && (current.length >= this.#o.chunkRecords || bytes + size > maxBytes)) {
        chunks.push(current)
        current = []
        bytes = 0
      }
      current.push(entry)
      bytes += size
    }
    if (current.length > 0) chunks.push(current)
    return chunks
  }
}
