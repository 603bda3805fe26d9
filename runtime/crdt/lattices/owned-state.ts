// A handler's state with copy-on-write ownership. Joins go through the type's in-place
// `absorb` when it has one (O(delta) instead of O(state): what makes a 100,000-key OR-Map
// cheap to keep up to date), and a state once handed out by `get` is copied before the next
// in-place join, so a caller never sees a state it holds change under it.

import type { CvType } from './kinds.js'
import type { VectorClock } from './vector-clock.js'

export interface OwnedState<S> {
  /** The state, handed out: the next join copies before writing. */
  get(): S
  /** The state, for reading inside the handler only. */
  peek(): S
  /** Join `delta` in; true when it may have brought something new. */
  join(delta: S): boolean
  /** Drops sync metadata every replica has seen (the type's `collect`); true when something went. */
  collect(stable: VectorClock): boolean
}

export function ownedState<S>(type: CvType<S>, initial: S): OwnedState<S> {
  let current = initial
  let exclusive = false
  return {
    get() {
      exclusive = false
      return current
    },
    peek: () => current,
    join(delta) {
      if (type.absorb === undefined || type.own === undefined) {
        const next = type.join(current, delta)
        const changed = !type.equals(next, current)
        current = next
        return changed
      }
      // Without the old state to compare against, ask whether the delta holds anything
      // beyond what our version already covers (conservative: true may mean "maybe").
      const changed = !type.isBottom(type.missingFor(delta, type.version(current)))
      if (!exclusive) {
        current = type.own(current)
        exclusive = true
      }
      current = type.absorb(current, delta)
      return changed
    },
    collect(stable) {
      if (type.collect === undefined) return false
      // The collected state shares the live part; an exclusively owned one stays owned.
      const next = type.collect(current, stable)
      const changed = next !== current
      current = next
      return changed
    },
  }
}
