// Version vectors: replica id → number of that replica's events seen. Immutable; every
// operation returns a new clock. Zero entries are never stored, so two clocks that mean the
// same thing are structurally equal and encode to the same bytes.

import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
import { counterSchema, isCounter, isReplicaId, parseWire, replicaIdSchema, WIRE_LIMITS } from './lattice-wire.js'

export type ClockOrder = 'equal' | 'before' | 'after' | 'concurrent'

/** Wire form: a plain record, keys sorted. */
export type VectorClockWire = Record<string, number>

/**
 * Compact wire form, as sync messages carry versions: [replica, count] pairs, sorted by replica.
 * A record keyed by Yjs client ids (integers as strings) is an array index to V8 at every key, so
 * building, packing, unpacking and reading one went through slow dictionary elements: a version
 * made the round trip in about a third of the time as pairs.
 */
export type VectorClockPairs = ReadonlyArray<readonly [string, number]>

export const vectorClockSchema = z.record(replicaIdSchema, counterSchema).refine((r) => Object.keys(r).length <= WIRE_LIMITS.entries, 'too many replicas')

export const vectorClockPairsSchema = z
  .array(z.tuple([replicaIdSchema, counterSchema]))
  .max(WIRE_LIMITS.entries)
  .refine((pairs) => new Set(pairs.map(([replica]) => replica)).size === pairs.length, 'a replica is listed twice')

export class VectorClock {
  static readonly empty = new VectorClock(new Map())

  private wire: VectorClockWire | undefined
  private wirePairs: VectorClockPairs | undefined

  private constructor(private readonly counts: ReadonlyMap<string, number>) {}

  /** From trusted entries (zeros dropped); use `decode` for anything from the wire. */
  static of(entries: Iterable<readonly [string, number]> | Record<string, number>): VectorClock {
    const iter = Symbol.iterator in entries ? (entries as Iterable<readonly [string, number]>) : Object.entries(entries)
    const counts = new Map<string, number>()
    for (const [replica, n] of iter) {
      if (!Number.isSafeInteger(n) || n < 0) throw new InvalidInput('vector clock entry must be a non-negative integer', { replica, n })
      if (n > 0) counts.set(replica, n)
    }
    return counts.size === 0 ? VectorClock.empty : new VectorClock(counts)
  }

  /** From either wire form (a record, or pairs); InvalidInput if it is neither. */
  static decode(wire: unknown): VectorClock {
    if (Array.isArray(wire)) return VectorClock.of(isVectorClockPairs(wire) ? wire : parseWire(vectorClockPairsSchema, wire, 'vector clock'))
    return VectorClock.of(isVectorClockWire(wire) ? wire : parseWire(vectorClockSchema, wire, 'vector clock'))
  }

  get(replica: string): number {
    return this.counts.get(replica) ?? 0
  }

  get size(): number {
    return this.counts.size
  }

  replicas(): IterableIterator<string> {
    return this.counts.keys()
  }

  entries(): IterableIterator<[string, number]> {
    return this.counts.entries()
  }

  increment(replica: string, by = 1): VectorClock {
    return this.with(replica, this.get(replica) + by)
  }

  with(replica: string, n: number): VectorClock {
    if (!Number.isSafeInteger(n) || n < 0) throw new InvalidInput('vector clock entry must be a non-negative integer', { replica, n })
    const counts = new Map(this.counts)
    if (n === 0) counts.delete(replica)
    else counts.set(replica, n)
    return new VectorClock(counts)
  }

  /** Pointwise maximum: the least clock that dominates both. */
  merge(other: VectorClock): VectorClock {
    if (other.counts.size === 0) return this
    if (this.counts.size === 0) return other
    let counts: Map<string, number> | undefined
    for (const [replica, n] of other.counts) {
      if (n > this.get(replica)) {
        counts ??= new Map(this.counts)
        counts.set(replica, n)
      }
    }
    return counts === undefined ? this : new VectorClock(counts)
  }

