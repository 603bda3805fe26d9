// Runs an async operation under the retry machine: exponential backoff with jitter, a maximum
// number of attempts, a retryable-error predicate and a deadline. Used by every pattern that
// retries (session step delivery, CRDT sync, replication), so they all behave the same way.

import { createActor, fromPromise, toPromise } from 'xstate'
import { AttemptBudgetExhausted, AuraError, Cancelled, DeadlineExceeded, isAuraError } from '../effects/errors.js'
import type { Clock } from '../effects/time/index.js'
import type { Random } from '../effects/random/index.js'
import { retryMachine, retryInputSchema, type AttemptInput, type BackoffPolicy } from '../machines/retry.js'
import { backoffTimerActor, deadlineTimerActor } from './effect-actors.js'

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
}

/** Errors that no retry can fix. */
const PERMANENT = new Set(['INVALID_INPUT', 'PERMISSION_DENIED', 'CANCELLED', 'UNKNOWN_ROLE', 'UNKNOWN_PROTOCOL', 'FRAME_TOO_LARGE', 'LIMIT_EXCEEDED', 'CONFIG_INVALID'])

export const isTransient = (error: unknown): boolean => !(isAuraError(error) && PERMANENT.has(error.code))

export async function withRetry<T>(operation: (attempt: number, signal: AbortSignal) => Promise<T>, options: RetryOptions): Promise<T> {
  const policy = options.policy ?? DEFAULT_RETRY_POLICY
  const input = retryInputSchema.parse({ policy, ...(options.deadlineAt !== undefined ? { deadlineAt: options.deadlineAt } : {}) })
  const isRetryable = options.isRetryable ?? isTransient
  const machine = retryMachine.provide({
    actors: {
      attempt: fromPromise<unknown, AttemptInput>(({ input: { attempt }, signal }) => operation(attempt, signal)),
      backoffTimer: backoffTimerActor(options.clock, options.random),
      deadlineTimer: deadlineTimerActor(options.clock),
    },
    guards: {
      isRetryable: ({ event }) => isRetryable((event as { error?: unknown }).error),
    },
  })
  const actor = createActor(machine, { input, clock: options.clock, ...(options.inspect ? { inspect: options.inspect } : {}) })
  const onAbort = () => actor.send({ type: 'CANCEL' })
  options.signal?.addEventListener('abort', onAbort, { once: true })
  if (options.signal?.aborted) onAbort()
  try {
    actor.start()
    const output = await toPromise(actor)
    switch (output.status) {
      case 'succeeded':
        return output.value as T
      case 'exhausted':
        throw new AttemptBudgetExhausted(`gave up after ${output.attempts} attempts`, { attempts: output.attempts }, { cause: output.error?.cause })
      case 'deadlineExceeded':
        throw new DeadlineExceeded(`deadline passed after ${output.attempts} attempts`, { attempts: output.attempts }, { cause: output.error?.cause })
      case 'cancelled':
        throw new Cancelled('retry cancelled', { attempts: output.attempts })
      default:
        // a non-retryable failure: the operation's own error, unchanged
        throw output.error?.cause ?? new AuraError((output.error?.code as AuraError['code']) ?? 'NETWORK', output.error?.message ?? 'operation failed', { attempts: output.attempts })
    }
  } finally {
    options.signal?.removeEventListener('abort', onAbort)
    actor.stop()
  }
}
