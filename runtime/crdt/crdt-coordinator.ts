// CrdtCoordinator (pattern 1): a collection of named CRDT documents of any kind (Cv, delta,
// Cm, meet; Yjs documents are Cv), kept in storage and synced with peers over the router's
// 'crdt' family. A sync is pull-then-push: we send our versions, the peer answers with what we
// lack (computed from those versions) and its own versions, we join that in, and send the peer
// what it lacks. Each peer has its own `crdtSyncMachine` actor; retries back off through the
// clock and random effects. Inbound messages are validated whole before any document changes;
// bad ones throw typed errors, which the router counts and answers.
//
// Peers reach the collection only through its CollectionGate (collection-gate.ts): every sync,
// push, delta and anti-entropy digest carries a capability (read to be answered, replicate to
// write in), and answers are joined only from peers holding replicate here. The coordinator
// presents, to each peer, a token that peer issued it (`addCapability`), else any token it was
// given, else one it issues itself (enough where the peer trusts it as a root).
//
// Types resolve through the coordinator's own TypeRegistry: the built-ins plus what the
// application registers (`registerType`). A document of a type this peer lacks is skipped and
// reported (`SyncResult.skipped`), never failing the rest of the exchange.
//
// Local changes go through `mutate` / `emitOp` / `constrain` / `edit` (or call `changed(name)`
// after changing a handler directly; Yjs documents are observed by themselves), so the
// coordinator can persist them and keep its digests current.

import { Subject, filter, type Observable } from 'rxjs'
import { createActor, type Actor } from 'xstate'
import * as Y from 'yjs'
import { z } from 'zod'
import { AuraError, Cancelled, DeadlineExceeded, InvalidInput, NotFound, PermissionDenied, errorFromReport, isAuraError } from '../../effects/errors.js'
import { capabilityTokenSchema, type CapabilityToken, type Right } from '../core/capability.js'
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
  type TypeKind,
  TypeRegistry,
  createCvHandler,
} from './lattices/index.js'
import type { Storage } from '../../effects/storage/index.js'
import type { Clock } from '../../effects/time/index.js'
import type { Random } from '../../effects/random/index.js'
import { backoffPolicySchema, type BackoffPolicy } from '../../machines/kernel.js'
import { crdtSyncMachine, type SyncOutcome, type SyncStepEvent } from '../../machines/crdt-sync.js'
import { NAMESPACE_NAME } from '../../effects/storage/index.js'
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
} from './document.js'
import { CrdtStore } from './persistence.js'
import { PeerViews, type DocumentView, type SyncStatusReport } from './status.js'
import {
  parseDeltaMessage,
  parsePushReply,
  parseSyncRequest,
  parseSyncResponse,
  type DocStateWire,
  type DocVersionWire,
  type SyncRequest,
  type SyncResponse,
} from './sync-wire.js'
import { CollectionGate, rootIssuer, type Authorizer, type GatedKind } from './collection-gate.js'
import { backoffTimerActor } from '../core/effect-actors.js'
import { currentDeadline, currentSignal } from '../timeouts/timeout-context.js'
import type { RuntimeEventInput } from '../core/events.js'
import { isTransient } from '../timeouts/with-retry.js'
import type { FrameBytesListener, PatternFamily, Router } from '../core/router.js'
import type { Runtime } from '../core/runtime.js'
import type { Components, Service } from '../core/components.js'
import type { StorageCoordinator } from '../storage/storage-coordinator.js'
import { plainMessagePack } from '../core/wire.js'

export type { SyncStatus, SyncStatusReport } from './status.js'
export type { SyncRequest, SyncResponse } from './sync-wire.js'

/** What a coordinator needs from a runtime; `attach(runtime)` takes these from it. */
export interface CrdtDeps {
  router: Router
  storage?: Storage
  clock: Clock
  random: Random
  emit?: (event: RuntimeEventInput) => void
  inspect?: (event: unknown) => void
  /** checks a peer's capability on the collection (default: every peer is denied) */
  authorize?: Authorizer
  /** issues a root capability as this peer (for grantAccess and the self-issued credential) */
  grant?: (options: { audience: string; namespace: string; rights: readonly Right[]; expiresAt: number }) => Promise<CapabilityToken>
}

export interface AttachOptions {
  /** storage namespace of this collection, and the name peers address it by (default 'crdt.default') */
  namespace?: string
  /** capabilities this peer presents to others for the collection (see addCapability) */
  capabilities?: CapabilityToken[]
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
  /** documents peers sent whose type is not registered here (each time one was left out) */
  skippedUnknownType: number
}

