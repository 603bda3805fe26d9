// One way to run a machine for its result: start the actor and wait for its final output.
// Machines report failures in their output (a status and an ErrorInfo), never by erroring, so
// each caller maps its statuses; `errorFromReport` (effects/errors.ts) turns the ErrorInfo of a
// failed status into the typed error callers catch.

import { toPromise, type AnyActorRef, type OutputFrom } from 'xstate'

/** Starts `actor` (start() is a no-op on a running actor) and resolves with its output once it is done. */
export function runToOutput<A extends AnyActorRef>(actor: A): Promise<OutputFrom<A>> {
  const done = toPromise(actor) as Promise<OutputFrom<A>>
  actor.start()
  return done
}
