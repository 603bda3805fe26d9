// Retry (pattern 6, with timeout.ts): exponential backoff with jitter, an attempt budget, a
// retryable-error predicate, and a deadline. The delay is computed by the injected `backoffTimer`
// with `backoffDelay` (kernel.ts) and the Random effect, so the runtime and the tests share one formula
// and the machine itself stays free of clocks and randomness.
import { assign, fromCallback, fromPromise, not, setup } from 'xstate'
import { z } from 'zod'
import {
  backoffPolicySchema,
  defaultIsRetryable,
  errorInfo,
  type BackoffPolicy,
  type BackoffTimerInput,
  type DeadlineEvent,
  type DeadlineTimerInput,
  type ErrorInfo,
} from './kernel.js'

export const retryInputSchema = z.object({
  policy: backoffPolicySchema,
  deadlineAt: z.number().finite().optional(),
})
export type RetryInput = z.infer<typeof retryInputSchema>

export type AttemptInput = { attempt: number; deadlineAt?: number }

export type RetryEvent = { type: 'RETRY' } | DeadlineEvent | { type: 'CANCEL'; reason?: string }

export type RetryStatus = 'succeeded' | 'failed' | 'exhausted' | 'deadlineExceeded' | 'cancelled'

/**
 * error: failed → the operation's own error (code from its `code`, original in `cause`);
 * exhausted → ATTEMPT_BUDGET_EXHAUSTED; deadlineExceeded → DEADLINE_EXCEEDED; cancelled →
 * CANCELLED; for the last three `cause` is the last attempt's error, if any.
 */
export type RetryOutput = { status: RetryStatus; value?: unknown; error?: ErrorInfo; attempts: number }

export type RetryContext = {
  policy: BackoffPolicy
  deadlineAt: number | undefined
  /** The attempt running now, or the last one made (1-based). */
  attempt: number
  lastError: unknown
  status: RetryStatus | null
  value: unknown
  error: ErrorInfo | null
}

const lastCause = (context: RetryContext): { cause?: unknown } => (context.lastError === undefined ? {} : { cause: context.lastError })

export const retryMachine = setup({
  types: {
    input: {} as RetryInput,
    context: {} as RetryContext,
    events: {} as RetryEvent,
    output: {} as RetryOutput,
  },
  actors: {
    attempt: fromPromise<unknown, AttemptInput>(async () => {
      throw Object.assign(new Error('attempt actor not provided'), { retryable: false })
    }),
    // Without a clock the placeholder cannot wait, so it retries at once; the runtime's waits.
    backoffTimer: fromCallback<RetryEvent, BackoffTimerInput>(({ sendBack }) => {
      sendBack({ type: 'RETRY' })
    }),
    deadlineTimer: fromCallback<DeadlineEvent, DeadlineTimerInput>(() => undefined),
  },
  guards: {
    isRetryable: ({ event }) => defaultIsRetryable((event as { error?: unknown }).error),
    attemptsExhausted: ({ context }) => context.attempt >= context.policy.maxAttempts,
    hasDeadline: ({ context }) => context.deadlineAt !== undefined,
  },
  actions: {
    markCancelled: assign(({ context, event }) => ({
      status: 'cancelled' as const,
      error: {
        code: 'CANCELLED',
        message: (event.type === 'CANCEL' ? event.reason : undefined) ?? 'cancelled',
        ...lastCause(context),
      },
    })),
    markDeadline: assign(({ context }) => ({
      status: 'deadlineExceeded' as const,
      error: { code: 'DEADLINE_EXCEEDED', message: `deadline ${context.deadlineAt} passed`, ...lastCause(context) },
    })),
  },
}).createMachine({
  id: 'retry',
  context: ({ input }) => ({
    policy: input.policy,
    deadlineAt: input.deadlineAt,
    attempt: 1,
    lastError: undefined,
    status: null,
    value: undefined,
    error: null,
  }),
  initial: 'attempting',
  states: {
    attempting: {
      invoke: {
        id: 'attempt',
        src: 'attempt',
        input: ({ context }) =>
          context.deadlineAt === undefined ? { attempt: context.attempt } : { attempt: context.attempt, deadlineAt: context.deadlineAt },
        onDone: {
          target: 'succeeded',
          actions: assign({ status: 'succeeded', value: ({ event }) => event.output }),
        },
        onError: [
          {
            guard: not('isRetryable'),
            target: 'failed',
            actions: assign(({ event }) => ({
              lastError: event.error,
              status: 'failed' as const,
              error: errorInfo(event.error),
            })),
          },
          {
            guard: 'attemptsExhausted',
            target: 'exhausted',
            actions: assign(({ context, event }) => ({
              lastError: event.error,
              status: 'exhausted' as const,
              error: {
                code: 'ATTEMPT_BUDGET_EXHAUSTED',
                message: `all ${context.policy.maxAttempts} attempts failed`,
                cause: event.error,
              },
            })),
          },
          { target: 'backoff', actions: assign({ lastError: ({ event }) => event.error }) },
        ],
      },
      // The deadline is also watched while an attempt runs: reaching it stops the attempt
      // (aborting its signal). Only armed when there is a deadline, hence the transient pick.
      initial: 'pick',
      states: {
        pick: { always: [{ guard: 'hasDeadline', target: 'bounded' }, { target: 'unbounded' }] },
        bounded: {
          invoke: { id: 'deadline', src: 'deadlineTimer', input: ({ context }) => ({ deadlineAt: context.deadlineAt! }) },
        },
        unbounded: {},
      },
      on: {
        DEADLINE: { target: 'deadlineExceeded', actions: 'markDeadline' },
        CANCEL: { target: 'cancelled', actions: 'markCancelled' },
      },
    },
    backoff: {
      invoke: {
        id: 'backoff',
        src: 'backoffTimer',
        input: ({ context }) =>
          context.deadlineAt === undefined
            ? { attempt: context.attempt, policy: context.policy }
            : { attempt: context.attempt, policy: context.policy, deadlineAt: context.deadlineAt },
      },
      on: {
        RETRY: { target: 'attempting', actions: assign({ attempt: ({ context }) => context.attempt + 1 }) },
        DEADLINE: { target: 'deadlineExceeded', actions: 'markDeadline' },
        CANCEL: { target: 'cancelled', actions: 'markCancelled' },
      },
    },
    succeeded: { type: 'final' },
    failed: { type: 'final' },
    exhausted: { type: 'final' },
    deadlineExceeded: { type: 'final' },
    cancelled: { type: 'final' },
  },
  output: ({ context }) => {
    const out: RetryOutput = { status: context.status ?? 'failed', attempts: context.attempt }
    if (context.status === 'succeeded') out.value = context.value
    if (context.error) out.error = context.error
    return out
  },
})