export interface SyncResult {
  peerId: string
  /** documents that changed here */
  pulled: string[]
  /** documents sent to the peer because it lacked something */
  pushed: string[]
  /** documents the peer sent whose type this peer does not know (left out, reported) */
  skipped: string[]
  attempts: number
  /** how this peer compares with the peer, made when first read (see its comparedAt) */
  status: SyncStatusReport
}

/** One pull-apply-push exchange, as anti-entropy runs it (no per-peer actor, no retry). */
export interface ExchangeResult {
  pulled: string[]
  pushed: string[]
  skipped: string[]
  /** bytes of the frames this exchange sent and received (envelopes included, as on the wire) */
  bytesSent: number
  bytesReceived: number
}

interface PullResult {
  names: readonly string[] | undefined
  response: unknown
  bytes: number
}

const peerIdSchema = z.string().min(1).max(256)
/** peerIdSchema's test without zod, for the per-sync check (the schema decides what this does not accept). */
const isPeerId = (value: unknown): boolean => (typeof value === 'string' && value.length >= 1 && value.length <= 256) || peerIdSchema.safeParse(value).success
const persistedSchema = z.object({ kind: z.enum(['cv', 'delta', 'cm', 'mv']), type: z.string().min(1).max(300), payload: z.unknown() })
const DEFAULT_NAMESPACE = 'crdt.default'
/** Capabilities this peer was given for its collections: [collection, token id] → token. */
const CREDENTIALS_NAMESPACE = 'aura.crdt.credentials'
/** Lifetime of the capability this peer issues itself, and of grantAccess tokens by default. */
const CREDENTIAL_MS = 30 * 24 * 3600_000
const TYPE_KIND: Record<DocumentKind, TypeKind> = { cv: 'cv', delta: 'cv', cm: 'cm', mv: 'meet' }
const denyAll: Authorizer = async () => {
  throw new PermissionDenied('this collection serves no peers (attached without an authorizer)', { reason: 'no-authorizer' })
}

type SyncActor = Actor<typeof crdtSyncMachine>

export class CrdtCoordinator {
  private readonly docs = new Map<string, CrdtDocument>()
  /** the documents with removal records to shed (OR-Set, OR-Map...): all collectRemovals visits */
  private readonly collectable = new Set<CrdtDocument>()
  private readonly hashes = new Map<string, string>()
  private readonly views = new PeerViews()
  private readonly actors = new Map<string, SyncActor>()
  /** syncWithPeer callers per peer, waiting for their round's outcome */
  private readonly waiters = new Map<string, SyncWaiter[]>()
  /** peers whose idle machine starts a round at the end of this turn (see startRoundSoon) */
  private readonly pendingStarts = new Map<string, { policy: BackoffPolicy | undefined }>()
  private readonly deltaAcks = new Map<string, Map<string, number>>()
  private readonly yjsUnsubscribe = new Map<string, () => void>()
  private readonly statusSubject = new Subject<SyncStatusReport>()
  private readonly changesSubject = new Subject<string>()
  private readonly store = new CrdtStore(this.docs)
  /** the built-in types and the application's own */
  readonly types = new TypeRegistry()
  private readonly credentials: CapabilityToken[] = []
  private readonly credentialWrites = new Set<Promise<void>>()
  private selfCredential: Promise<CapabilityToken> | undefined
  private gate: CollectionGate | undefined
  private readonly releases: Array<() => void> = []
  private namespace = DEFAULT_NAMESPACE
  private flushScheduled = false
  private deps: CrdtDeps | undefined
  private deltaThreshold = 64
  private metricsEnabled = false
  private readonly counters = { syncCount: 0, errorCount: 0, latencyTotal: 0, bytesSent: 0, bytesReceived: 0, skipped: 0 }
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

  /**
   * A coordinator for a runtime, attached (restored from storage, registered on the router): the
   * same as adding the service `crdt(options)` under the name `crdt:<namespace>`.
   */
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

  /**
   * Connects to a runtime as its service `crdt:<namespace>` (stopped with it), or to explicit
   * deps: router family 'crdt', storage, clock; restores persisted documents.
   */
  async attach(target: Runtime | CrdtDeps, options: AttachOptions = {}): Promise<this> {
    if ('addService' in target) {
      await target.addService(`crdt:${options.namespace ?? DEFAULT_NAMESPACE}`, {
        kind: 'crdt',
        dependsOn: ['storage'],
        create: (components, deps) => this.serviceOn(components, deps.storage as StorageCoordinator, options),
      })
      return this
    }
    return this.attachTo({ ...target }, options)
  }

