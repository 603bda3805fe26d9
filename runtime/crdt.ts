// CrdtCoordinator (pattern 1): a collection of named CRDT documents of any kind (Cv, delta,
// Cm, meet; Yjs documents are Cv), kept in storage and synced with peers over the router's
// 'crdt' family. A sync is pull-then-push: we send our versions, the peer answers with what we
// lack (computed from those versions) and its own versions, we join that in, and send the peer
// what it lacks. Each peer has its own `crdtSyncMachine` actor; retries back off through the
// clock and random effects. Inbound messages are validated whole before any document changes;
// bad ones throw typed errors, which the router counts and answers.
//
// Local changes go through `mutate` / `emitOp` / `constrain` / `edit` (or call `changed(name)`
// after changing a handler directly; Yjs documents are observed by themselves), so the
// coordinator can persist them and keep its digests current.

import { Packr } from 'msgpackr'
import { Subject, filter, type Observable } from 'rxjs'
import { createActor, fromCallback, type Actor } from 'xstate'
import * as Y from 'yjs'
import { z } from 'zod'
import { AuraError, InvalidInput, NotFound, isAuraError } from '../effects/errors.js'
import {
  VectorClock,
  YjsDocHandler,
  type CausalOp,
  type CmHandler,
  type CvHandler,
  type CvType,
  type DeltaHandler,
  type MeetMessage,
  type MvHandler,
  createCvHandler,
} from '../effects/semilattice/index.js'
import type { Storage } from '../effects/storage/index.js'
import type { Clock } from '../effects/time/index.js'
import type { Random } from '../effects/random/index.js'
import { backoffPolicySchema, type BackoffPolicy } from '../machines/retry.js'
import { crdtSyncMachine, type SyncOutcome, type SyncStepEvent, type SyncWorkerCommand, type SyncWorkerInput } from '../machines/crdt-sync.js'
import { NAMESPACE_NAME } from '../effects/storage/index.js'
import {
  constrainDocument,
  documentFor,
  documentNameSchema,
  documentVersionHash,
  handlerFactory,
  type AnyHandler,
  type CrdtDocument,
  type DocumentKind,
  type PreparedApply,
} from './crdt-document.js'
import { CrdtStore } from './crdt-persistence.js'
import { PeerViews, type DocumentView, type SyncStatusReport } from './crdt-status.js'
import {
  parseDeltaMessage,
  parsePushReply,
  parseSyncRequest,
  parseSyncResponse,
  type DocStateWire,
  type DocVersionWire,
  type SyncRequest,
  type SyncResponse,
} from './crdt-wire.js'
import { backoffTimerActor } from './effect-actors.js'
import type { RuntimeEventInput } from './events.js'
import { isTransient } from './retry.js'
import type { Router } from './router.js'
import type { Runtime } from './runtime.js'

export type { SyncStatus, SyncStatusReport } from './crdt-status.js'
export type { SyncRequest, SyncResponse } from './crdt-wire.js'

/** What a coordinator needs from a runtime; `attach(runtime)` takes these from it. */
export interface CrdtDeps {
  router: Router
  storage?: Storage
  clock: Clock
  random: Random
  emit?: (event: RuntimeEventInput) => void
  inspect?: (event: unknown) => void
}

export interface AttachOptions {
  /** storage namespace of this collection (default 'crdt.default') */
  namespace?: string
  emit?: (event: RuntimeEventInput) => void
  inspect?: (event: unknown) => void
}

export interface CrdtCoordinatorOptions {
  /** reply timeout for sync requests (default 5,000 ms) */
  requestTimeoutMs?: number
  /** create documents a peer sends that we do not have (default true: the collection replicates) */
  acceptNewDocuments?: boolean
}

export interface CrdtMetrics {
  syncCount: number
  errorCount: number
  avgLatencyMs: number
  /** payload bytes (MessagePack) of sync messages; counted only with metrics enabled */
  bytesSent: number
  bytesReceived: number
  documents: number
}

export interface SyncResult {
  peerId: string
  /** documents that changed here */
  pulled: string[]
  /** documents sent to the peer because it lacked something */
  pushed: string[]
  attempts: number
  status: SyncStatusReport
}

/** One pull-apply-push exchange, as anti-entropy runs it (no per-peer actor, no retry). */
export interface ExchangeResult {
  pulled: string[]
  pushed: string[]
  bytesSent: number
  bytesReceived: number
}

interface PullResult {
  names: readonly string[] | undefined
  response: unknown
  bytes: number
}

const peerIdSchema = z.string().min(1).max(256)
const persistedSchema = z.object({ kind: z.enum(['cv', 'delta', 'cm', 'mv']), type: z.string().min(1).max(300), payload: z.unknown() })
const sizer = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })
const DEFAULT_NAMESPACE = 'crdt.default'

