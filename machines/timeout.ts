// Timeout coordination (pattern 6). A deadline is an absolute time on this peer's clock (between
// peers it travels as the budget left, see runtime/core/wire.ts); a child gets min(requested, what the
// parent has left). Expiry stops the operation actor, and
// stopping a promise actor aborts its `signal`, which is how the work and everything it spawned
// learns to give up. Time enters only through the injected `deadlineTimer` (durable: re-armed
// from `deadlineAt` when a persisted snapshot is restored, unlike XState `after` timers).
import { assign, enqueueActions, fromCallback, fromPromise, setup } from 'xstate'
import { z } from 'zod'
import { errorInfo, type DeadlineEvent, type DeadlineTimerInput, type ErrorInfo } from './kernel.js'

// Placeholders: the runtime provides the real ones. Without a clock a deadline timer cannot fire,
// so the placeholder never does; an unprovided operation fails loudly.
const inertDeadlineTimer = fromCallback<DeadlineEvent, DeadlineTimerInput>(() => undefined)
const missingOperation = <I>(name: string) =>
  fromPromise<unknown, I>(async () => {
    throw new Error(`${name} actor not provided`)
  })

// ---------------------------------------------------------------------------------------------
// timeoutMachine: one operation under one deadline

export const timeoutInputSchema = z.object({ deadlineAt: z.number().finite() })
export type TimeoutInput = z.infer<typeof timeoutInputSchema>
export type TimeoutOperationInput = { deadlineAt: number }

export type TimeoutEvent = DeadlineEvent | { type: 'CANCEL'; reason?: string }

export type TimeoutStatus = 'succeeded' | 'expired' | 'failed' | 'cancelled'
export type TimeoutOutput = { status: TimeoutStatus; value?: unknown; error?: ErrorInfo }

export type TimeoutContext = {
  deadlineAt: number
  status: TimeoutStatus | null
  value: unknown
  error: ErrorInfo | null
}

export const timeoutMachine = setup({
  types: {
    input: {} as TimeoutInput,
    context: {} as TimeoutContext,
    events: {} as TimeoutEvent,
    output: {} as TimeoutOutput,
  },
  actors: {
    operation: missingOperation<TimeoutOperationInput>('operation'),
    deadlineTimer: inertDeadlineTimer,
  },
}).createMachine({
  id: 'timeout',
  context: ({ input }) => ({ deadlineAt: input.deadlineAt, status: null, value: undefined, error: null }),
  initial: 'running',
  states: {
    running: {
      invoke: [
        // Armed before the operation starts: a timer the operation arms for the same deadline
        // (a session it creates inherits it) fires after this one, so the operation expires
        // rather than ending with its own timeout first.
        { id: 'deadline', src: 'deadlineTimer', input: ({ context }) => ({ deadlineAt: context.deadlineAt }) },
        {
          id: 'operation',
          src: 'operation',
          input: ({ context }) => ({ deadlineAt: context.deadlineAt }),
          onDone: { target: 'succeeded', actions: assign({ status: 'succeeded', value: ({ event }) => event.output }) },
          onError: { target: 'failed', actions: assign({ status: 'failed', error: ({ event }) => errorInfo(event.error) }) },
        },
      ],
      on: {
        DEADLINE: {
          target: 'expired',
          actions: assign({
            status: 'expired',
            error: ({ context }) => ({ code: 'DEADLINE_EXCEEDED', message: `deadline ${context.deadlineAt} passed` }),
          }),
        },
        CANCEL: {
          target: 'cancelled',
          actions: assign({
            status: 'cancelled',
            error: ({ event }) => ({ code: 'CANCELLED', message: event.reason ?? 'cancelled' }),
          }),
        },
      },
    },
    succeeded: { type: 'final' },
    expired: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
  },
  output: ({ context }) => {
    const out: TimeoutOutput = { status: context.status ?? 'failed' }
    if (context.status === 'succeeded') out.value = context.value
    if (context.error) out.error = context.error
    return out
  },
})

// ---------------------------------------------------------------------------------------------
// coordinatedTimeoutMachine: several operations under one shared deadline

export const coordinationPolicySchema = z.enum(['fail-fast', 'best-effort'])
export type CoordinationPolicy = z.infer<typeof coordinationPolicySchema>

export const coordinatedTimeoutInputSchema = z.object({
  deadlineAt: z.number().finite(),
  policy: coordinationPolicySchema,
  opIds: z.array(z.string().min(1)).refine((ids) => new Set(ids).size === ids.length, { message: 'opIds must be unique' }),
})
export type CoordinatedTimeoutInput = z.infer<typeof coordinatedTimeoutInputSchema>
export type CoordinatedOperationInput = { opId: string; deadlineAt: number }

export type CoordinatedTimeoutEvent = DeadlineEvent | { type: 'CANCEL'; reason?: string }

export type CoordinatedStatus = 'succeeded' | 'failed' | 'partial' | 'cancelled'

/**
 * results: opId → value of every op that completed. errors: opId → error of every op that failed
 * (fail-fast: only the one that ended the group). unfinished: ops still running when the group
 * ended, which were stopped (for `partial` and a deadline failure: the ops that timed out).
 * failedOp: fail-fast only, the op whose error failed the group. error: why the group did not
 * succeed (the failed op's error, DEADLINE_EXCEEDED, or CANCELLED).
 */
export type CoordinatedTimeoutOutput = {
  status: CoordinatedStatus
  policy: CoordinationPolicy
  results: Record<string, unknown>
  errors: Record<string, ErrorInfo>
  unfinished: string[]
  failedOp?: string
  error?: ErrorInfo
}

