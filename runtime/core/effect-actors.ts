// The effectful actors that machines declare and the runtime provides. Machines stay pure: they
// name an actor ('deadlineTimer', 'backoffTimer') and the runtime binds it to the clock and random
// effects here, so the same machine runs on the system clock or a virtual one.

import { fromCallback } from 'xstate'
import type { Clock } from '../../effects/time/index.js'
import type { Random } from '../../effects/random/index.js'
import { type RetryEvent } from '../../machines/retry.js'
import { backoffDelay, type BackoffTimerInput, type DeadlineEvent, type DeadlineTimerInput, type GraceOverEvent } from '../../machines/kernel.js'

/** Sends DEADLINE (or what `says` names) when the clock reaches `deadlineAt` (at once if it already has). Re-armed on restore. */
export function deadlineTimerActor<Says extends DeadlineEvent | GraceOverEvent = DeadlineEvent>(clock: Clock) {
  return fromCallback<Says, DeadlineTimerInput>(({ input, sendBack }) => {
    const event = { type: input.says ?? 'DEADLINE' } as Says
    const handle = clock.setTimeout(() => sendBack(event), Math.max(0, input.deadlineAt - clock.now()))
    return () => clock.clearTimeout(handle)
  })
}

/** Waits the jittered backoff for `attempt`; says DEADLINE at once if waiting would pass the deadline. */
export function backoffTimerActor(clock: Clock, random: Random) {
  return fromCallback<RetryEvent, BackoffTimerInput>(({ input, sendBack }) => {
    const delay = backoffDelay(input.attempt, input.policy, random.float())
    if (input.deadlineAt !== undefined && clock.now() + delay >= input.deadlineAt) {
      sendBack({ type: 'DEADLINE' })
      return () => {}
    }
    const handle = clock.setTimeout(() => sendBack({ type: 'RETRY' }), delay)
    return () => clock.clearTimeout(handle)
  })
}