type SyncActor = Actor<typeof crdtSyncMachine>

export class CrdtCoordinator {
  private readonly docs = new Map<string, CrdtDocument>()
  private readonly hashes = new Map<string, string>()
  private readonly views = new PeerViews()
  private readonly actors = new Map<string, SyncActor>()
  /** syncWithPeer callers per peer, waiting for their round's outcome */
  private readonly waiters = new Map<string, SyncWaiter[]>()
  private readonly deltaAcks = new Map<string, Map<string, number>>()
  private readonly yjsUnsubscribe = new Map<string, () => void>()
  private readonly statusSubject = new Subject<SyncStatusReport>()
  private readonly changesSubject = new Subject<string>()
  private readonly store = new CrdtStore(this.docs)
  private flushScheduled = false
  private deps: CrdtDeps | undefined
  private deltaThreshold = 64
  private metricsEnabled = false
  /** exchanges in progress that report their bytes (anti-entropy), metrics enabled or not */
  private measuring = 0
  private readonly counters = { syncCount: 0, errorCount: 0, latencyTotal: 0, bytesSent: 0, bytesReceived: 0 }
  private readonly requestTimeoutMs: number
  private readonly acceptNewDocuments: boolean

  /** Every status computed after an exchange with a peer. */
  readonly status$: Observable<SyncStatusReport> = this.statusSubject.asObservable()
  /** Status reports that say 'in-sync': this peer and that one hold the same versions. */
  readonly synced$: Observable<SyncStatusReport> = this.status$.pipe(filter((s) => s.status === 'in-sync'))
  /** Names of documents that changed here (local edits and joins alike). */
  readonly changes$: Observable<string> = this.changesSubject.asObservable()

  constructor(
    readonly peerId: string,
    options: CrdtCoordinatorOptions = {},
  ) {
    peerIdSchema.parse(peerId)
    this.requestTimeoutMs = options.requestTimeoutMs ?? 5_000
    this.acceptNewDocuments = options.acceptNewDocuments ?? true
  }

  // ── builders ────────────────────────────────────────────────────────────────────────────

  /** A coordinator holding one state-based document `name` (default 'cv') with `state`. */
  static withCvState<S>(peerId: string, state: CvHandler<S> | { type: CvType<S>; state?: S }, name = 'cv'): CrdtCoordinator {
    const handler = 'join' in state ? state : createCvHandler(state.type, state.state)
    return new CrdtCoordinator(peerId).withCvHandler(handler, name)
  }

  /** A coordinator whose delta documents compact their buffers at `n` groups. */
  static withDeltaThreshold(peerId: string, n: number): CrdtCoordinator {
    return new CrdtCoordinator(peerId).withDeltaThreshold(n)
  }

  /** A coordinator for a runtime, attached (restored from storage, registered on the router). */
  static async attach(runtime: Runtime, options: AttachOptions & CrdtCoordinatorOptions = {}): Promise<CrdtCoordinator> {
    return new CrdtCoordinator(runtime.peerId, options).attach(runtime, options)
  }

  withDeltaThreshold(n: number): this {
    if (!Number.isSafeInteger(n) || n < 1) throw new InvalidInput('delta threshold must be a positive integer', { n })
    this.deltaThreshold = n
    return this
  }

  withCvHandler<S>(handler: CvHandler<S>, name = 'cv'): this {
    return this.add(name, 'cv', handler)
  }

  withDeltaHandler<S>(handler: DeltaHandler<S>, name = 'delta'): this {
    return this.add(name, 'delta', handler)
  }

  withCmHandler<S, Op>(handler: CmHandler<S, Op>, name = 'cm'): this {
    return this.add(name, 'cm', handler)
  }

  withMvHandler<S>(handler: MvHandler<S>, name = 'mv'): this {
    return this.add(name, 'mv', handler)
  }

  withMetricsEnabled(enabled = true): this {
    this.metricsEnabled = enabled
    return this
  }

  // ── wiring ──────────────────────────────────────────────────────────────────────────────