  /** This coordinator as a runtime service: attached on start, detached on stop (see crdt()). */
  serviceOn(components: Components, storage: StorageCoordinator, options: AttachOptions = {}): Service<this> {
    const deps: CrdtDeps = {
      router: components.router,
      storage: components.storage,
      clock: components.clock,
      random: components.random,
      emit: (event) => components.bus.emit(event),
      ...(components.inspect ? { inspect: components.inspect } : {}),
      authorize: (holder, namespace, right, capability) => storage.authorize(holder, namespace, right, capability),
      grant: (grant) => storage.grant(grant),
    }
    return { api: this, start: () => this.attachTo(deps, options).then(() => undefined), stop: () => this.detach() }
  }

  private async attachTo(deps: CrdtDeps, options: AttachOptions): Promise<this> {
    if (this.deps) throw new InvalidInput('coordinator is already attached')
    if (options.emit) deps.emit = options.emit
    if (options.inspect) deps.inspect = options.inspect
    const namespace = options.namespace ?? DEFAULT_NAMESPACE
    if (!NAMESPACE_NAME.test(namespace)) throw new InvalidInput('bad crdt namespace name', { namespace })
    this.namespace = namespace
    this.deps = deps
    this.gate = CollectionGate.of(deps.router, deps.authorize ?? denyAll)
    // Serve first: a second coordinator on this collection fails here, before touching anything.
    try {
      await this.serve('crdt', {
        sync: { right: 'read', handle: (body, from) => this.guarded(() => this.handleSyncRequest(body, from)) },
        push: { right: 'replicate', handle: (body, from) => this.guarded(() => this.handlePush(body, from)) },
        delta: { right: 'replicate', handle: (body, from) => this.guarded(() => this.handleDelta(body, from)) },
      })
    } catch (error) {
      this.deps = undefined
      throw error
    }
    if (deps.storage) {
      this.store.bind(deps.storage.namespace(namespace))
      this.restore()
      this.restoreCredentials(deps.storage)
    }
    for (const token of options.capabilities ?? []) this.addCapability(token)
    return this
  }

  /** Stops serving peers, stops the per-peer actors and waits for pending writes. */
  async detach(): Promise<void> {
    for (const release of this.releases.splice(0)) release()
    for (const actor of this.actors.values()) actor.stop()
    this.actors.clear()
    this.waiters.clear()
    await Promise.all([this.flush(), ...this.credentialWrites])
  }

  // ── access ──────────────────────────────────────────────────────────────────────────────

  /** The collection's name on the wire: its storage namespace. */
  get collection(): string {
    return this.namespace
  }

  /**
   * Adds a capability this peer presents for the collection (its audience must be this peer).
   * Kept in storage beside the collection, so a restarted peer still holds what it was given.
   */
  addCapability(token: CapabilityToken): this {
    const parsed = capabilityTokenSchema.safeParse(token)
    if (!parsed.success) throw new InvalidInput('not a capability token', { issues: parsed.error.issues })
    if (parsed.data.audience !== this.peerId) throw new InvalidInput('capability is held by another peer', { audience: parsed.data.audience })
    const held = parsed.data as CapabilityToken
    if (this.credentials.some((t) => t.id === held.id)) return this
    this.credentials.push(held)
    const kept = this.deps?.storage?.namespace(CREDENTIALS_NAMESPACE)
    const write = kept?.put([this.namespace, held.id], held).catch((error) => this.report(error, 'crdt credentials'))
    if (write) {
      this.credentialWrites.add(write)
      void write.then(() => this.credentialWrites.delete(write))
    }
    return this
  }

  private restoreCredentials(storage: Storage): void {
    const now = this.now()
    for (const { key, value } of storage.namespace(CREDENTIALS_NAMESPACE).range()) {
      if (!Array.isArray(key) || key[0] !== this.namespace) continue
      const parsed = capabilityTokenSchema.safeParse(value)
      if (parsed.success && parsed.data.audience === this.peerId && parsed.data.expiresAt > now) this.credentials.push(parsed.data as CapabilityToken)
    }
  }

  /** A root capability from this peer letting `peerId` read (sync from) and replicate into this collection. */
  async grantAccess(peerId: string, options: { rights?: Right[]; expiresInMs?: number } = {}): Promise<CapabilityToken> {
    peerIdSchema.parse(peerId)
    const grant = this.attached.grant
    if (!grant) throw new InvalidInput('coordinator was attached without a way to sign capabilities')
    return grant({
      audience: peerId,
      namespace: this.namespace,
      rights: options.rights ?? ['read', 'replicate'],
      expiresAt: this.now() + (options.expiresInMs ?? CREDENTIAL_MS),
    })
  }