  /** Pointwise minimum: the greatest clock both dominate. */
  meet(other: VectorClock): VectorClock {
    const counts = new Map<string, number>()
    for (const [replica, n] of this.counts) {
      const m = Math.min(n, other.get(replica))
      if (m > 0) counts.set(replica, m)
    }
    return counts.size === 0 ? VectorClock.empty : new VectorClock(counts)
  }

  compare(other: VectorClock): ClockOrder {
    let less = false
    let greater = false
    for (const [replica, n] of this.counts) {
      const m = other.get(replica)
      if (n > m) greater = true
      else if (n < m) less = true
    }
    for (const [replica, m] of other.counts) {
      if (!this.counts.has(replica) && m > 0) less = true
    }
    if (less && greater) return 'concurrent'
    if (less) return 'before'
    if (greater) return 'after'
    return 'equal'
  }

  /** True when this clock has seen everything `other` has (pointwise ≥, equal included). */
  dominates(other: VectorClock): boolean {
    for (const [replica, m] of other.counts) if (this.get(replica) < m) return false
    return true
  }

  equals(other: VectorClock): boolean {
    return this.compare(other) === 'equal'
  }

  /** The entries where this clock is ahead of `other`. */
  aheadOf(other: VectorClock): VectorClock {
    const counts = new Map<string, number>()
    for (const [replica, n] of this.counts) if (n > other.get(replica)) counts.set(replica, n)
    return counts.size === 0 ? VectorClock.empty : new VectorClock(counts)
  }

  /**
   * The wire form. A clock never changes, so it is built once: a sync sends and reports the same
   * version several times (request, answer, status). Frozen, as every caller shares it.
   */
  encode(): VectorClockWire {
    if (this.wire === undefined) {
      const out: VectorClockWire = {}
      for (const [replica, n] of this.pairs()) out[replica] = n
      this.wire = Object.freeze(out)
    }
    return this.wire
  }

  /** The compact wire form (see VectorClockPairs), built once and frozen like `encode`'s. */
  pairs(): VectorClockPairs {
    if (this.wirePairs === undefined) {
      const out: Array<readonly [string, number]> = []
      for (const replica of [...this.counts.keys()].sort()) out.push(Object.freeze([replica, this.counts.get(replica)!] as const))
      this.wirePairs = Object.freeze(out)
    }
    return this.wirePairs
  }

  toJSON(): VectorClockWire {
    return this.encode()
  }
}

/** A version vector's largest replica list checked here; larger ones go to the schema. */
const FAST_REPLICAS = 4_096

/**
 * The fast check of a wire vector clock: a plain object of replica id (1..256 chars) → safe
 * non-negative integer. A subset of what vectorClockSchema accepts (the schema decides the rest);
 * zod's record parse cost more than the sync it was part of.
 */
export function isVectorClockWire(value: unknown): value is Record<string, number> {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return false
  const entries = value as Record<string, unknown>
  let n = 0
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue
    if (++n > FAST_REPLICAS || !isReplicaId(key) || !isCounter(entries[key])) return false
  }
  return true
}

/** isVectorClockWire for the pairs form: distinct replica ids (1..256 chars), safe non-negative counts. */
export function isVectorClockPairs(value: readonly unknown[]): value is Array<[string, number]> {
  if (value.length > FAST_REPLICAS) return false
  for (let i = 0; i < value.length; i++) {
    const pair = value[i]
    if (!Array.isArray(pair) || pair.length !== 2) return false
    const [replica, count] = pair as [unknown, unknown]
    if (!isReplicaId(replica) || !isCounter(count)) return false
  }
  return value.length <= 8 ? distinctFew(value as Array<[string, number]>) : new Set(value.map((pair) => (pair as [string])[0])).size === value.length
}

function distinctFew(pairs: ReadonlyArray<readonly [string, number]>): boolean {
  for (let i = 1; i < pairs.length; i++) for (let j = 0; j < i; j++) if (pairs[i]![0] === pairs[j]![0]) return false
  return true
}