  /** Connects to a runtime (router family 'crdt', storage, clock); restores persisted documents. */
  async attach(target: Runtime | CrdtDeps, options: AttachOptions = {}): Promise<this> {
    if (this.deps) throw new InvalidInput('coordinator is already attached')
    const runtime = 'effects' in target ? target : undefined
    const deps: CrdtDeps = runtime
      ? {
          router: runtime.router,
          storage: runtime.effects.storage,
          clock: runtime.effects.clock,
          random: runtime.effects.random,
          emit: runtime.emit,
          ...(runtime.inspect ? { inspect: runtime.inspect } : {}),
        }
      : { ...(target as CrdtDeps) }
    if (options.emit) deps.emit = options.emit
    if (options.inspect) deps.inspect = options.inspect
    const namespace = options.namespace ?? DEFAULT_NAMESPACE
    if (!NAMESPACE_NAME.test(namespace)) throw new InvalidInput('bad crdt namespace name', { namespace })
    this.deps = deps
    if (deps.storage) {
      this.store.bind(deps.storage.namespace(namespace))
      this.restore()
    }
    // Pending writes must land before the runtime closes its storage.
    runtime?.onStop(() => this.detach())
    await deps.router.register('crdt', {
      sync: ({ envelope, from }) => this.guarded(() => this.handleSyncRequest(envelope.payload, from)),
      push: ({ envelope, from }) => this.guarded(() => this.handlePush(envelope.payload, from)),
      delta: ({ envelope, from }) => this.guarded(() => this.handleDelta(envelope.payload, from)),
    })
    return this
  }

  /** Stops the per-peer actors and waits for pending writes. */
  async detach(): Promise<void> {
    for (const actor of this.actors.values()) actor.stop()
    this.actors.clear()
    this.waiters.clear()
    await this.flush()
  }

  private get attached(): CrdtDeps {
    if (!this.deps) throw new InvalidInput('coordinator is not attached to a runtime')
    return this.deps
  }

  private now(): number {
    return this.deps?.clock.now() ?? 0
  }

  // ── the collection ──────────────────────────────────────────────────────────────────────

  documents(): string[] {
    return [...this.docs.keys()].sort()
  }

  document(name: string): CrdtDocument | undefined {
    return this.docs.get(name)
  }

  /** The handler of document `name`; NotFound if absent. */
  handler<H extends AnyHandler = AnyHandler>(name: string): H {
    const doc = this.docs.get(name)
    if (!doc) throw new NotFound(`no crdt document ${name}`, { doc: name })
    return doc.handler as H
  }

  /** State of document `name` (default: the first document registered). */
  state<S = unknown>(name?: string): S {
    const doc = name === undefined ? this.docs.values().next().value : this.docs.get(name)
    if (!doc) throw new NotFound(`no crdt document ${name ?? '(default)'}`, { doc: name })
    return doc.handler.state() as S
  }

  /** Get or create a state-based document. */
  cv<S>(name: string, type: CvType<S>): CvHandler<S> {
    return this.ensure(name, 'cv', type.name) as CvHandler<S>
  }

  delta<S>(name: string, type: CvType<S>): DeltaHandler<S> {
    return this.ensure(name, 'delta', type.name) as DeltaHandler<S>
  }

  cm<S, Op>(name: string, type: { name: string }): CmHandler<S, Op> {
    return this.ensure(name, 'cm', type.name) as CmHandler<S, Op>
  }

  mv<S>(name: string, type: { name: string }): MvHandler<S> {
    return this.ensure(name, 'mv', type.name) as MvHandler<S>
  }

  /** Get or create a Yjs document: edit `handler.doc` directly, changes are observed. */
  yjs(name: string): YjsDocHandler {
    return this.ensure(name, 'cv', 'yjs') as YjsDocHandler
  }

  private ensure(name: string, kind: DocumentKind, typeName: string): AnyHandler {
    const existing = this.docs.get(name)
    if (existing) {
      if (existing.kind !== kind || existing.typeName !== typeName) {
        throw new InvalidInput(`document ${name} is ${existing.kind}/${existing.typeName}, not ${kind}/${typeName}`, { doc: name })
      }
      return existing.handler
    }
    const handler = handlerFactory(kind, typeName, { replica: this.peerId, deltaThreshold: this.deltaThreshold })()
    this.add(name, kind, handler)
    return handler
  }

  private add(name: string, kind: DocumentKind, handler: AnyHandler): this {
    documentNameSchema.parse(name)
    if (this.docs.has(name)) throw new InvalidInput(`document ${name} already exists`, { doc: name })
    this.register(documentFor(name, kind, handler))
    return this
  }

  private register(doc: CrdtDocument): void {
    this.docs.set(doc.name, doc)
    if (doc.handler instanceof YjsDocHandler) {
      const ydoc = doc.handler.doc
      this.store.trackYjs(doc.name)
      const onUpdate = (update: Uint8Array) => {
        this.store.yjsUpdate(doc.name, update)
        this.changed(doc.name)
      }
      ydoc.on('update', onUpdate)
      this.yjsUnsubscribe.set(doc.name, () => ydoc.off('update', onUpdate))
    }
    this.changed(doc.name)
  }

  /** Local change through a delta-mutator (Cv and delta documents); durable when it resolves. */
  async mutate<S>(name: string, mutator: (state: S, replica: string) => S): Promise<S> {
    const doc = this.mustGet(name, ['cv', 'delta'])
    const handler = doc.handler as CvHandler<S> | DeltaHandler<S>
    const delta = handler.mutate((s) => mutator(s, this.peerId))
    this.changed(name)
    await this.flush()
    return delta
  }

