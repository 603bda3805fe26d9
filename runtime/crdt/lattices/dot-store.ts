// The causal kernel shared by OR-Set, OR-Map and MV-Register. Every write is an event with a
// unique dot; a key's live writes are its dots still present; a causal context records every
// dot ever seen. Join keeps a write when both sides have it, or when the other side never saw
// it; a write one side saw and no longer has was removed there, and stays removed. That is
// what keeps a removed element from coming back after a join.
//
// Known versus applied. A dot enters the causal context two ways: with its own event (the write
// or removal it names, whose effects the state then holds), or only as a dot another event
// removed (a write superseding it lists it). Having seen a dot the second way says nothing of
// what that dot's own event did: a write that superseded an older one removed it, and a state
// that only learnt of the write through a later removal may still hold the older one live. So
// `applied` keeps the dots whose events the state holds, and the version (what a peer is told
// we have seen, what `missingFor` leaves out) is read from it, never from the whole context.
//
// With `tombstones` on, a removal is itself an event (a dot of its own) that lists the dots it
// removed. Version vectors cannot tell a peer that a write it holds was removed later (both
// have seen the write's dot), but they do tell it that it has not seen the removal's dot; the
// removal record is what `missingFor` then sends. Without tombstones (MV-Register, whose state is
// small), `missingFor` sends the whole state to a peer that has not seen all of it.
//
// Collecting tombstones. Once every peer has seen a removal (its dot is within every peer's
// version: the caller computes that `stable` clock), nobody needs its record: `collect` drops
// it and raises the state's `collected` frontier. A peer whose version does not reach the
// frontier (one we did not know of, or one that was away) may lack removals we no longer have
// records of, so `missingFor` sends it the whole state, as without tombstones; the join then
// removes what it must, because the removed writes' dots are in our context and not live.
// Frontiers join by pointwise max, and a join drops the records below its frontier. Records
// and frontier are sync metadata: `equals` compares contexts and live writes only.
//
// Wire form:
//   { context: CausalContextWire,
//     live: [[key, [[replica, seq, payload], ...]], ...],
//     removals: [[replica, seq, [[replica, seq], ...]], ...],
//     collected?: VectorClockWire }

import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
import { CausalContext, causalContextSchema, dotKey, type Dot } from './causal-context.js'
import { VectorClock, vectorClockSchema } from './vector-clock.js'
import { counterSchema, parseWire, replicaIdSchema, WIRE_LIMITS, type WireValue } from './lattice-wire.js'

export interface DotPut<P> {
  readonly dot: Dot
  readonly payload: P
}

export interface Removal {
  readonly dot: Dot
  readonly removes: readonly Dot[]
}

export interface DotStoreState<P> {
  readonly context: CausalContext
  /** key → dotKey → write */
  readonly live: ReadonlyMap<string, ReadonlyMap<string, DotPut<P>>>
  /** dotKey of the removing event → the dots it removed */
  readonly removals: ReadonlyMap<string, Removal>
  /** removal records at or below this clock may have been collected */
  readonly collected: VectorClock
  /** the dots whose own events this state holds (within `context`); the version is read from it */
  readonly applied: CausalContext
}

export interface PayloadCodec<P> {
  equals(a: P, b: P): boolean
  encode(p: P): WireValue
  decode(wire: unknown): P
}

export interface DotStoreOptions<P> {
  readonly payload: PayloadCodec<P>
  readonly tombstones: boolean
}

const keySchema = z.string().max(WIRE_LIMITS.keyLength)
const wireDot = z.tuple([replicaIdSchema, counterSchema.min(1)])
const wireSchema = z
  .object({
    context: causalContextSchema,
    live: z.array(z.tuple([keySchema, z.array(z.tuple([replicaIdSchema, counterSchema.min(1), z.unknown()]))])).max(WIRE_LIMITS.entries),
    removals: z.array(z.tuple([replicaIdSchema, counterSchema.min(1), z.array(wireDot)])).max(WIRE_LIMITS.entries),
    collected: vectorClockSchema.optional(),
    /** absent in states written before it existed: then every dot of the context counts */
    applied: causalContextSchema.optional(),
  })
  .strict()

const below = (frontier: VectorClock, dot: Dot): boolean => dot.seq <= frontier.get(dot.replica)

