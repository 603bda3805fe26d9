// A causal context: the set of events (dots) a replica has seen, kept as sorted, disjoint,
// non-adjacent intervals of sequence numbers per replica. A version vector can only say "the
// first n events of r"; deltas arrive out of order, so a context must also hold the gaps
// ("events 7..9 of r, but not 5..6"). Intervals keep that compact: a replica that saw
// everything in order costs one interval per writer.
//
// Wire form: { [replica]: [[lo, hi], ...] } with 1 ≤ lo ≤ hi.

import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
import { counterSchema, parseWire, replicaIdSchema, WIRE_LIMITS } from './lattice-wire.js'
import { VectorClock } from './vector-clock.js'

/** One event: the `seq`-th event issued by `replica` (seq ≥ 1). */
export interface Dot {
  readonly replica: string
  readonly seq: number
}

export const dotSchema = z.object({ replica: replicaIdSchema, seq: counterSchema.min(1) }).strict()

/** Map key for a dot; the NUL separator cannot collide with the decimal seq. */
export const dotKey = (dot: Dot): string => `${dot.replica}\u0000${dot.seq}`

type Interval = readonly [lo: number, hi: number]

export type CausalContextWire = Record<string, Array<[number, number]>>

export const causalContextSchema = z
  .record(replicaIdSchema, z.array(z.tuple([counterSchema.min(1), counterSchema.min(1)])))
  .refine((r) => Object.values(r).reduce((n, xs) => n + xs.length, 0) <= WIRE_LIMITS.entries, 'too many intervals')
  .refine((r) => Object.values(r).every((xs) => xs.every(([lo, hi]) => lo <= hi)), 'interval with lo > hi')

function normalize(intervals: Interval[]): Interval[] {
  if (intervals.length <= 1) return intervals
  const sorted = [...intervals].sort((a, b) => a[0] - b[0])
  const out: [number, number][] = [[sorted[0]![0], sorted[0]![1]]]
  for (let i = 1; i < sorted.length; i++) {
    const [lo, hi] = sorted[i]!
    const last = out[out.length - 1]!
    if (lo <= last[1] + 1) last[1] = Math.max(last[1], hi)
    else out.push([lo, hi])
  }
  return out
}

export class CausalContext {
  static readonly empty = new CausalContext(new Map())

  private constructor(private readonly ranges: ReadonlyMap<string, readonly Interval[]>) {}

  static ofDots(dots: Iterable<Dot>): CausalContext {
    const by = new Map<string, Interval[]>()
    for (const d of dots) {
      if (!Number.isSafeInteger(d.seq) || d.seq < 1) throw new InvalidInput('dot seq must be a positive integer', { dot: d })
      const xs = by.get(d.replica) ?? []
      xs.push([d.seq, d.seq])
      by.set(d.replica, xs)
    }
    return CausalContext.fromIntervals(by)
  }

  /** Everything a version vector says was seen: events 1..clock[r] of every r. */
  static fromClock(clock: VectorClock): CausalContext {
    const by = new Map<string, Interval[]>()
    for (const [replica, n] of clock.entries()) by.set(replica, [[1, n]])
    return new CausalContext(by)
  }

  static decode(wire: unknown): CausalContext {
    const parsed = parseWire(causalContextSchema, wire, 'causal context')
    return CausalContext.fromIntervals(new Map(Object.entries(parsed)))
  }

  private static fromIntervals(by: Map<string, Interval[]>): CausalContext {
    const ranges = new Map<string, readonly Interval[]>()
    for (const [replica, xs] of by) if (xs.length > 0) ranges.set(replica, normalize(xs))
    return ranges.size === 0 ? CausalContext.empty : new CausalContext(ranges)
  }

  get isEmpty(): boolean {
    return this.ranges.size === 0
  }

  contains(dot: Dot): boolean {
    const xs = this.ranges.get(dot.replica)
    if (xs === undefined) return false
    let lo = 0
    let hi = xs.length - 1
    while (lo <= hi) {
      const mid = (lo + hi) >> 1
      const [a, b] = xs[mid]!
      if (dot.seq < a) hi = mid - 1
      else if (dot.seq > b) lo = mid + 1
      else return true
    }
    return false
  }

  /** Highest seq seen from `replica` (0 if none), gaps or not. */
  maxSeq(replica: string): number {
    const xs = this.ranges.get(replica)
    return xs === undefined ? 0 : xs[xs.length - 1]![1]
  }

  /** The next dot `replica` should issue. A replica's own events are always contiguous. */
  nextDot(replica: string): Dot {
    return { replica, seq: this.maxSeq(replica) + 1 }
  }

  union(other: CausalContext): CausalContext {
    if (other.ranges.size === 0) return this
    if (this.ranges.size === 0) return other
    const by = new Map<string, Interval[]>()
    for (const [replica, xs] of this.ranges) by.set(replica, [...xs])
    for (const [replica, xs] of other.ranges) {
      const mine = by.get(replica)
      if (mine === undefined) by.set(replica, [...xs])
      else mine.push(...xs)
    }
    return CausalContext.fromIntervals(by)
  }

  /** Every dot, interval by interval (as many as the context holds: use on small contexts). */
  *dots(): IterableIterator<Dot> {
    for (const [replica, xs] of this.ranges) for (const [lo, hi] of xs) for (let seq = lo; seq <= hi; seq++) yield { replica, seq }
  }

  /** Number of dots held. */
  get dotCount(): number {
    let n = 0
    for (const xs of this.ranges.values()) for (const [lo, hi] of xs) n += hi - lo + 1
    return n
  }

  /** The contiguous prefix per replica: the part a version vector can express. */
  toClock(): VectorClock {
    const entries: [string, number][] = []
    for (const [replica, xs] of this.ranges) if (xs[0]![0] === 1) entries.push([replica, xs[0]![1]])
    return VectorClock.of(entries)
  }

  /** The dots not covered by `clock` (what a peer at `clock` may not have seen). */
  above(clock: VectorClock): CausalContext {
    const by = new Map<string, Interval[]>()
    for (const [replica, xs] of this.ranges) {
      const seen = clock.get(replica)
      const kept: Interval[] = []
      for (const [lo, hi] of xs) if (hi > seen) kept.push([Math.max(lo, seen + 1), hi])
      if (kept.length > 0) by.set(replica, kept)
    }
    return CausalContext.fromIntervals(by)
  }

  /** True when every dot here is within `clock`. */
  coveredBy(clock: VectorClock): boolean {
    for (const [replica, xs] of this.ranges) if (xs[xs.length - 1]![1] > clock.get(replica)) return false
    return true
  }

  equals(other: CausalContext): boolean {
    if (this.ranges.size !== other.ranges.size) return false
    for (const [replica, xs] of this.ranges) {
      const ys = other.ranges.get(replica)
      if (ys === undefined || ys.length !== xs.length) return false
      for (let i = 0; i < xs.length; i++) if (xs[i]![0] !== ys[i]![0] || xs[i]![1] !== ys[i]![1]) return false
    }
    return true
  }

  encode(): CausalContextWire {
    const out: CausalContextWire = {}
    for (const replica of [...this.ranges.keys()].sort()) out[replica] = this.ranges.get(replica)!.map(([lo, hi]) => [lo, hi])
    return out
  }
}