  /** Local operation on a Cm document; returns it with its causal context. */
  async emitOp<Op>(name: string, op: Op): Promise<CausalOp<Op>> {
    const doc = this.mustGet(name, ['cm'])
    const causal = (doc.handler as CmHandler<unknown, Op>).emit(op)
    this.changed(name)
    await this.flush()
    return causal
  }

  /** Local constraint on a meet document. */
  async constrain<S>(name: string, constraint: S): Promise<MeetMessage<S>> {
    const doc = this.mustGet(name, ['mv'])
    const message = constrainDocument(doc, constraint) as MeetMessage<S>
    this.changed(name)
    await this.flush()
    return message
  }

  /** Local edit of a Yjs document; returns the update it produced. */
  async edit(name: string, change: (doc: Y.Doc) => void): Promise<Uint8Array> {
    const handler = this.yjs(name)
    const update = handler.edit(change)
    await this.flush()
    return update
  }

  private mustGet(name: string, kinds: DocumentKind[]): CrdtDocument {
    const doc = this.docs.get(name)
    if (!doc) throw new NotFound(`no crdt document ${name}`, { doc: name })
    if (!kinds.includes(doc.kind)) throw new InvalidInput(`document ${name} is ${doc.kind}, expected ${kinds.join(' or ')}`, { doc: name })
    return doc
  }

  /** Tell the coordinator a handler changed outside it (persists it, refreshes digests). */
  changed(name: string): void {
    const doc = this.docs.get(name)
    if (!doc) return
    doc.invalidate()
    this.hashes.delete(name)
    this.persistSoon(name)
    this.changesSubject.next(name)
  }

  /**
   * Drops the removal records (OR-Set and OR-Map tombstones) that every peer we know of has
   * seen, going by the versions they last told us; the smaller state is persisted with the next
   * flush. A peer we know nothing of, or one behind what was dropped, is sent whole states from
   * then on, so nothing is lost by a peer we did not count. Anti-entropy runs this after every
   * round. Returns the documents that shed records.
   */
  collectRemovals(): string[] {
    const peers = this.views.peers()
    const shed: string[] = []
    for (const doc of this.docs.values()) {
      if (doc.collect === undefined) continue
      let stable = doc.version()
      for (const peer of peers) {
        const view = this.views.get(peer, doc.name)
        stable = view === undefined ? VectorClock.empty : stable.meet(view.version)
        if (stable.size === 0) break
      }
      if (stable.size === 0 || !doc.collect(stable)) continue
      doc.invalidate()
      this.persistSoon(doc.name)
      shed.push(doc.name)
    }
    return shed
  }

  /**
   * Stop counting `peerId` among the peers whose versions hold tombstones back (it left for
   * good, or for long). Safe whenever: if it comes back behind what was dropped, it is sent
   * whole states.
   */
  forgetPeer(peerId: string): void {
    this.views.forget(peerId)
  }

  private persistSoon(name: string): void {
    this.store.markDirty(name)
    if (this.store.bound && !this.flushScheduled) {
      this.flushScheduled = true
      queueMicrotask(() => {
        this.flushScheduled = false
        void this.flush().catch((error) => this.report(error, 'crdt persist'))
      })
    }
  }

  /** (name, version hash) of every document: what collection digests are built from. */
  *digestEntries(): Iterable<[string, string]> {
    for (const doc of this.docs.values()) yield [doc.name, this.versionHashOf(doc)]
  }

  versionHashOf(doc: CrdtDocument | string): string {
    const d = typeof doc === 'string' ? this.docs.get(doc) : doc
    if (!d) return ''
    let h = this.hashes.get(d.name)
    if (h === undefined) this.hashes.set(d.name, (h = documentVersionHash(d)))
    return h
  }

  // ── persistence ─────────────────────────────────────────────────────────────────────────

  /** Writes every changed document; resolves when durable. */
  flush(): Promise<void> {
    return this.store.flush()
  }

  private restore(): void {
    for (const stored of this.store.load()) {
      const name = stored.name
      try {
        const record = persistedSchema.parse(stored.record)
        let doc = this.docs.get(name)
        const created = !doc
        if (!doc) {
          doc = documentFor(name, record.kind, handlerFactory(record.kind, record.type, { replica: this.peerId, deltaThreshold: this.deltaThreshold })())
          this.register(doc)
        } else if (doc.kind !== record.kind || doc.typeName !== record.type) {
          throw new InvalidInput(`stored document ${name} is ${record.kind}/${record.type}, registered as ${doc.kind}/${doc.typeName}`)
        }
        if (record.payload !== null && record.payload !== undefined) doc.prepare(record.payload).apply()
        for (const update of stored.updates) doc.prepare(update).apply()
        // A document that held state before the restore now holds more than storage does.
        this.store.restored(stored, created)
        this.changed(name)
      } catch (error) {
        this.report(error, 'crdt restore')
      }
    }
  }