/** `removals` without the records at or below `frontier` (the same map when there are none). */
function uncollected(removals: ReadonlyMap<string, Removal>, frontier: VectorClock): ReadonlyMap<string, Removal> {
  if (frontier.size === 0) return removals
  let kept: Map<string, Removal> | undefined
  for (const [k, r] of removals) {
    if (!below(frontier, r.dot)) continue
    kept ??= new Map(removals)
    kept.delete(k)
  }
  return kept ?? removals
}

export type DotStore<P> = ReturnType<typeof dotStore<P>>

/** dotKey → key of every live write, for states owned by an in-place joiner (see `own`). */
const ownedIndexes = new WeakMap<object, Map<string, string>>()

export function dotStore<P>(options: DotStoreOptions<P>) {
  const { payload, tombstones } = options
  const bottom: DotStoreState<P> = {
    context: CausalContext.empty,
    live: new Map(),
    removals: new Map(),
    collected: VectorClock.empty,
    applied: CausalContext.empty,
  }

  function joinKey(
    am: ReadonlyMap<string, DotPut<P>> | undefined,
    actx: CausalContext,
    bm: ReadonlyMap<string, DotPut<P>> | undefined,
    bctx: CausalContext,
  ): ReadonlyMap<string, DotPut<P>> | undefined {
    const out = new Map<string, DotPut<P>>()
    if (am) for (const [k, put] of am) if (bm?.has(k) || !bctx.contains(put.dot)) out.set(k, put)
    if (bm) for (const [k, put] of bm) if (!out.has(k) && !am?.has(k) && !actx.contains(put.dot)) out.set(k, put)
    return out.size === 0 ? undefined : out
  }

  function join(a: DotStoreState<P>, b: DotStoreState<P>): DotStoreState<P> {
    const live = new Map<string, ReadonlyMap<string, DotPut<P>>>()
    for (const [key, am] of a.live) {
      const m = joinKey(am, a.context, b.live.get(key), b.context)
      if (m) live.set(key, m)
    }
    for (const [key, bm] of b.live) {
      if (a.live.has(key)) continue
      const m = joinKey(undefined, a.context, bm, b.context)
      if (m) live.set(key, m)
    }
    let removals = a.removals
    if (b.removals.size > 0) {
      const merged = new Map(a.removals)
      for (const [k, r] of b.removals) if (!merged.has(k)) merged.set(k, r)
      removals = merged
    }
    const collected = a.collected.merge(b.collected)
    return { context: a.context.union(b.context), live, removals: uncollected(removals, collected), collected, applied: a.applied.union(b.applied) }
  }

  /** An exclusively owned copy that `absorb` may update in place. */
  function own(s: DotStoreState<P>): DotStoreState<P> {
    const live = new Map<string, Map<string, DotPut<P>>>()
    const index = new Map<string, string>()
    for (const [key, m] of s.live) {
      live.set(key, new Map(m))
      for (const k of m.keys()) index.set(k, key)
    }
    ownedIndexes.set(live, index)
    return { context: s.context, live, removals: new Map(s.removals), collected: s.collected, applied: s.applied }
  }

  /** join(into, delta), updating `into` (which must come from `own` or `absorb`) in place. */
  function absorb(into: DotStoreState<P>, delta: DotStoreState<P>): DotStoreState<P> {
    const index = ownedIndexes.get(into.live)
    if (index === undefined) return join(into, delta)
    const live = into.live as Map<string, Map<string, DotPut<P>>>
    const removals = into.removals as Map<string, Removal>
    const drop = (k: string, key: string) => {
      const m = live.get(key)!
      m.delete(k)
      if (m.size === 0) live.delete(key)
      index.delete(k)
    }
    // Our writes the delta has seen and no longer holds were removed there.
    if (delta.context.dotCount <= index.size) {
      for (const d of delta.context.dots()) {
        const k = dotKey(d)
        const key = index.get(k)
        if (key !== undefined && !delta.live.get(key)?.has(k)) drop(k, key)
      }
    } else {
      for (const [k, key] of [...index]) {
        const put = live.get(key)!.get(k)!
        if (delta.context.contains(put.dot) && !delta.live.get(key)?.has(k)) drop(k, key)
      }
    }
    // The delta's writes we never saw.
    for (const [key, bm] of delta.live) {
      for (const [k, put] of bm) {
        if (index.has(k) || into.context.contains(put.dot)) continue
        let m = live.get(key)
        if (m === undefined) {
          m = new Map()
          live.set(key, m)
        }
        m.set(k, put)
        index.set(k, key)
      }
    }
    const collected = into.collected.merge(delta.collected)
    for (const [k, r] of delta.removals) if (!removals.has(k) && !below(collected, r.dot)) removals.set(k, r)
    if (collected !== into.collected) for (const [k, r] of removals) if (below(collected, r.dot)) removals.delete(k)
    return { context: into.context.union(delta.context), live, removals, collected, applied: into.applied.union(delta.applied) }
  }

  function equals(a: DotStoreState<P>, b: DotStoreState<P>): boolean {
    if (!a.context.equals(b.context) || a.live.size !== b.live.size) return false
    for (const [key, am] of a.live) {
      const bm = b.live.get(key)
      if (bm === undefined || bm.size !== am.size) return false
      for (const [k, put] of am) {
        const other = bm.get(k)
        if (other === undefined || !payload.equals(put.payload, other.payload)) return false
      }
    }
    return true
  }

  function missingFor(s: DotStoreState<P>, remote: VectorClock): DotStoreState<P> {
    if (s.applied.coveredBy(remote)) return bottom
    // Without records of every removal the remote may lack, only the whole state will do.
    if (!tombstones || !remote.dominates(s.collected)) return s
    const unseen = (d: Dot) => d.seq > remote.get(d.replica)
    const live = new Map<string, ReadonlyMap<string, DotPut<P>>>()
    for (const [key, m] of s.live) {
      const kept = new Map([...m].filter(([, put]) => unseen(put.dot)))
      if (kept.size > 0) live.set(key, kept)
    }
    const removals = new Map([...s.removals].filter(([, r]) => unseen(r.dot)))
    // The removed dots go in the context so the join drops them where the remote still has them.
    const removedDots = [...removals.values()].flatMap((r) => r.removes)
    return {
      context: s.context.above(remote).union(CausalContext.ofDots(removedDots)),
      live,
      removals,
      collected: VectorClock.empty,
      // Every event above the remote's version goes with its effects: its write if still live,
      // its removal record, the dots it removed.
      applied: s.applied.above(remote),
    }
  }

  /**
   * Drops the removal records every peer has seen: `stable` is a clock every replica's version
   * dominates (the caller's knowledge; a peer it does not know of is served whole states).
   */
  function collect(s: DotStoreState<P>, stable: VectorClock): DotStoreState<P> {
    if (!tombstones) return s
    const frontier = s.collected.merge(stable.meet(s.applied.toClock()))
    const removals = uncollected(s.removals, frontier)
    if (removals === s.removals && frontier.equals(s.collected)) return s
    return { context: s.context, live: s.live, removals, collected: frontier, applied: s.applied }
  }

  /** Delta for a write of `value` under `key`; with `supersede`, it also removes the key's current writes. */
  function put(s: DotStoreState<P>, replica: string, key: string, value: P, supersede: boolean): DotStoreState<P> {
    const dot = s.context.nextDot(replica)
    const removes = supersede ? [...(s.live.get(key)?.values() ?? [])].map((p) => p.dot) : []
    const removals = new Map<string, Removal>()
    if (tombstones && removes.length > 0) removals.set(dotKey(dot), { dot, removes })
    return {
      context: CausalContext.ofDots([dot, ...removes]),
      live: new Map([[key, new Map([[dotKey(dot), { dot, payload: value }]])]]),
      removals,
      collected: VectorClock.empty,
      applied: CausalContext.ofDots([dot]),
    }
  }

  /** Delta removing every write of `key` this replica has seen (bottom if there is none). */
  function remove(s: DotStoreState<P>, replica: string, key: string): DotStoreState<P> {
    const removes = [...(s.live.get(key)?.values() ?? [])].map((p) => p.dot)
    if (removes.length === 0) return bottom
    if (!tombstones)
      return { context: CausalContext.ofDots(removes), live: new Map(), removals: new Map(), collected: VectorClock.empty, applied: CausalContext.empty }
    const dot = s.context.nextDot(replica)
    return {
      context: CausalContext.ofDots([dot, ...removes]),
      live: new Map(),
      removals: new Map([[dotKey(dot), { dot, removes }]]),
      collected: VectorClock.empty,
      applied: CausalContext.ofDots([dot]),
    }
  }

  function encode(s: DotStoreState<P>): WireValue {
    const live: WireValue[] = [...s.live].map(([key, m]) => [key, [...m.values()].map((p) => [p.dot.replica, p.dot.seq, payload.encode(p.payload)])])
    const removals: WireValue[] = [...s.removals.values()].map((r) => [r.dot.replica, r.dot.seq, r.removes.map((d) => [d.replica, d.seq])])
    return {
      context: s.context.encode(),
      live,
      removals,
      ...(s.collected.size > 0 ? { collected: s.collected.encode() } : {}),
      ...(s.applied.equals(s.context) ? {} : { applied: s.applied.encode() }),
    }
  }

  function decode(wire: unknown, what: string): DotStoreState<P> {
    const parsed = parseWire(wireSchema, wire, what)
    const context = CausalContext.decode(parsed.context)
    const seen = new Set<string>()
    const need = (d: Dot, role: string) => {
      if (!context.contains(d)) throw new InvalidInput(`${what}: ${role} dot outside the causal context`, { dot: d })
    }
    const live = new Map<string, ReadonlyMap<string, DotPut<P>>>()
    for (const [key, puts] of parsed.live) {
      if (live.has(key)) throw new InvalidInput(`${what}: duplicate key`, { key })
      const m = new Map<string, DotPut<P>>()
      for (const [replica, seq, p] of puts) {
        const dot = { replica, seq }
        const k = dotKey(dot)
        need(dot, 'live')
        if (seen.has(k)) throw new InvalidInput(`${what}: dot used twice`, { dot })
        seen.add(k)
        m.set(k, { dot, payload: payload.decode(p) })
      }
      if (m.size > 0) live.set(key, m)
    }
    if (!tombstones && parsed.removals.length > 0) throw new InvalidInput(`${what}: removal records not allowed`)
    const removals = new Map<string, Removal>()
    for (const [replica, seq, removed] of parsed.removals) {
      const dot = { replica, seq }
      need(dot, 'removal')
      const removes = removed.map(([r, n]) => ({ replica: r, seq: n }))
      for (const d of removes) {
        need(d, 'removed')
        if (seen.has(dotKey(d))) throw new InvalidInput(`${what}: removed dot is live`, { dot: d })
      }
      removals.set(dotKey(dot), { dot, removes })
    }
    const collected = parsed.collected === undefined ? VectorClock.empty : VectorClock.decode(parsed.collected)
    if (!tombstones && collected.size > 0) throw new InvalidInput(`${what}: a collected frontier needs removal records`)
    const applied = parsed.applied === undefined ? context : CausalContext.decode(parsed.applied)
    for (const d of applied.dots()) need(d, 'applied')
    return { context, live, removals: uncollected(removals, collected), collected, applied }
  }

  return {
    bottom: () => bottom,
    join,
    own,
    absorb,
    equals,
    version: (s: DotStoreState<P>) => s.applied.toClock(),
    missingFor,
    isBottom: (s: DotStoreState<P>) => s.context.isEmpty && s.live.size === 0 && s.removals.size === 0,
    put,
    remove,
    collect,
    encode,
    decode,
    keys: (s: DotStoreState<P>): string[] => [...s.live.keys()],
    payloads: (s: DotStoreState<P>, key: string): P[] => [...(s.live.get(key)?.values() ?? [])].map((p) => p.payload),
  }
}

/**
 * The CvType members every dot-store-backed type takes from its store unchanged (join, versions,
 * in-place absorb, ...); each type adds its name, wire form and mutators.
 */
export function dotStoreLattice<P>(store: DotStore<P>) {
  return {
    bottom: store.bottom,
    join: store.join,
    own: store.own,
    absorb: store.absorb,
    equals: store.equals,
    version: store.version,
    missingFor: store.missingFor,
    isBottom: store.isBottom,
    collect: store.collect,
  }
}
