// Runs an async operation under the retry machine: exponential backoff with jitter, a maximum
// number of attempts, a retryable-error predicate and a deadline. Used by every pattern that
// retries (session step delivery, CRDT sync, replication), so they all behave the same way.

import { createActor, fromPromise } from 'xstate'
import { runToOutput } from '../core/run-machine.js'
import { AttemptBudgetExhausted, Cancelled, DeadlineExceeded, errorFromReport, isRetryable } from '../../effects/errors.js'
import type { Clock } from '../../effects/time/index.js'
import type { Random } from '../../effects/random/index.js'
import { retryMachine, retryInputSchema, type AttemptInput } from '../../machines/retry.js'
import { backoffDelay, type BackoffPolicy } from '../../machines/kernel.js'
import { backoffTimerActor, deadlineTimerActor } from '../core/effect-actors.js'

export type RetryPolicy = BackoffPolicy

export const DEFAULT_RETRY_POLICY: RetryPolicy = { maxAttempts: 5, initialDelayMs: 50, maxDelayMs: 2_000, multiplier: 2, jitter: 'equal' }

export interface RetryOptions {
  policy?: RetryPolicy
  deadlineAt?: number
  signal?: AbortSignal
  isRetryable?: (error: unknown) => boolean
  clock: Clock
  random: Random
  /** receives the actor's inspection events (observability) */
  inspect?: (event: unknown) => void
  /**
   * The longest an attempt can take: it settles by itself within this many ms (e.g. a router
   * request with that timeout). When the first attempt would end before the deadline anyway, it
   * runs without a deadline timer, and without a signal of its own: the caller's signal, or none.
   */
  attemptTimeoutMs?: number
}

/** An attempt's signal: aborts at the deadline or on the caller's signal; undefined when nothing could stop it early. */
type Operation<T> = (attempt: number, signal: AbortSignal | undefined) => Promise<T>

/** Whether a retry can help: the shared error table (effects/errors.ts ERROR_CODES). */
export const isTransient = isRetryable

/**
 * Runs `operation` with retries. The first attempt runs directly — most operations succeed at
 * once, and creating a retry actor per call was the largest cost on hot paths (sessions and
 * transport sends). Only when it fails with a retryable error do attempts 2..n run under the retry
 * machine, on exactly the schedule the policy gives them: the first backoff is waited here, then
 * the machine runs with the policy shifted by one attempt. `attempts` in errors counts them all.
 * With `attemptTimeoutMs`, a first attempt that ends before the deadline anyway gets neither a
 * deadline timer nor an AbortController: its signal is the caller's, or undefined without one.
 * @example
 * const value = await withRetry((attempt, signal) => fetchValue(signal), {
 *   policy: { maxAttempts: 4, initialDelayMs: 50, maxDelayMs: 1_000, multiplier: 2, jitter: 'equal' },
 *   clock: new SystemClock(),
 *   random: new CryptoRandom(),
 * })
 */
export function withRetry<T>(operation: Operation<T>, options: RetryOptions & { attemptTimeoutMs: number }): Promise<T>
export function withRetry<T>(
  operation: (attempt: number, signal: AbortSignal) => Promise<T>,
  options: RetryOptions & { attemptTimeoutMs?: undefined },
): Promise<T>
export async function withRetry<T>(operation: Operation<T> | ((attempt: number, signal: AbortSignal) => Promise<T>), options: RetryOptions): Promise<T> {
  // Safe: an attempt goes without a signal only when attemptTimeoutMs is set, which the overloads
  // allow only for operations that accept none.
  const run = operation as Operation<T>
  const policy = validPolicy(options.policy ?? DEFAULT_RETRY_POLICY)
  const isRetryable = options.isRetryable ?? isTransient
  const { clock, deadlineAt, signal } = options
  if (signal?.aborted) throw new Cancelled('retry cancelled', { attempts: 0 })
  const now = deadlineAt !== undefined ? clock.now() : 0
  if (deadlineAt !== undefined && now >= deadlineAt) throw new DeadlineExceeded('deadline passed before the first attempt', { attempts: 0 })
  // With attemptTimeoutMs, the deadline needs a timer only if the attempt could still be running
  // when it passes, and the attempt needs a signal of its own only for that timer.
  const { attemptTimeoutMs } = options
  const ownSignal = attemptTimeoutMs === undefined || (deadlineAt !== undefined && now + attemptTimeoutMs > deadlineAt)
  let first: unknown
  try {
    return await (ownSignal || signal !== undefined ? firstAttempt(run, clock, ownSignal ? deadlineAt : undefined, signal, !ownSignal) : run(1, undefined))
  } catch (error) {
    if (error instanceof FirstAttemptStopped) throw error.reason
    if (!isRetryable(error)) throw error
    first = error
  }
  if (policy.maxAttempts <= 1) throw new AttemptBudgetExhausted('gave up after 1 attempt', { attempts: 1 }, { cause: first })
  const delay = backoffDelay(1, policy, options.random.float())
  if (deadlineAt !== undefined && clock.now() + delay >= deadlineAt)
    throw new DeadlineExceeded('deadline passed after 1 attempt', { attempts: 1 }, { cause: first })
  try {
    await clock.sleep(delay, signal)
  } catch {
    throw new Cancelled('retry cancelled', { attempts: 1 })
  }
  const rest: RetryPolicy = {
    ...policy,
    maxAttempts: policy.maxAttempts - 1,
    initialDelayMs: Math.min(policy.maxDelayMs, policy.initialDelayMs * policy.multiplier),
  }
  return runRetryMachine((attempt, attemptSignal) => run(attempt + 1, attemptSignal), { ...options, policy: rest, isRetryable }, 1)
}

