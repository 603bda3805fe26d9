// One named document of a CRDT collection, whatever its kind. The coordinator speaks to every
// document through this one shape: a version (what it has seen), what a peer at some version
// lacks (encoded for the wire), and a two-phase apply — `prepare` decodes and validates a
// payload without touching anything, the returned `apply` changes the state — so a message
// carrying many documents is either fully valid before any of them changes, or rejected whole.
//
// Payloads per kind (and the persisted form, which is the same payload from an empty version):
//   cv, delta   the type's encoded state (a state or a delta; joined in)
//   cm          encoded causal ops, in an order that respects causality
//   mv          [{ origin, counter, constraint }]: the latest cumulative constraint per origin

import * as Y from 'yjs'
import { z } from 'zod'
import { Conflict, InvalidInput } from '../../effects/errors.js'
import {
  createCmHandler,
  createCvHandler,
  createDeltaHandler,
  createMvHandler,
  decodeCausalOp,
  encodeCausalOp,
  versionHash,
  VectorClock,
  YjsDocHandler,
  type CmHandler,
  type CvHandler,
  type DeltaHandler,
  type MeetMessage,
  type MvHandler,
  type TypeRegistry,
  type WireValue,
} from './lattices/index.js'

export type DocumentKind = 'cv' | 'delta' | 'cm' | 'mv'

export const documentKindSchema = z.enum(['cv', 'delta', 'cm', 'mv'])
export const documentNameSchema = z.string().min(1).max(256)

export type AnyHandler = CvHandler<any> | DeltaHandler<any> | CmHandler<any, any> | MvHandler<any>

export interface PreparedApply {
  /** Changes the state; true when something new arrived. */
  apply(): boolean
}

export interface CrdtDocument {
  readonly name: string
  readonly kind: DocumentKind
  readonly typeName: string
  readonly handler: AnyHandler
  version(): VectorClock
  /**
   * What the version vector cannot see: for Yjs, a hash of the delete set (deletions do not
   * move the state vector). '' when the version says everything.
   */
  mark(): string
  /** The encoded part a peer at (remote, remoteMark) lacks; undefined when it lacks nothing. */
  missingFor(remote: VectorClock, remoteMark: string): WireValue | undefined
  /** Decodes and validates a payload (typed error if bad); nothing changes until `apply`. */
  prepare(payload: unknown): PreparedApply
  /** Drops cached version data after the handler changed. */
  invalidate(): void
  /** Drops sync metadata (removal records) every replica has seen; true when something went. */
  collect?(stable: VectorClock): boolean
}

const MAX_META_ENTRIES = 100_000

abstract class BaseDocument {
  private cachedVersion: VectorClock | undefined
  private cachedMark: string | undefined

  constructor(
    readonly name: string,
    readonly typeName: string,
  ) {}

  protected abstract computeVersion(): VectorClock
  protected computeMark(): string {
    return ''
  }

  version(): VectorClock {
    return (this.cachedVersion ??= this.computeVersion())
  }

  mark(): string {
    return (this.cachedMark ??= this.computeMark())
  }

  invalidate(): void {
    this.cachedVersion = undefined
    this.cachedMark = undefined
  }

  /** True when a peer at (remote, remoteMark) already has everything. */
  protected covers(remote: VectorClock, remoteMark: string): boolean {
    return remote.dominates(this.version()) && remoteMark === this.mark()
  }
}

class StateDocument extends BaseDocument implements CrdtDocument {
  constructor(
    name: string,
    readonly kind: 'cv' | 'delta',
    readonly handler: CvHandler<any> | DeltaHandler<any>,
  ) {
    super(name, handler.type.name)
    // Only types with sync metadata to shed (dot stores) offer it, so a collection pass skips the rest.
    const collect = handler.type.collect !== undefined ? handler.collect : undefined
    if (collect !== undefined) this.collect = (stable) => collect(stable)
  }

  readonly collect?: (stable: VectorClock) => boolean

  protected computeVersion(): VectorClock {
    return this.handler.version()
  }

  protected override computeMark(): string {
    if (this.typeName !== 'yjs') return ''
    // Most live documents have deleted nothing: reading the delete set off the struct store
    // says so without encoding (and decoding again) an update.
    if (this.handler instanceof YjsDocHandler && Y.createDeleteSetFromStructStore(this.handler.doc.store).clients.size === 0) return ''
    // The update a peer with our whole state vector lacks is exactly our delete set.
    const deleteSet = this.handler.missing(this.version()) as Uint8Array
    return Y.decodeUpdate(deleteSet).ds.clients.size === 0 ? '' : versionHash(deleteSet)
  }