export type CoordinatedTimeoutContext = {
  deadlineAt: number
  policy: CoordinationPolicy
  opIds: string[]
  results: Record<string, unknown>
  errors: Record<string, ErrorInfo>
  status: CoordinatedStatus | null
  unfinished: string[]
  failedOp: string | null
  error: ErrorInfo | null
}

const OP_PREFIX = 'op:'
/** The child id of an operation, as seen in `xstate.done.actor.<id>` events and `snapshot.children`. */
export const opChildId = (opId: string): string => OP_PREFIX + opId
const opOf = (actorId: string | undefined): string | null => (actorId !== undefined && actorId.startsWith(OP_PREFIX) ? actorId.slice(OP_PREFIX.length) : null)

const settled = (ctx: Pick<CoordinatedTimeoutContext, 'results' | 'errors'>, opId: string): boolean =>
  Object.hasOwn(ctx.results, opId) || Object.hasOwn(ctx.errors, opId)
const unfinishedOps = (ctx: CoordinatedTimeoutContext): string[] => ctx.opIds.filter((id) => !settled(ctx, id))

// Done/error events of the spawned children have dynamic ids, so they are matched by wildcard
// and narrowed by the `op:` prefix (the deadline timer is a child too).
type ChildDoneEvent = { type: `xstate.done.actor.${string}`; output: unknown; actorId: string }
type ChildErrorEvent = { type: `xstate.error.actor.${string}`; error: unknown; actorId: string }

export const coordinatedTimeoutMachine = setup({
  types: {
    input: {} as CoordinatedTimeoutInput,
    context: {} as CoordinatedTimeoutContext,
    // The child events are listed so the wildcard transitions below are typed; nothing outside sends them.
    events: {} as CoordinatedTimeoutEvent | ChildDoneEvent | ChildErrorEvent,
    output: {} as CoordinatedTimeoutOutput,
  },
  actors: {
    operation: missingOperation<CoordinatedOperationInput>('operation'),
    deadlineTimer: inertDeadlineTimer,
  },
  guards: {
    isFailFast: ({ context }) => context.policy === 'fail-fast',
    allSettled: ({ context }) => context.opIds.every((id) => settled(context, id)),
  },
  actions: {
    spawnOperations: enqueueActions(({ context, enqueue }) => {
      for (const opId of context.opIds) {
        enqueue.spawnChild('operation', { id: opChildId(opId), input: { opId, deadlineAt: context.deadlineAt } })
      }
    }),
    // Stopping a promise child aborts its signal; children already finished are not there to stop.
    stopOperations: enqueueActions(({ context, enqueue }) => {
      for (const opId of context.opIds) enqueue.stopChild(opChildId(opId))
    }),
  },
}).createMachine({
  id: 'coordinatedTimeout',
  context: ({ input }) => ({
    deadlineAt: input.deadlineAt,
    policy: input.policy,
    opIds: [...input.opIds],
    results: {},
    errors: {},
    status: null,
    unfinished: [],
    failedOp: null,
    error: null,
  }),
  initial: 'running',
  states: {
    running: {
      entry: 'spawnOperations',
      exit: 'stopOperations',
      invoke: { id: 'deadline', src: 'deadlineTimer', input: ({ context }) => ({ deadlineAt: context.deadlineAt }) },
      always: {
        guard: 'allSettled',
        target: 'succeeded',
        actions: assign({ status: 'succeeded' }),
      },
      on: {
        'xstate.done.actor.*': {
          guard: ({ event }) => opOf(event.actorId) !== null,
          actions: assign({
            results: ({ context, event }) => {
              return { ...context.results, [opOf(event.actorId)!]: event.output }
            },
          }),
        },
        'xstate.error.actor.*': [
          {
            guard: ({ context, event }) => context.policy === 'fail-fast' && opOf(event.actorId) !== null,
            target: 'failed',
            actions: assign(({ context, event }) => {
              const opId = opOf(event.actorId)!
              const error = errorInfo(event.error)
              const errors = { ...context.errors, [opId]: error }
              return {
                status: 'failed' as const,
                failedOp: opId,
                error,
                errors,
                unfinished: unfinishedOps({ ...context, errors }),
              }
            }),
          },
          {
            guard: ({ event }) => opOf(event.actorId) !== null,
            actions: assign({
              errors: ({ context, event }) => {
                return { ...context.errors, [opOf(event.actorId)!]: errorInfo(event.error) }
              },
            }),
          },
        ],
        DEADLINE: [
          {
            guard: 'isFailFast',
            target: 'failed',
            actions: assign(({ context }) => ({
              status: 'failed' as const,
              error: { code: 'DEADLINE_EXCEEDED', message: `deadline ${context.deadlineAt} passed` },
              unfinished: unfinishedOps(context),
            })),
          },
          {
            target: 'partial',
            actions: assign(({ context }) => ({
              status: 'partial' as const,
              error: { code: 'DEADLINE_EXCEEDED', message: `deadline ${context.deadlineAt} passed` },
              unfinished: unfinishedOps(context),
            })),
          },
        ],
        CANCEL: {
          target: 'cancelled',
          actions: assign(({ context, event }) => ({
            status: 'cancelled' as const,
            error: { code: 'CANCELLED', message: event.reason ?? 'cancelled' },
            unfinished: unfinishedOps(context),
          })),
        },
      },
    },
    succeeded: { type: 'final' },
    failed: { type: 'final' },
    partial: { type: 'final' },
    cancelled: { type: 'final' },
  },
  output: ({ context }) => {
    const out: CoordinatedTimeoutOutput = {
      status: context.status ?? 'failed',
      policy: context.policy,
      results: context.results,
      errors: context.errors,
      unfinished: context.unfinished,
    }
    if (context.failedOp !== null) out.failedOp = context.failedOp
    if (context.error) out.error = context.error
    return out
  },
})