  // ── sync protocol ───────────────────────────────────────────────────────────────────────

  /** Our versions, for every document (or the named ones, and those we lack). */
  createSyncRequest(_peerId?: string, names?: readonly string[]): SyncRequest {
    const list = names ?? [...this.docs.keys()]
    return {
      all: names === undefined,
      docs: list.map((name): DocVersionWire => {
        const doc = this.docs.get(name)
        if (!doc) return { name, version: {} }
        const mark = doc.mark()
        return { name, kind: doc.kind, type: doc.typeName, version: doc.version().encode(), ...(mark ? { mark } : {}) }
      }),
    }
  }

  /** Answers a peer's versions with what it lacks. Read-only; throws InvalidInput for a bad request. */
  handleSyncRequest(request: unknown, from?: string): SyncResponse {
    const parsed = parseSyncRequest(request)
    const entries = uniqueByName(parsed.docs).map((entry) => ({ entry, version: VectorClock.decode(entry.version) }))
    const out: DocStateWire[] = []
    for (const { entry, version } of entries) {
      const doc = this.docs.get(entry.name)
      if (!doc) continue
      if ((entry.kind !== undefined && entry.kind !== doc.kind) || (entry.type !== undefined && entry.type !== doc.typeName)) {
        throw new InvalidInput(`document ${entry.name} is ${doc.kind}/${doc.typeName} here`, { doc: entry.name, kind: entry.kind, type: entry.type })
      }
      out.push(this.stateWire(doc, doc.missingFor(version, entry.mark ?? '')))
    }
    if (parsed.all) {
      const listed = new Set(entries.map((e) => e.entry.name))
      for (const doc of this.docs.values()) if (!listed.has(doc.name)) out.push(this.stateWire(doc, doc.missingFor(VectorClock.empty, '')))
    }
    if (from !== undefined) {
      const learnt: Array<[string, DocumentView]> = entries.map(({ entry, version }) => [entry.name, { version, mark: entry.mark ?? '' }])
      if (parsed.all) {
        const listed = new Set(learnt.map(([n]) => n))
        for (const name of this.docs.keys()) if (!listed.has(name)) learnt.push([name, { version: VectorClock.empty, mark: '' }])
      }
      this.views.learn(from, learnt, this.now())
    }
    const response = { docs: out }
    this.countBytes(request, response)
    return response
  }

  /** Joins a peer's answer in (validated whole first, then applied); resolves once persisted. */
  async handleSyncResponse(response: unknown, from?: string): Promise<{ changed: string[]; remote: Map<string, DocumentView> }> {
    const applied = this.applyResponse(response, from)
    await this.flush()
    return applied
  }

  // Durability of joins. A state a peer sends us in a sync answer or a push is still held by
  // that peer, which drops nothing on our reply: if we crash before the write lands we restart
  // at an older version, advertise it, and the next sync sends the difference again. So these
  // joins are applied in memory, queued for writing (changed() schedules the flush) and
  // answered at once; nothing waits for the disk. What must be durable before we answer is what
  // the sender will discard on our answer: acknowledged deltas (handleDelta), and local changes
  // before their caller is told they are done (mutate, emitOp, constrain, edit).
  private applyResponse(response: unknown, from: string | undefined): { changed: string[]; remote: Map<string, DocumentView> } {
    const parsed = parseSyncResponse(response)
    const { changed, remote } = this.applyStates(parsed.docs)
    if (from !== undefined) this.views.learn(from, remote, this.now())
    return { changed, remote }
  }

  private handlePush(payload: unknown, from: string): { docs: DocVersionWire[] } {
    const parsed = parseSyncResponse(payload)
    const { remote } = this.applyStates(parsed.docs)
    const docs: DocVersionWire[] = []
    for (const name of remote.keys()) {
      const doc = this.docs.get(name)
      if (!doc) continue
      const mark = doc.mark()
      docs.push({ name, kind: doc.kind, type: doc.typeName, version: doc.version().encode(), ...(mark ? { mark } : {}) })
      // The pusher now holds at least what it sent and what we had told it before.
      this.views.learn(from, [[name, { version: remote.get(name)!.version, mark: remote.get(name)!.mark }]], this.now())
    }
    this.countBytes(payload, { docs })
    this.publishStatus(from)
    return { docs }
  }

