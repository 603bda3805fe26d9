// Grow-only counter: one count per replica, join is the pointwise maximum. The state has the
// shape of a version vector, and is its own version: a peer at version v lacks exactly the
// entries where this state is ahead of v.

import { InvalidInput } from '../../../effects/errors.js'
import type { CvType } from './kinds.js'
import { VectorClock } from './vector-clock.js'

export type GCounterState = VectorClock

export function checkCounterAmount(by: number): void {
  if (!Number.isSafeInteger(by) || by < 1) throw new InvalidInput('counter increment must be a positive integer', { by })
}

export const gCounter = {
  name: 'g-counter',
  bottom: () => VectorClock.empty,
  join: (a, b) => a.merge(b),
  equals: (a, b) => a.equals(b),
  version: (s) => s,
  missingFor: (s, remote) => s.aheadOf(remote),
  isBottom: (s) => s.size === 0,
  encode: (s) => s.encode(),
  decode: (wire) => VectorClock.decode(wire),

  /** Delta-mutator: the delta is this replica's new entry. */
  increment(s: GCounterState, replica: string, by = 1): GCounterState {
    checkCounterAmount(by)
    return VectorClock.of([[replica, s.get(replica) + by]])
  },

  value(s: GCounterState): number {
    let sum = 0
    for (const [, n] of s.entries()) sum += n
    return sum
  },
} satisfies CvType<GCounterState> & Record<string, unknown>
