// Holds one replica's state of a state-based type. Mutators are delta-mutators: they return
// the delta, and the handler joins it in, so a local change and a remote one take the same path.

import type { CvHandler, CvType } from './kinds.js'
import { ownedState } from './owned-state.js'
import type { VectorClock } from './vector-clock.js'

export function createCvHandler<S>(type: CvType<S>, initial?: S): CvHandler<S> {
  const owned = ownedState(type, initial ?? type.bottom())
  return {
    type,
    state: owned.get,
    version: () => type.version(owned.peek()),
    mutate(mutator) {
      const delta = mutator(owned.peek())
      owned.join(delta)
      return delta
    },
    join: (remote) => owned.join(remote),
    collect: (stable) => owned.collect(stable),
    missing: (since: VectorClock) => type.missingFor(owned.peek(), since),
  }
}