  private async handleDelta(payload: unknown, _from: string): Promise<{ ack: number }> {
    const message = parseDeltaMessage(payload)
    const doc = this.docs.get(message.doc)
    if (!doc) throw new NotFound('delta for unknown replica', { doc: message.doc })
    if ((doc.kind !== 'delta' && doc.kind !== 'cv') || doc.typeName !== message.type) {
      throw new InvalidInput('delta does not match the document', { doc: message.doc, kind: doc.kind, type: message.type })
    }
    const prepared = doc.prepare(message.delta)
    if (prepared.apply()) this.changed(doc.name)
    await this.flush()
    this.countBytes(payload, undefined)
    return { ack: message.to }
  }

  /** Validate every entry (decode versions and payloads, resolve types) before applying any. */
  private applyStates(entries: readonly DocStateWire[]): { changed: string[]; remote: Map<string, DocumentView> } {
    const plans: Array<{ doc: CrdtDocument; fresh: boolean; prepared: PreparedApply | undefined; view: DocumentView }> = []
    for (const entry of uniqueByName(entries)) {
      const version = VectorClock.decode(entry.version)
      let doc = this.docs.get(entry.name)
      let fresh = false
      if (doc) {
        if (doc.kind !== entry.kind || doc.typeName !== entry.type) {
          throw new InvalidInput(`document ${entry.name} is ${doc.kind}/${doc.typeName} here, not ${entry.kind}/${entry.type}`, { doc: entry.name })
        }
      } else {
        const make = handlerFactory(entry.kind, entry.type, { replica: this.peerId, deltaThreshold: this.deltaThreshold })
        if (!this.acceptNewDocuments) continue
        doc = documentFor(entry.name, entry.kind, make())
        fresh = true
      }
      const prepared = entry.payload === undefined || entry.payload === null ? undefined : doc.prepare(entry.payload)
      plans.push({ doc, fresh, prepared, view: { version, mark: entry.mark ?? '' } })
    }
    const changed: string[] = []
    const remote = new Map<string, DocumentView>()
    for (const { doc, fresh, prepared, view } of plans) {
      if (fresh) this.register(doc)
      const didChange = prepared?.apply() ?? false
      if (didChange) this.changed(doc.name)
      if (didChange || fresh) changed.push(doc.name)
      remote.set(doc.name, view)
    }
    return { changed, remote }
  }

  private stateWire(doc: CrdtDocument, payload: unknown): DocStateWire {
    const mark = doc.mark()
    return {
      name: doc.name,
      kind: doc.kind,
      type: doc.typeName,
      version: doc.version().encode(),
      ...(mark ? { mark } : {}),
      ...(payload !== undefined ? { payload } : {}),
    }
  }

  // ── exchanges ───────────────────────────────────────────────────────────────────────────

  private async pull(peerId: string, names: readonly string[] | undefined): Promise<PullResult> {
    const request = this.createSyncRequest(peerId, names)
    const response = await this.attached.router.request(peerId, 'crdt', { kind: 'sync', payload: request }, this.requestTimeoutMs)
    return { names, response, bytes: this.countBytes(response, request) }
  }

  /** Applies a pulled answer; plans the push of what the peer lacks. */
  private applyPull(peerId: string, pulled: PullResult): { changed: string[]; push: DocStateWire[] } {
    const { changed, remote } = this.applyResponse(pulled.response, peerId)
    const absent: Array<[string, DocumentView]> = []
    const push: DocStateWire[] = []
    for (const name of pulled.names ?? this.docs.keys()) {
      const doc = this.docs.get(name)
      if (!doc) continue
      let view = remote.get(name)
      if (view === undefined) absent.push([name, (view = { version: VectorClock.empty, mark: '' })])
      const payload = doc.missingFor(view.version, view.mark)
      if (payload !== undefined) push.push(this.stateWire(doc, payload))
    }
    if (absent.length > 0) this.views.learn(peerId, absent, this.now())
    return { changed, push }
  }

  private async pushTo(peerId: string, docs: DocStateWire[]): Promise<number> {
    const payload = { docs }
    const reply = await this.attached.router.request(peerId, 'crdt', { kind: 'push', payload }, this.requestTimeoutMs)
    const parsed = parsePushReply(reply)
    this.views.learn(
      peerId,
      parsed.docs.map((d) => [d.name, { version: VectorClock.decode(d.version), mark: d.mark ?? '' }] as [string, DocumentView]),
      this.now(),
    )
    return this.countBytes(reply, payload)
  }

  /** Pull, apply, push with `peerId` for the named documents (all when omitted); no retry. */
  async exchange(peerId: string, names?: readonly string[], hooks: { onPush?: (docs: number) => void } = {}): Promise<ExchangeResult> {
    peerIdSchema.parse(peerId)
    const before = { sent: this.counters.bytesSent, received: this.counters.bytesReceived }
    this.measuring += 1
    try {
      const pulled = await this.pull(peerId, names)
      const { changed, push } = this.applyPull(peerId, pulled)
      if (push.length > 0) {
        hooks.onPush?.(push.length)
        await this.pushTo(peerId, push)
      }
      this.publishStatus(peerId)
      return {
        pulled: changed,
        pushed: push.map((d) => d.name),
        bytesSent: this.counters.bytesSent - before.sent,
        bytesReceived: this.counters.bytesReceived - before.received,
      }
    } finally {
      this.measuring -= 1
    }
  }

