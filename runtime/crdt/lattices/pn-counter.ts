// Counter with increments and decrements: two grow-only counters (P and N), value P − N.
// Version: per replica, P[r] + N[r]. Only r writes r's entries and amounts are positive, so
// along r's history that sum strictly grows; a peer whose sum for r is ≥ ours has both of
// our entries for r already. `missingFor` sends, per replica, both entries or neither.

import { z } from 'zod'
import { checkCounterAmount } from './g-counter.js'
import type { CvType } from './kinds.js'
import { isVectorClockWire, VectorClock, vectorClockSchema } from './vector-clock.js'
import { hasExactly, parseWire } from './lattice-wire.js'

export interface PNCounterState {
  readonly p: VectorClock
  readonly n: VectorClock
}

export const pnCounterWireSchema = z.object({ p: vectorClockSchema, n: vectorClockSchema }).strict()

const WIRE_KEYS = ['p', 'n'] as const

/** The fast check of the wire form: a subset of what the schema accepts, as it would return it (the schema decides the rest). */
export function isPNCounterWire(wire: unknown): wire is z.infer<typeof pnCounterWireSchema> {
  return hasExactly(wire, WIRE_KEYS) && isVectorClockWire(wire.p) && isVectorClockWire(wire.n)
}

const bottom: PNCounterState = { p: VectorClock.empty, n: VectorClock.empty }

function version(s: PNCounterState): VectorClock {
  const sums = new Map<string, number>()
  for (const [r, x] of s.p.entries()) sums.set(r, x)
  for (const [r, x] of s.n.entries()) sums.set(r, (sums.get(r) ?? 0) + x)
  return VectorClock.of(sums)
}

export const pnCounter = {
  name: 'pn-counter',
  bottom: () => bottom,
  join: (a, b) => ({ p: a.p.merge(b.p), n: a.n.merge(b.n) }),
  equals: (a, b) => a.p.equals(b.p) && a.n.equals(b.n),
  version,
  missingFor(s, remote) {
    const ahead = version(s).aheadOf(remote)
    const pick = (c: VectorClock) => VectorClock.of([...c.entries()].filter(([r]) => ahead.get(r) > 0))
    return { p: pick(s.p), n: pick(s.n) }
  },
  isBottom: (s) => s.p.size === 0 && s.n.size === 0,
  encode: (s) => ({ p: s.p.encode(), n: s.n.encode() }),
  decode(wire) {
    const parsed = parseWire(pnCounterWireSchema, wire, 'pn-counter', isPNCounterWire)
    return { p: VectorClock.of(Object.entries(parsed.p)), n: VectorClock.of(Object.entries(parsed.n)) }
  },

  // Deltas carry both of the replica's entries: a delta that arrives before an older one must
  // still leave the (P[r], N[r]) pair of one moment of r's history, or the version would lie.
  increment(s: PNCounterState, replica: string, by = 1): PNCounterState {
    checkCounterAmount(by)
    return { p: VectorClock.of([[replica, s.p.get(replica) + by]]), n: VectorClock.of([[replica, s.n.get(replica)]]) }
  },

  decrement(s: PNCounterState, replica: string, by = 1): PNCounterState {
    checkCounterAmount(by)
    return { p: VectorClock.of([[replica, s.p.get(replica)]]), n: VectorClock.of([[replica, s.n.get(replica) + by]]) }
  },

  value(s: PNCounterState): number {
    let v = 0
    for (const [, x] of s.p.entries()) v += x
    for (const [, x] of s.n.entries()) v -= x
    return v
  },
} satisfies CvType<PNCounterState> & Record<string, unknown>
