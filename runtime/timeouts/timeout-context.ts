// The timeout an operation runs under, found implicitly. `withTimeout` and
// `withCoordinatedTimeouts` run their operation inside a scope (Node's AsyncLocalStorage, carried
// across awaits, promise callbacks and host timers set inside); whatever starts inside —
// sessions, nested timeouts, any coordinator that asks — gets min(its own timeout, what is left)
// and stops when the enclosing operation is cancelled, without anyone threading a signal by hand.
//
// Reading the scope is not reading a clock: the deadline in it was computed from the clock effect
// when the operation started, so simulations stay deterministic.
//
// A coordinator adopts it in two lines: bound its deadline with `enclosingDeadline(own)`, and
// stop its work when `currentSignal()` aborts (or pass `withEnclosingSignal(own)` along).

import { AsyncLocalStorage } from 'node:async_hooks'

export interface TimeoutScope {
  /** absolute, on this peer's clock */
  readonly deadlineAt: number
  /** aborts when the operation expires, is cancelled or ends */
  readonly signal: AbortSignal
}

const scopes = new AsyncLocalStorage<TimeoutScope>()

/** Runs `fn` (and everything it starts) inside `scope`. */
export function runInTimeoutScope<T>(scope: TimeoutScope, fn: () => T): T {
  return scopes.run(scope, fn)
}

/**
 * Runs `fn` outside any scope: for work that only happens to be triggered from inside one and
 * must not inherit it (inbound messages on a connection first dialled inside an operation).
 */
export function outsideTimeoutScope<T>(fn: () => T): T {
  return scopes.exit(fn)
}

/**
 * The enclosing operation's deadline (absolute, this peer's clock), if any.
 * @example
 * await runtime.timeouts.withTimeout(2_000, async () => {
 *   const left = (currentDeadline() ?? Infinity) - Date.now() // what this operation has left
 * })
 */
export function currentDeadline(): number | undefined {
  return scopes.getStore()?.deadlineAt
}

/**
 * The enclosing operation's signal, if any.
 * @example
 * await runtime.timeouts.withTimeout(2_000, async () => {
 *   await fetch(url, { signal: currentSignal() }) // aborted at the enclosing deadline
 * })
 */
export function currentSignal(): AbortSignal | undefined {
  return scopes.getStore()?.signal
}

/** `own` deadline, never later than the enclosing operation's. */
export function enclosingDeadline(own: number): number {
  const enclosing = currentDeadline()
  return enclosing === undefined ? own : Math.min(own, enclosing)
}

/** A signal that aborts with `own` or with the enclosing operation, whichever first (undefined if neither). */
export function withEnclosingSignal(own?: AbortSignal): AbortSignal | undefined {
  const enclosing = currentSignal()
  if (!enclosing || enclosing === own) return own
  return own ? AbortSignal.any([own, enclosing]) : enclosing
}
