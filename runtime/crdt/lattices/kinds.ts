// The four CRDT kinds, as contracts. A *type* (CvType, CmType, MeetType) is a plain object of
// pure functions over immutable states; a *handler* owns one replica's state of a type and is
// what the coordinator drives. Sync payloads differ per kind: full or missing state (Cv),
// operations with causal context (Cm), deltas (delta), constraints with a counter (meet).

import type { VectorClock } from './vector-clock.js'
import type { WireValue } from './lattice-wire.js'

/** State-based (convergent) type: a join semilattice plus what sync needs. */
export interface CvType<S> {
  /** Registry name carried by sync messages ('g-counter', 'or-map<pn-counter>', ...). */
  readonly name: string
  bottom(): S
  /** Least upper bound: associative, commutative, idempotent. */
  join(a: S, b: S): S
  /** Semantic equality (same lattice element). */
  equals(a: S, b: S): boolean
  /**
   * Optional in-place join for large states: `absorb(into, delta)` equals join(into, delta)
   * but may reuse (mutate) `into`, costing O(|delta|) instead of O(|into|). `into` must be
   * exclusively owned: a value returned by `own` or by a previous `absorb`, never handed out.
   */
  own?(s: S): S
  absorb?(into: S, delta: S): S
  /** What this state has seen, as a version vector. */
  version(s: S): VectorClock
  /**
   * A state holding what a replica at version `remote` lacks, so that
   * join(remoteState, missingFor(s, version(remoteState))) equals join(remoteState, s).
   * Its size grows with the difference, not with `s`.
   */
  missingFor(s: S, remote: VectorClock): S
  /** True when `s` carries nothing (no need to send it). */
  isBottom(s: S): boolean
  /**
   * Optional: drops sync metadata (removal records) that every replica has seen, given a clock
   * `stable` that every replica's version dominates. The result equals `s`; a peer that turns
   * out to be behind `stable` is then sent whole states by `missingFor`.
   */
  collect?(s: S, stable: VectorClock): S
  encode(s: S): WireValue
  /** Throws InvalidInput (or DecodeError for binary payloads) and never returns a partial state. */
  decode(wire: unknown): S
}

/** Operation-based (commutative) type: ops commute when delivered in causal order. */
export interface CmType<S, Op> {
  readonly name: string
  initial(): S
  /** `meta.opId` is unique per op; types that need unique tags (OR-Set) use it. */
  apply(s: S, op: Op, meta: { readonly opId: string; readonly origin: string }): S
  equals(a: S, b: S): boolean
  encodeOp(op: Op): WireValue
  decodeOp(wire: unknown): Op
  /**
   * Optional: a state on the wire. Types that have it let their handlers compact the op log:
   * ops every replica has delivered are folded into a snapshot, and a replica behind the
   * snapshot is sent it (with the ops after it) instead of ops no longer kept.
   */
  encodeState?(s: S): WireValue
  decodeState?(wire: unknown): S
}

/** The state at a causally closed cut of ops (`clock`), as a compacted op log keeps it. */
export interface CmSnapshot<S> {
  readonly state: S
  readonly clock: VectorClock
}

/** An operation with the causal context it was issued in. */
export interface CausalOp<Op> {
  readonly opId: string
  readonly origin: string
  /** The origin's `seq`-th op (≥ 1); equals deps.get(origin) + 1. */
  readonly seq: number
  /** Ops delivered at the origin before this one. */
  readonly deps: VectorClock
  readonly op: Op
}

/** Meet semilattice (the reference's "MvRDT"): state only shrinks, e.g. capability sets. */
export interface MeetType<S> {
  readonly name: string
  /** The largest element (nothing constrained yet). */
  top(): S
  /** Greatest lower bound: associative, commutative, idempotent. */
  meet(a: S, b: S): S
  /** a ≤ b in the lattice order (a is at least as constrained as b). */
  leq(a: S, b: S): boolean
  equals(a: S, b: S): boolean
  encode(s: S): WireValue
  decode(wire: unknown): S
}