// Policies are validated once per object and set of values: most callers pass the same policy
// object on every call (the transport's sendPolicy on every message), and parsing it each time
// cost more than the rest of a successful first attempt. A changed value is validated again.
const validated = new WeakMap<object, RetryPolicy>()

function validPolicy(policy: RetryPolicy): RetryPolicy {
  const known = typeof policy === 'object' && policy !== null ? validated.get(policy) : undefined
  if (
    known !== undefined &&
    known.maxAttempts === policy.maxAttempts &&
    known.initialDelayMs === policy.initialDelayMs &&
    known.maxDelayMs === policy.maxDelayMs &&
    known.multiplier === policy.multiplier &&
    known.jitter === policy.jitter
  ) {
    return known
  }
  const parsed = retryInputSchema.parse({ policy }).policy
  if (typeof policy === 'object' && policy !== null) validated.set(policy, parsed)
  return parsed
}

/** Attempt 1, stopped (signal aborted) by the deadline or the caller's signal like the machine would. */
class FirstAttemptStopped {
  constructor(readonly reason: unknown) {}
}

/**
 * `shareOuter`: the operation may take the caller's signal as its own (it needs no deadline timer),
 * so no controller is made; the attempt still stops at once when the caller's signal aborts.
 */
function firstAttempt<T>(
  operation: Operation<T>,
  clock: Clock,
  deadlineAt: number | undefined,
  outer: AbortSignal | undefined,
  shareOuter: boolean,
): Promise<T> {
  const controller = shareOuter && outer !== undefined ? undefined : new AbortController()
  return new Promise<T>((resolve, reject) => {
    let settled = false
    const finish = (fn: () => void) => {
      if (settled) return
      settled = true
      if (timer !== undefined) clock.clearTimeout(timer)
      outer?.removeEventListener('abort', onAbort)
      fn()
    }
    const stop = (reason: unknown) =>
      finish(() => {
        controller?.abort(reason)
        reject(new FirstAttemptStopped(reason))
      })
    const onAbort = () => stop(new Cancelled('retry cancelled', { attempts: 1 }))
    const timer =
      deadlineAt !== undefined
        ? clock.setTimeout(() => stop(new DeadlineExceeded('deadline passed during attempt 1', { attempts: 1 })), deadlineAt - clock.now())
        : undefined
    outer?.addEventListener('abort', onAbort, { once: true })
    operation(1, controller !== undefined ? controller.signal : outer).then(
      (value) => finish(() => resolve(value)),
      (error: unknown) => finish(() => reject(error)),
    )
  })
}

/** Attempts under the retry machine; `offset` attempts were already made before it started. */
async function runRetryMachine<T>(
  operation: Operation<T>,
  options: RetryOptions & { policy: RetryPolicy; isRetryable: (error: unknown) => boolean },
  offset: number,
): Promise<T> {
  const input = retryInputSchema.parse({ policy: options.policy, ...(options.deadlineAt !== undefined ? { deadlineAt: options.deadlineAt } : {}) })
  const machine = retryMachine.provide({
    actors: {
      attempt: fromPromise<unknown, AttemptInput>(({ input: { attempt }, signal }) => operation(attempt, signal)),
      backoffTimer: backoffTimerActor(options.clock, options.random),
      deadlineTimer: deadlineTimerActor(options.clock),
    },
    guards: {
      isRetryable: ({ event }) => options.isRetryable((event as { error?: unknown }).error),
    },
  })
  const actor = createActor(machine, { input, clock: options.clock, ...(options.inspect ? { inspect: options.inspect } : {}) })
  const onAbort = () => actor.send({ type: 'CANCEL' })
  options.signal?.addEventListener('abort', onAbort, { once: true })
  if (options.signal?.aborted) onAbort()
  try {
    const output = await runToOutput(actor)
    const attempts = output.attempts + offset
    switch (output.status) {
      case 'succeeded':
        return output.value as T
      case 'exhausted':
        throw new AttemptBudgetExhausted(`gave up after ${attempts} attempts`, { attempts }, { cause: output.error?.cause })
      case 'deadlineExceeded':
        throw new DeadlineExceeded(`deadline passed after ${attempts} attempts`, { attempts }, { cause: output.error?.cause })
      case 'cancelled':
        throw new Cancelled('retry cancelled', { attempts })
      default:
        // a non-retryable failure: the operation's own error, unchanged
        throw errorFromReport(output.error, 'NETWORK', 'operation failed', { details: { attempts }, keep: 'any' })
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    actor.stop()
  }
}