  /** What this peer presents to `peer`: a token that peer issued, else any given one, else its own. */
  credentialFor(peer: string): Promise<CapabilityToken> {
    const now = this.now()
    // One pass, no arrays: every request of every sync asks this.
    let fallback: CapabilityToken | undefined
    for (const token of this.credentials) {
      if (token.expiresAt <= now) continue
      if (rootIssuer(token) === peer) return Promise.resolve(token)
      fallback ??= token
    }
    if (fallback) return Promise.resolve(fallback)
    const grant = this.deps?.grant
    if (!grant)
      return Promise.reject(new PermissionDenied('no capability to present for this collection', { reason: 'no-credential', collection: this.namespace }))
    this.selfCredential ??= grant({ audience: this.peerId, namespace: this.namespace, rights: ['read', 'replicate'], expiresAt: now + CREDENTIAL_MS })
    return this.selfCredential
  }

  /** Serves `kinds` of `family` for this collection through its gate (anti-entropy serves digests so). */
  async serve(family: PatternFamily, kinds: Record<string, GatedKind>): Promise<void> {
    if (!this.gate) throw new InvalidInput('coordinator is not attached to a runtime')
    this.releases.push(await this.gate.serve(family, this.namespace, (peer) => this.credentialFor(peer), kinds))
  }

  /**
   * A request to `peerId` about this collection, with this peer's capability; the reply's body.
   * Inside a timeout scope (withTimeout) it waits no longer than the scope has left, and the
   * peer is told that budget.
   */
  async request(
    peerId: string,
    family: PatternFamily,
    kind: string,
    body: unknown,
    replyRight?: Right,
    timeoutMs = this.requestTimeoutMs,
    /** told the request's and the reply's frame sizes once the reply is in (see the router) */
    onFrameBytes?: FrameBytesListener,
  ): Promise<unknown> {
    if (!this.gate) throw new InvalidInput('coordinator is not attached to a runtime')
    const deadline = currentDeadline()
    const wait = deadline === undefined ? timeoutMs : Math.min(timeoutMs, deadline - this.now())
    if (wait <= 0) throw new DeadlineExceeded(`no time left for ${family}/${kind} to ${peerId}`, { peer: peerId, kind })
    const credential = await this.credentialFor(peerId)
    return this.gate.request(peerId, family, {
      collection: this.namespace,
      kind,
      body,
      credential,
      timeoutMs: wait,
      ...(deadline !== undefined ? { deadline } : {}),
      ...(replyRight ? { replyRight } : {}),
      ...(onFrameBytes ? { onFrameBytes } : {}),
    })
  }

  /** Makes an application type known here, so documents of it can be created and synced. */
  registerType(name: string, type: { name: string }, kind: TypeKind = 'cv'): this {
    if (type?.name !== name) throw new InvalidInput('a type is registered under its own name', { name, typeName: String(type?.name).slice(0, 300) })
    this.types.register(kind, type)
    return this
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

  /** How many documents the collection holds (documents() sorts every name; this does not). */
  documentCount(): number {
    return this.docs.size
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
  /** Get or create a state-based document (an application type is registered on first use). */
  cv<S>(name: string, type: CvType<S>): CvHandler<S> {
    return this.ensure(name, 'cv', type) as CvHandler<S>
  }

  delta<S>(name: string, type: CvType<S>): DeltaHandler<S> {
    return this.ensure(name, 'delta', type) as DeltaHandler<S>
  }

  cm<S, Op>(name: string, type: { name: string }): CmHandler<S, Op> {
    return this.ensure(name, 'cm', type) as CmHandler<S, Op>
  }

  mv<S>(name: string, type: { name: string }): MvHandler<S> {
    return this.ensure(name, 'mv', type) as MvHandler<S>
  }

  /** Get or create a Yjs document: edit `handler.doc` directly, changes are observed. */
  yjs(name: string): YjsDocHandler {
    return this.ensure(name, 'cv', { name: 'yjs' }) as YjsDocHandler
  }

  private ensure(name: string, kind: DocumentKind, type: { name: string }): AnyHandler {
    const typeName = type.name
    if (!this.types.has(TYPE_KIND[kind], typeName)) this.types.register(TYPE_KIND[kind], type)
    const existing = this.docs.get(name)
    if (existing) {
      if (existing.kind !== kind || existing.typeName !== typeName) {
        throw new InvalidInput(`document ${name} is ${existing.kind}/${existing.typeName}, not ${kind}/${typeName}`, { doc: name })
      }
      return existing.handler
    }
    const handler = handlerFactory(kind, typeName, this.handlerOptions())()
    this.add(name, kind, handler)
    return handler
  }

  private handlerOptions() {
    return { replica: this.peerId, deltaThreshold: this.deltaThreshold, types: this.types }
  }

  private add(name: string, kind: DocumentKind, handler: AnyHandler): this {
    documentNameSchema.parse(name)
    if (this.docs.has(name)) throw new InvalidInput(`document ${name} already exists`, { doc: name })
    this.register(documentFor(name, kind, handler))
    return this
  }

  private register(doc: CrdtDocument): void {
    this.docs.set(doc.name, doc)
    if (doc.collect !== undefined) this.collectable.add(doc)
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
    for (const doc of this.collectable) {
      let stable = doc.version()
      for (const peer of peers) {
        const view = this.views.get(peer, doc.name)
        stable = view === undefined ? VectorClock.empty : stable.meet(view.version)
        if (stable.size === 0) break
      }
      if (stable.size === 0 || !doc.collect!(stable)) continue
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
          doc = documentFor(name, record.kind, handlerFactory(record.kind, record.type, this.handlerOptions())())
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
        if (!doc) return { name, version: [] }
        const mark = doc.mark()
        return { name, kind: doc.kind, type: doc.typeName, version: doc.version().pairs(), ...(mark ? { mark } : {}) }
      }),
    }
  }