  /** One sync round with a peer through its sync actor (pull, apply, push). */
  syncWithPeer(peerId: string): Promise<SyncResult> {
    return this.runSync(peerId, undefined)
  }

  /** Like syncWithPeer, retrying transient failures with backoff under `policy`. */
  syncWithRetry(peerId: string, policy: BackoffPolicy): Promise<SyncResult> {
    const parsed = backoffPolicySchema.safeParse(policy)
    if (!parsed.success) return Promise.reject(new InvalidInput('invalid retry policy', { issues: parsed.error.issues }))
    return this.runSync(peerId, parsed.data)
  }

  private runSync(peerId: string, policy: BackoffPolicy | undefined): Promise<SyncResult> {
    const checked = peerIdSchema.safeParse(peerId)
    if (!checked.success) return Promise.reject(new InvalidInput('invalid peer id', { peerId: String(peerId).slice(0, 64) }))
    let actor: SyncActor
    try {
      actor = this.syncActor(peerId)
    } catch (error) {
      return Promise.reject(error)
    }
    return new Promise<SyncResult>((resolve, reject) => {
      // A SYNC during a round is queued: the caller's round is the next one either way.
      const waiter: SyncWaiter = { round: actor.getSnapshot().context.round + 1, startedAt: this.now(), resolve, reject }
      this.waiters.get(peerId)!.push(waiter)
      actor.send(policy ? { type: 'SYNC', policy } : { type: 'SYNC' })
    })
  }

  private syncActor(peerId: string): SyncActor {
    let actor = this.actors.get(peerId)
    if (actor) return actor
    const deps = this.attached
    const machine = crdtSyncMachine.provide({
      actors: {
        syncWorker: fromCallback<SyncWorkerCommand, SyncWorkerInput>(({ input, sendBack, receive }) => this.syncWorker(input.peerId, sendBack, receive)),
        backoffTimer: backoffTimerActor(deps.clock, deps.random),
      },
      guards: { isRetryable: ({ event }) => isTransient((event as { error?: unknown }).error) },
    })
    actor = createActor(machine, { input: { peerId }, clock: deps.clock, ...(deps.inspect ? { inspect: deps.inspect } : {}) })
    this.waiters.set(peerId, [])
    // One subscription per peer, not one per call: waiters are settled as their round ends.
    let seen: SyncOutcome | null = null
    actor.subscribe({
      next: (snapshot) => {
        const outcome = snapshot.context.lastOutcome
        if (outcome === seen || outcome === null) return
        seen = outcome
        this.settleWaiters(peerId, outcome)
      },
      error: (error) => {
        for (const waiter of this.waiters.get(peerId)!.splice(0)) waiter.reject(error)
      },
    })
    actor.start()
    this.actors.set(peerId, actor)
    return actor
  }

  private settleWaiters(peerId: string, outcome: SyncOutcome): void {
    const waiting = this.waiters.get(peerId)!
    const due = waiting.filter((w) => w.round <= outcome.round)
    if (due.length === 0) return
    this.waiters.set(peerId, waiting.filter((w) => w.round > outcome.round))
    for (const waiter of due) {
      const ms = this.now() - waiter.startedAt
      if (outcome.ok) {
        const result = outcome.result as ApplyResult
        this.counters.syncCount += 1
        this.counters.latencyTotal += ms
        this.deps?.emit?.({ type: 'latency', name: 'crdt.sync', ms })
        waiter.resolve({ peerId, pulled: result.changed, pushed: result.pushed, attempts: outcome.attempts, status: this.publishStatus(peerId) })
      } else {
        this.counters.errorCount += 1
        const error = outcome.error?.cause ?? new AuraError('NETWORK', outcome.error?.message ?? 'sync failed')
        this.report(error, 'crdt sync')
        waiter.reject(error)
      }
    }
  }

