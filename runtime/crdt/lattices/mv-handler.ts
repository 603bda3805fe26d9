// Meet-semilattice handler: a replica's constraint state only shrinks. Each origin numbers its
// constraint messages; a message whose counter is not above the last one accepted from that
// origin is a replay or reordering of an older constraint and is rejected, so a stale view
// can never be mistaken for news.

import { InvalidInput } from '../../../effects/errors.js'
import type { MeetMessage, MeetType, MvHandler } from './kinds.js'
import { VectorClock } from './vector-clock.js'

export function createMvHandler<S>(type: MeetType<S>, replica: string, initial?: S): MvHandler<S> {
  let current = initial ?? type.top()
  let counters = VectorClock.empty
  return {
    type,
    replica,
    state: () => current,
    counters: () => counters,
    constrain(constraint) {
      current = type.meet(current, constraint)
      counters = counters.increment(replica)
      return { origin: replica, counter: counters.get(replica), constraint }
    },
    receive(message: MeetMessage<S>) {
      const last = counters.get(message.origin)
      if (!Number.isSafeInteger(message.counter) || message.counter <= last) {
        throw new InvalidInput('meet message counter did not increase', {
          reason: 'non-increasing-counter',
          origin: message.origin,
          counter: message.counter,
          last,
        })
      }
      const next = type.meet(current, message.constraint)
      const changed = !type.equals(next, current)
      current = next
      counters = counters.with(message.origin, message.counter)
      return changed
    },
  }
}