  missingFor(remote: VectorClock, remoteMark: string): WireValue | undefined {
    if (this.covers(remote, remoteMark)) return undefined
    if (this.handler instanceof YjsDocHandler) {
      // Not covered: either the peer lacks structs (its version does not dominate ours), or
      // only the delete sets differ, and then there is something to send iff we have one.
      // Either way the bytes are y-protocols' sync step 2, with no decode to test for empty.
      if (remote.dominates(this.version()) && this.mark() === '') return undefined
      return this.handler.missing(remote)
    }
    const missing = this.handler.missing(remote)
    if (this.handler.type.isBottom(missing)) return undefined
    return this.handler.type.encode(missing)
  }

  prepare(payload: unknown): PreparedApply {
    return new PreparedState(this.handler, this.handler.type.decode(payload))
  }
}

/** A decoded state or delta, joined on apply (a class: a sync prepares one per document). */
class PreparedState implements PreparedApply {
  constructor(
    private readonly handler: CvHandler<any> | DeltaHandler<any>,
    private readonly state: unknown,
  ) {}

  apply(): boolean {
    const handler = this.handler
    // A Yjs update was checked whole by decode already: join it without checking it again.
    if (handler instanceof YjsDocHandler) return handler.joinChecked(this.state as Uint8Array)
    return 'receive' in handler ? handler.receive(this.state) : handler.join(this.state)
  }
}

class OpDocument extends BaseDocument implements CrdtDocument {
  readonly kind = 'cm' as const

  constructor(
    name: string,
    readonly handler: CmHandler<any, any>,
  ) {
    super(name, handler.type.name)
    // Only types with a state encoding can fold their log into a snapshot.
    if (handler.type.encodeState !== undefined) this.collect = (stable) => handler.compact(stable) > 0
  }

  readonly collect?: (stable: VectorClock) => boolean

  protected computeVersion(): VectorClock {
    return this.handler.clock()
  }

  /** The ops the peer lacks; a peer behind the compacted snapshot gets it first: { snapshot, ops }. */
  missingFor(remote: VectorClock): WireValue | undefined {
    if (remote.dominates(this.version())) return undefined
    const type = this.handler.type
    const ops = this.handler.opsSince(remote).map((op) => encodeCausalOp(type, op))
    const snapshot = this.handler.snapshotFor(remote)
    if (snapshot !== undefined) return { snapshot: { state: type.encodeState!(snapshot.state), clock: snapshot.clock.encode() }, ops }
    return ops.length === 0 ? undefined : ops
  }

  prepare(payload: unknown): PreparedApply {
    const type = this.handler.type
    const parsed = opPayloadSchema.safeParse(payload)
    if (!parsed.success) throw new InvalidInput('cm payload must be causal ops, or { snapshot, ops }', { doc: this.name, issues: parsed.error.issues })
    const body = Array.isArray(parsed.data) ? { ops: parsed.data } : parsed.data
    if (body.snapshot !== undefined && type.decodeState === undefined) throw new InvalidInput(`${type.name} has no snapshots`, { doc: this.name })
    const snapshot = body.snapshot && { state: type.decodeState!(body.snapshot.state), clock: VectorClock.decode(body.snapshot.clock) }
    const ops = body.ops.map((wire) => decodeCausalOp(type, wire))
    // Checked here, not in apply: a message is rejected whole before anything changes.
    const folded = this.handler.snapshotFor(VectorClock.empty)?.clock ?? VectorClock.empty
    if (snapshot && !snapshot.clock.dominates(folded) && !this.handler.clock().dominates(snapshot.clock)) {
      throw new Conflict("snapshot crosses this replica's own compaction", { doc: this.name })
    }
    return {
      apply: () => {
        let changed = snapshot !== undefined && this.handler.adopt(snapshot)
        for (const op of ops) if (this.handler.receive(op).delivered.length > 0) changed = true
        return changed
      },
    }
  }
}

const opListSchema = z.array(z.unknown()).max(MAX_META_ENTRIES)
const opPayloadSchema = z.union([
  opListSchema,
  z.object({ snapshot: z.object({ state: z.unknown(), clock: z.unknown() }).strict().optional(), ops: opListSchema }).strict(),
])

const meetMessageSchema = z
  .object({ origin: z.string().min(1).max(256), counter: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER), constraint: z.unknown() })
  .strict()