/** A constraint message for a meet handler; `counter` must grow per origin. */
export interface MeetMessage<S> {
  readonly origin: string
  readonly counter: number
  readonly constraint: S
}

export interface CvHandler<S> {
  readonly type: CvType<S>
  state(): S
  version(): VectorClock
  /** Apply a local change given as a delta-mutator result; returns the delta. */
  mutate(mutator: (s: S) => S): S
  /** Join a remote state or delta; returns true when the local state changed. */
  join(remote: S): boolean
  /** What a peer at `since` lacks. */
  missing(since: VectorClock): S
  /** Drops sync metadata every replica has seen (see CvType.collect); true when something went. */
  collect?(stable: VectorClock): boolean
}

export interface CmHandler<S, Op> {
  readonly type: CmType<S, Op>
  readonly replica: string
  state(): S
  /** Ops delivered so far, per origin. */
  clock(): VectorClock
  /** Issue a local op: applied at once and returned with its causal context for sending. */
  emit(op: Op): CausalOp<Op>
  /** Buffer a remote op and deliver every op that became ready (to a fixed point). */
  receive(op: CausalOp<Op>): CmReceipt<Op>
  /** Ops buffered, waiting for their dependencies. */
  pending(): number
  /** Delivered ops a peer at `since` has not seen and the log still holds, in causal order. */
  opsSince(since: VectorClock): CausalOp<Op>[]
  /** The snapshot a peer at `since` needs first (it lacks ops folded into it); undefined if none. */
  snapshotFor(since: VectorClock): CmSnapshot<S> | undefined
  /**
   * Folds delivered ops every replica has (seq ≤ stable) into the snapshot and drops them from
   * the log; returns how many went. A no-op for types without a state encoding.
   */
  compact(stable: VectorClock): number
  /**
   * Takes a peer's snapshot: what this replica delivered beyond it is replayed on top. Conflict
   * if this replica folded ops the snapshot lacks (two compactions that crossed); false when it
   * brought nothing new.
   */
  adopt(snapshot: CmSnapshot<S>): boolean
}

export interface CmReceipt<Op> {
  /** Ops delivered by this call, in delivery order (may include earlier buffered ones). */
  readonly delivered: readonly CausalOp<Op>[]
  readonly duplicate: boolean
  /** True when the op waits in the buffer for missing dependencies. */
  readonly buffered: boolean
}

/** Buffered deltas covering local sequence numbers from..to (a group after compaction). */
export interface DeltaGroup<S> {
  readonly from: number
  readonly to: number
  readonly delta: S
}

export interface DeltaHandler<S> {
  readonly type: CvType<S>
  readonly threshold: number
  state(): S
  version(): VectorClock
  /** Sequence number of the last local delta. */
  seq(): number
  /** Apply a local change through a delta-mutator; the delta is buffered for sending. */
  mutate(mutator: (s: S) => S): S
  /** Join a delta (or state) received from a peer; returns true when the local state changed. */
  receive(delta: S): boolean
  /** Drops sync metadata every replica has seen (see CvType.collect); true when something went. */
  collect?(stable: VectorClock): boolean
  /** Buffered groups, oldest first. */
  buffered(): readonly DeltaGroup<S>[]
  /** One delta holding every buffered change after local seq `after`, or null if none. */
  deltaSince(after: number): S | null
  /** Join all buffered deltas into one group. Runs by itself when the buffer reaches `threshold`. */
  compact(): void
  /** Drop groups every peer has acknowledged (to ≤ upTo). */
  acknowledge(upTo: number): void
  /** What a peer at `since` lacks (falls back to state difference when the buffer cannot answer). */
  missing(since: VectorClock): S
}

export interface MvHandler<S> {
  readonly type: MeetType<S>
  readonly replica: string
  state(): S
  /** Constrain locally; returns the message to send (with this replica's next counter). */
  constrain(constraint: S): MeetMessage<S>
  /** Apply a peer's constraint; throws InvalidInput when its counter did not increase. */
  receive(message: MeetMessage<S>): boolean
  /** Highest counter accepted per origin. */
  counters(): VectorClock
}