  /**
   * The effects of one peer's sync machine, one step at a time. What a step produces for the next
   * (the pulled answer, the push plan) stays here rather than in the machine's context.
   */
  private syncWorker(peerId: string, sendBack: (event: SyncStepEvent) => void, receive: (listener: (command: SyncWorkerCommand) => void) => void): void {
    let pulled: PullResult | undefined
    let plan: DocStateWire[] = []
    let result: ApplyResult = { changed: [], pushed: [] }
    const fail = (error: unknown) => sendBack({ type: 'ERROR', error })
    receive((command) => {
      switch (command.type) {
        case 'EXCHANGE':
          this.pull(peerId, undefined).then((p) => {
            pulled = p
            sendBack({ type: 'DONE' })
          }, fail)
          return
        case 'APPLY': {
          let outcome: SyncStepEvent
          try {
            const { changed, push } = this.applyPull(peerId, pulled!)
            pulled = undefined
            plan = push
            result = { changed, pushed: push.map((d) => d.name) }
            outcome = push.length > 0 ? { type: 'DONE', push: true } : { type: 'DONE', result }
          } catch (error) {
            pulled = undefined
            outcome = { type: 'ERROR', error }
          }
          sendBack(outcome)
          return
        }
        case 'PUSH':
          this.pushTo(peerId, plan).then(() => {
            plan = []
            sendBack({ type: 'DONE', result })
          }, fail)
          return
      }
    })
  }

  /** Pushes buffered deltas of delta documents that `peerId` has not acknowledged. */
  async pushDeltas(peerId: string): Promise<string[]> {
    const acks = this.deltaAcks.get(peerId) ?? new Map<string, number>()
    this.deltaAcks.set(peerId, acks)
    const sent: string[] = []
    for (const doc of this.docs.values()) {
      if (doc.kind !== 'delta') continue
      const handler = doc.handler as DeltaHandler<unknown>
      const delta = handler.deltaSince(acks.get(doc.name) ?? 0)
      if (delta === null) continue
      const payload = { doc: doc.name, type: doc.typeName, to: handler.seq(), delta: handler.type.encode(delta) }
      const reply = (await this.attached.router.request(peerId, 'crdt', { kind: 'delta', payload }, this.requestTimeoutMs)) as { ack?: unknown }
      this.countBytes(reply, payload)
      if (typeof reply?.ack === 'number') acks.set(doc.name, reply.ack)
      // Groups every peer we push to has acknowledged are no longer needed.
      let min = Infinity
      for (const peerAcks of this.deltaAcks.values()) min = Math.min(min, peerAcks.get(doc.name) ?? 0)
      if (Number.isFinite(min) && min > 0) handler.acknowledge(min)
      sent.push(doc.name)
    }
    return sent
  }

  // ── status & metrics ────────────────────────────────────────────────────────────────────

  syncStatus(peerId: string): SyncStatusReport {
    return this.views.report(peerId, this.localViews(), this.now())
  }

  private localViews(): Map<string, DocumentView> {
    const out = new Map<string, DocumentView>()
    for (const doc of this.docs.values()) out.set(doc.name, { version: doc.version(), mark: doc.mark() })
    return out
  }

  private publishStatus(peerId: string): SyncStatusReport {
    const report = this.syncStatus(peerId)
    if (this.statusSubject.observed) this.statusSubject.next(report)
    return report
  }

  metrics(): CrdtMetrics {
    return {
      syncCount: this.counters.syncCount,
      errorCount: this.counters.errorCount,
      avgLatencyMs: this.counters.syncCount === 0 ? 0 : this.counters.latencyTotal / this.counters.syncCount,
      bytesSent: this.counters.bytesSent,
      bytesReceived: this.counters.bytesReceived,
      documents: this.docs.size,
    }
  }

  /** Counts payload bytes (when measuring); returns the bytes received. */
  private countBytes(received: unknown, sent: unknown): number {
    if (!this.metricsEnabled && this.measuring === 0) return 0
    const inBytes = received === undefined ? 0 : sizer.pack(received).length
    this.counters.bytesReceived += inBytes
    if (sent !== undefined) this.counters.bytesSent += sizer.pack(sent).length
    return inBytes
  }

  /** Runs an inbound handler; a rejection is counted here (the router counts and answers it too). */
  private async guarded<T>(fn: () => T | Promise<T>): Promise<T> {
    try {
      return await fn()
    } catch (error) {
      this.counters.errorCount += 1
      throw error
    }
  }

  private report(error: unknown, where: string): void {
    this.deps?.emit?.({
      type: 'error',
      code: isAuraError(error) ? error.code : 'UNKNOWN',
      where,
      message: error instanceof Error ? error.message : String(error),
    })
  }
}

interface ApplyResult {
  changed: string[]
  pushed: string[]
}

interface SyncWaiter {
  /** the round whose end answers this caller */
  round: number
  startedAt: number
  resolve: (result: SyncResult) => void
  reject: (error: unknown) => void
}

function uniqueByName<T extends { name: string }>(entries: readonly T[]): T[] {
  const seen = new Set<string>()
  for (const e of entries) {
    if (seen.has(e.name)) throw new InvalidInput('document listed twice in one message', { doc: e.name })
    seen.add(e.name)
  }
  return entries as T[]
}