class MeetDocument extends BaseDocument implements CrdtDocument {
  readonly kind = 'mv' as const
  /** Per origin, its latest counter with the meet of every constraint it sent up to then. */
  private readonly latest = new Map<string, MeetMessage<any>>()

  constructor(
    name: string,
    readonly handler: MvHandler<any>,
  ) {
    super(name, handler.type.name)
    const own = handler.counters().get(handler.replica)
    // A handler built elsewhere may hold constraints we have no messages for: its state
    // stands for them under its own counter (meet makes attributing them harmless).
    if (own > 0) this.latest.set(handler.replica, { origin: handler.replica, counter: own, constraint: handler.state() })
  }

  protected computeVersion(): VectorClock {
    return this.handler.counters()
  }

  /** A local constraint through the document, so sync can forward it. */
  constrain(constraint: unknown): MeetMessage<any> {
    const message = this.handler.constrain(constraint)
    this.record(message)
    return message
  }

  private record(message: MeetMessage<any>): void {
    const previous = this.latest.get(message.origin)
    const constraint = previous === undefined ? message.constraint : this.handler.type.meet(previous.constraint, message.constraint)
    this.latest.set(message.origin, { origin: message.origin, counter: message.counter, constraint })
  }

  missingFor(remote: VectorClock): WireValue | undefined {
    const out: WireValue[] = []
    for (const m of this.latest.values()) {
      if (m.counter > remote.get(m.origin)) out.push({ origin: m.origin, counter: m.counter, constraint: this.handler.type.encode(m.constraint) })
    }
    return out.length === 0 ? undefined : out
  }

  prepare(payload: unknown): PreparedApply {
    const parsed = z.array(meetMessageSchema).max(MAX_META_ENTRIES).safeParse(payload)
    if (!parsed.success) throw new InvalidInput('invalid meet payload', { doc: this.name, issues: parsed.error.issues.slice(0, 5) })
    const messages = parsed.data.map((m) => ({ origin: m.origin, counter: m.counter, constraint: this.handler.type.decode(m.constraint) }))
    return {
      apply: () => {
        let changed = false
        for (const m of messages) {
          // A resent constraint is not news; sync skips it instead of rejecting the batch.
          if (m.counter <= this.handler.counters().get(m.origin)) continue
          if (this.handler.receive(m)) changed = true
          this.record(m)
        }
        return changed
      },
    }
  }
}

export function documentFor(name: string, kind: DocumentKind, handler: AnyHandler): CrdtDocument {
  switch (kind) {
    case 'cv':
    case 'delta':
      return new StateDocument(name, kind, handler as CvHandler<any>)
    case 'cm':
      return new OpDocument(name, handler as CmHandler<any, any>)
    case 'mv':
      return new MeetDocument(name, handler as MvHandler<any>)
  }
}

/** Local constraint on a meet document (so the coordinator can forward it). */
export function constrainDocument(doc: CrdtDocument, constraint: unknown): MeetMessage<any> {
  if (!(doc instanceof MeetDocument)) throw new InvalidInput('not a meet (mv) document', { doc: doc.name, kind: doc.kind })
  return doc.constrain(constraint)
}

export interface HandlerFactoryOptions {
  readonly replica: string
  readonly deltaThreshold: number
  /** where type names resolve (built-ins plus the application's registered types) */
  readonly types: TypeRegistry
}

/**
 * Resolves (kind, type name) to a handler factory; throws InvalidInput for an unknown type
 * before anything is created.
 */
export function handlerFactory(kind: DocumentKind, typeName: string, options: HandlerFactoryOptions): () => AnyHandler {
  switch (kind) {
    case 'cv': {
      const type = options.types.cvType(typeName)
      return type.name === 'yjs' ? () => new YjsDocHandler(new Y.Doc()) : () => createCvHandler(type)
    }
    case 'delta': {
      const type = options.types.cvType(typeName)
      return () => createDeltaHandler(type, { threshold: options.deltaThreshold })
    }
    case 'cm': {
      const type = options.types.cmType(typeName)
      return () => createCmHandler(type, options.replica)
    }
    case 'mv': {
      const type = options.types.meetType(typeName)
      return () => createMvHandler(type, options.replica)
    }
  }
}

/** Version hash of a document for collection digests: kind, type, version vector, mark. */
export function documentVersionHash(doc: CrdtDocument): string {
  return versionHash(`${doc.kind}|${doc.typeName}|${JSON.stringify(doc.version().encode())}|${doc.mark()}`)
}