  /** Answers a peer's versions with what it lacks. Read-only; throws InvalidInput for a bad request. */
  handleSyncRequest(request: unknown, from?: string): SyncResponse {
    const parsed = parseSyncRequest(request)
    const listed = distinctNames(parsed.docs)
    const out: DocStateWire[] = []
    // What the requester holds, learnt as we go (it is also what we answer from).
    const learnt: Array<[string, DocumentView]> = []
    for (const entry of parsed.docs) {
      const view: DocumentView = { version: VectorClock.decode(entry.version), mark: entry.mark ?? '' }
      learnt.push([entry.name, view])
      const doc = this.docs.get(entry.name)
      if (!doc) continue
      if ((entry.kind !== undefined && entry.kind !== doc.kind) || (entry.type !== undefined && entry.type !== doc.typeName)) {
        throw new InvalidInput(`document ${entry.name} is ${doc.kind}/${doc.typeName} here`, { doc: entry.name, kind: entry.kind, type: entry.type })
      }
      out.push(this.stateWire(doc, doc.missingFor(view.version, view.mark)))
    }
    if (parsed.all) {
      for (const doc of this.docs.values()) {
        if (listed.has(doc.name)) continue
        out.push(this.stateWire(doc, doc.missingFor(VectorClock.empty, '')))
        learnt.push([doc.name, { version: VectorClock.empty, mark: '' }])
      }
    }
    if (from !== undefined) this.views.learn(from, learnt, this.now())
    const response = { docs: out }
    this.countBytes(request, response)
    return response
  }

  /** Joins a peer's answer in (validated whole first, then applied); resolves once persisted. */
  async handleSyncResponse(response: unknown, from?: string): Promise<{ changed: string[]; remote: Map<string, DocumentView>; skipped: string[] }> {
    const applied = this.applyResponse(response, from)
    await this.flush()
    return applied
  }

  /**
   * Joins a peer's answer in like handleSyncResponse, without waiting for the write: what
   * exchange()'s pull does (see below); anti-entropy's merkle walk pulls so with its last step.
   */
  applySyncResponse(response: unknown, from?: string): { changed: string[]; remote: Map<string, DocumentView>; skipped: string[] } {
    return this.applyResponse(response, from)
  }

  // Durability of joins. A state a peer sends us in a sync answer or a push is still held by
  // that peer, which drops nothing on our reply: if we crash before the write lands we restart
  // at an older version, advertise it, and the next sync sends the difference again. So these
  // joins are applied in memory, queued for writing (changed() schedules the flush) and
  // answered at once; nothing waits for the disk. What must be durable before we answer is what
  // the sender will discard on our answer: acknowledged deltas (handleDelta), and local changes
  // before their caller is told they are done (mutate, emitOp, constrain, edit).
  private applyResponse(response: unknown, from: string | undefined): { changed: string[]; remote: Map<string, DocumentView>; skipped: string[] } {
    const parsed = parseSyncResponse(response)
    const applied = this.applyStates(parsed.docs)
    if (from !== undefined) this.views.learn(from, applied.remote, this.now())
    return applied
  }

  private handlePush(payload: unknown, from: string): { docs: DocVersionWire[] } {
    const parsed = parseSyncResponse(payload)
    const { remote } = this.applyStates(parsed.docs)
    const docs: DocVersionWire[] = []
    for (const name of remote.keys()) {
      const doc = this.docs.get(name)
      if (!doc) continue
      const mark = doc.mark()
      docs.push({ name, kind: doc.kind, type: doc.typeName, version: doc.version().pairs(), ...(mark ? { mark } : {}) })
      // The pusher now holds at least what it sent and what we had told it before.
      this.views.learn(from, [[name, { version: remote.get(name)!.version, mark: remote.get(name)!.mark }]], this.now())
    }
    this.countBytes(payload, { docs })
    this.publishStatusIfObserved(from)
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
  private applyStates(entries: readonly DocStateWire[]): { changed: string[]; remote: Map<string, DocumentView>; skipped: string[] } {
    const plans: Array<{ doc: CrdtDocument; fresh: boolean; prepared: PreparedApply | undefined; view: DocumentView }> = []
    const skipped: string[] = []
    for (const entry of uniqueByName(entries)) {
      const version = VectorClock.decode(entry.version)
      let doc = this.docs.get(entry.name)
      let fresh = false
      if (doc) {
        if (doc.kind !== entry.kind || doc.typeName !== entry.type) {
          throw new InvalidInput(`document ${entry.name} is ${doc.kind}/${doc.typeName} here, not ${entry.kind}/${entry.type}`, { doc: entry.name })
        }
      } else {
        if (!this.acceptNewDocuments) continue
        if (!this.types.has(TYPE_KIND[entry.kind], entry.type)) {
          // Only this document is left out: a peer may hold types this one was not built with.
          skipped.push(entry.name)
          continue
        }
        const make = handlerFactory(entry.kind, entry.type, this.handlerOptions())
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
    if (skipped.length > 0) {
      this.counters.skipped += skipped.length
      this.report(new InvalidInput(`skipped ${skipped.length} document(s) of types not registered here`, { docs: skipped.slice(0, 16) }), 'crdt unknown type')
    }
    return { changed, remote, skipped }
  }

  private stateWire(doc: CrdtDocument, payload: unknown): DocStateWire {
    const mark = doc.mark()
    return {
      name: doc.name,
      kind: doc.kind,
      type: doc.typeName,
      version: doc.version().pairs(),
      ...(mark ? { mark } : {}),
      ...(payload !== undefined ? { payload } : {}),
    }
  }

  // ── exchanges ───────────────────────────────────────────────────────────────────────────

  private async pull(peerId: string, names: readonly string[] | undefined, onFrameBytes?: FrameBytesListener): Promise<PullResult> {
    const request = this.createSyncRequest(peerId, names)
    // The answer is joined into our documents: only from a peer that may replicate into them.
    const response = await this.request(peerId, 'crdt', 'sync', request, 'replicate', undefined, onFrameBytes)
    return { names, response, bytes: this.countBytes(response, request) }
  }

  /** Applies a pulled answer; plans the push of what the peer lacks. */
  private applyPull(peerId: string, pulled: PullResult): { changed: string[]; push: DocStateWire[]; skipped: string[] } {
    const { changed, remote, skipped } = this.applyResponse(pulled.response, peerId)
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
    return { changed, push, skipped }
  }

  private async pushTo(peerId: string, docs: DocStateWire[], onFrameBytes?: FrameBytesListener): Promise<number> {
    const payload = { docs }
    const reply = await this.request(peerId, 'crdt', 'push', payload, undefined, undefined, onFrameBytes)
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
    if (!isPeerId(peerId)) peerIdSchema.parse(peerId)
    // the frames' sizes as the router sent and received them (no packing again to size them)
    const frames = { sent: 0, received: 0 }
    const count: FrameBytesListener = (sent, received) => {
      frames.sent += sent
      frames.received += received
    }
    const round = this.syncRound(peerId, names, count)
    await round.pull()
    if (round.apply()) {
      hooks.onPush?.(round.pushing())
      await round.push()
    }
    this.publishStatusIfObserved(peerId)
    const { changed, pushed, skipped } = round.result()
    return { pulled: changed, pushed, skipped, bytesSent: frames.sent, bytesReceived: frames.received }
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
    if (!isPeerId(peerId)) return Promise.reject(new InvalidInput('invalid peer id', { peerId: String(peerId).slice(0, 64) }))
    let actor: SyncActor
    try {
      actor = this.syncActor(peerId)
    } catch (error) {
      return Promise.reject(error)
    }
    // Started inside withTimeout: the caller is answered no later than its deadline, or its cancel.
    const signal = currentSignal()
    const deadline = currentDeadline()
    if (signal?.aborted) return Promise.reject(this.scopeEnded(deadline))
    return new Promise<SyncResult>((resolve, reject) => {
      const waiters = this.waiters.get(peerId)!
      const snapshot = actor.getSnapshot()
      const { round, queued } = snapshot.context
      // A SYNC during a round is queued: the caller's round is the next one either way.
      const waiter: SyncWaiter = { round: round + 1, startedAt: this.now(), resolve, reject }
      if (signal) {
        const abandon = () => {
          const at = waiters.indexOf(waiter)
          if (at >= 0) waiters.splice(at, 1)
          reject(this.scopeEnded(deadline))
        }
        signal.addEventListener('abort', abandon, { once: true })
        waiter.resolve = (result) => {
          signal.removeEventListener('abort', abandon)
          resolve(result)
        }
        waiter.reject = (error) => {
          signal.removeEventListener('abort', abandon)
          reject(error)
        }
      }
      waiters.push(waiter)
      if (snapshot.value === 'idle') this.startRoundSoon(peerId, actor, policy)
      // With the next round already queued this caller rides on it, and another SYNC would only
      // cost the machine a transition that changes nothing (one with a policy may still matter).
      else if (policy || !queued) actor.send(policy ? { type: 'SYNC', policy } : { type: 'SYNC' })
    })
  }

  /**
   * Starts a round with an idle peer's machine once the calls made in this turn of the event
   * loop are in: callers answered by one round tend to call again together, and without this the
   * first of them started a round alone and the rest queued the next one. Every caller still
   * gets a round that starts after its call. The SYNC keeps the most patient policy asked for.
   */
  private startRoundSoon(peerId: string, actor: SyncActor, policy: BackoffPolicy | undefined): void {
    const pending = this.pendingStarts.get(peerId)
    if (pending) {
      if (policy && (pending.policy === undefined || policy.maxAttempts > pending.policy.maxAttempts)) pending.policy = policy
      return
    }
    const start: { policy: BackoffPolicy | undefined } = { policy }
    this.pendingStarts.set(peerId, start)
    queueMicrotask(() => {
      this.pendingStarts.delete(peerId)
      if (this.actors.get(peerId) !== actor) return
      actor.send(start.policy ? { type: 'SYNC', policy: start.policy } : { type: 'SYNC' })
    })
  }

  private scopeEnded(deadline: number | undefined): AuraError {
    return deadline !== undefined && this.now() >= deadline
      ? new DeadlineExceeded('sync outlived the enclosing timeout', { deadline })
      : new Cancelled('sync cancelled with the enclosing operation')
  }

  private syncActor(peerId: string): SyncActor {
    let actor = this.actors.get(peerId)
    if (actor) return actor
    const deps = this.attached
    const steps = this.syncSteps(peerId, (event) => {
      // An answer to a stopped machine (the coordinator detached mid-round) has no one to tell.
      if (actor!.getSnapshot().status === 'active') actor!.send(event)
    })
    const machine = crdtSyncMachine.provide({
      actors: { backoffTimer: backoffTimerActor(deps.clock, deps.random) },
      actions: steps,
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
    // Waiters are in call order, so rounds only grow along the list: the due ones lead it.
    let dueCount = 0
    while (dueCount < waiting.length && waiting[dueCount]!.round <= outcome.round) dueCount++
    if (dueCount === 0) return
    const due = waiting.splice(0, dueCount)
    // Callers answered by one round share its status report, which reads every document's
    // version: it is made when a caller first reads it (its comparedAt says when), or at once
    // for status$ listeners.
    let status = this.publishStatusIfObserved(peerId)
    const statusOnce = () => (status ??= this.syncStatus(peerId))
    for (const waiter of due) {
      const ms = this.now() - waiter.startedAt
      if (outcome.ok) {
        const result = outcome.result as ApplyResult
        this.counters.syncCount += 1
        this.counters.latencyTotal += ms
        this.deps?.emit?.({ type: 'latency', name: 'crdt.sync', ms })
        // a getter in the literal: defineProperty on a made object would turn it into a slow dictionary
        waiter.resolve({
          peerId,
          pulled: result.changed,
          pushed: result.pushed,
          skipped: result.skipped,
          attempts: outcome.attempts,
          get status() {
            return statusOnce()
          },
        })
      } else {
        this.counters.errorCount += 1
        const error = errorFromReport(outcome.error, 'NETWORK', 'sync failed', { keep: 'any' })
        this.report(error, 'crdt sync')
        waiter.reject(error)
      }
    }
  }

  /**
   * The sync machine's steps for one peer: `pull` starts a round (see syncRound), receives the
   * peer's answer and joins it in; `push` sends what the peer lacks. Each answers with `send`
   * (DONE or ERROR); an answer that arrived but was refused is reported `rejected`.
   */
  private syncSteps(peerId: string, send: (event: SyncStepEvent) => void): { pull: () => void; push: () => void } {
    let round = this.syncRound(peerId, undefined)
    const fail = (error: unknown) => send({ type: 'ERROR', error })
    const applied = () => {
      let outcome: SyncStepEvent
      try {
        outcome = round.apply() ? { type: 'DONE', push: true } : { type: 'DONE', result: round.result() }
      } catch (error) {
        outcome = { type: 'ERROR', error, rejected: true }
      }
      send(outcome)
    }
    const pushed = () => send({ type: 'DONE', result: round.result() })
    return {
      pull: () => {
        round = this.syncRound(peerId, undefined)
        round.pull().then(applied, fail)
      },
      push: () => {
        round.push().then(pushed, fail)
      },
    }
  }

  /**
   * One sync round with a peer, the only implementation of it: pull (send our versions of
   * `names`, or of every document, and receive what we lack), apply (join it in, and work out
   * what the peer lacks), push (send that). syncWithPeer's machine and exchange() both drive it.
   */
  private syncRound(peerId: string, names: readonly string[] | undefined, onFrameBytes?: FrameBytesListener): SyncRound {
    return new SyncRound(this.roundSteps, peerId, names, onFrameBytes)
  }

  /** What a SyncRound calls here, bound once rather than per round. */
  private readonly roundSteps: RoundSteps = {
    pull: (peerId, names, onFrameBytes) => this.pull(peerId, names, onFrameBytes),
    apply: (peerId, pulled) => this.applyPull(peerId, pulled),
    push: (peerId, docs, onFrameBytes) => this.pushTo(peerId, docs, onFrameBytes),
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
      const reply = (await this.request(peerId, 'crdt', 'delta', payload)) as { ack?: unknown }
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

  /**
   * A status report reads every document's version (O(collection)): one is made and published
   * only when someone listens to status$ (exchanges, pushes and rounds alike). Returns it, if made.
   */
  private publishStatusIfObserved(peerId: string): SyncStatusReport | undefined {
    if (!this.statusSubject.observed) return undefined
    const report = this.syncStatus(peerId)
    this.statusSubject.next(report)
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
      skippedUnknownType: this.counters.skipped,
    }
  }

  /** Counts payload bytes for metrics (when enabled); returns the bytes received. */
  private countBytes(received: unknown, sent: unknown): number {
    if (!this.metricsEnabled) return 0
    const inBytes = received === undefined ? 0 : plainMessagePack.pack(received).length
    this.counters.bytesReceived += inBytes
    if (sent !== undefined) this.counters.bytesSent += plainMessagePack.pack(sent).length
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
  skipped: string[]
}

interface RoundSteps {
  pull(peerId: string, names: readonly string[] | undefined, onFrameBytes?: FrameBytesListener): Promise<PullResult>
  apply(peerId: string, pulled: PullResult): { changed: string[]; push: DocStateWire[]; skipped: string[] }
  push(peerId: string, docs: DocStateWire[], onFrameBytes?: FrameBytesListener): Promise<number>
}

/**
 * The steps of one sync round, in order: pull, apply (true: the peer lacks something), push.
 * A class, not a bundle of closures: the sync actor makes one per round.
 */
class SyncRound {
  private pulled: PullResult | undefined
  private plan: DocStateWire[] = []
  private outcome: ApplyResult = { changed: [], pushed: [], skipped: [] }

  constructor(
    private readonly steps: RoundSteps,
    private readonly peerId: string,
    private readonly names: readonly string[] | undefined,
    /** exchange() counts the round's frames; the sync actor's rounds count nothing */
    private readonly onFrameBytes?: FrameBytesListener,
  ) {}

  async pull(): Promise<void> {
    this.pulled = await this.steps.pull(this.peerId, this.names, this.onFrameBytes)
  }

  apply(): boolean {
    const taken = this.pulled
    this.pulled = undefined
    if (!taken) throw new InvalidInput('apply before pull')
    const { changed, push, skipped } = this.steps.apply(this.peerId, taken)
    this.plan = push
    this.outcome = { changed, pushed: push.map((d) => d.name), skipped }
    return push.length > 0
  }

  /** documents the push will send */
  pushing(): number {
    return this.plan.length
  }

  async push(): Promise<void> {
    await this.steps.push(this.peerId, this.plan, this.onFrameBytes)
    this.plan = []
  }

  result(): ApplyResult {
    return this.outcome
  }
}

interface SyncWaiter {
  /** the round whose end answers this caller */
  round: number
  startedAt: number
  resolve: (result: SyncResult) => void
  reject: (error: unknown) => void
}

/** The names of a message's entries; InvalidInput if one is listed twice. */
function distinctNames(entries: readonly { name: string }[]): Set<string> {
  const seen = new Set<string>()
  for (const e of entries) {
    if (seen.has(e.name)) throw new InvalidInput('document listed twice in one message', { doc: e.name })
    seen.add(e.name)
  }
  return seen
}

function uniqueByName<T extends { name: string }>(entries: readonly T[]): T[] {
  distinctNames(entries)
  return entries as T[]
}
