// CRDT sync with one peer (pattern 1): a long-lived actor per peer.
//
//   idle ──SYNC──▶ requesting ──▶ applying ──(peer lacks something)──▶ pushing ──▶ idle
//                      │              │                                  │
//                      └──────────────┴──── error ──▶ backoff ──RETRY───▶ requesting
//                                                 (or idle, failed, when not retryable / out of attempts)
//
// requesting: send our versions, receive what we lack. applying: join it in (validated first,
// persisted) and work out what the peer lacks. pushing: send that. A SYNC that arrives while a
// round runs is queued and coalesced: one more round starts when this one ends, so a caller's
// change made during a round is never missed. Rounds are numbered; `lastOutcome.round` tells a
// waiting caller that its round (or a later one) has finished.
//
// Effects are injected actors: `exchange`, `apply`, `push` (the runtime's router and storage)
// and `backoffTimer` (clock + random). The machine itself never touches time or randomness.

import { assign, fromCallback, fromPromise, not, setup } from 'xstate'
import { defaultIsRetryable, type BackoffPolicy, type BackoffTimerInput, type RetryEvent } from './retry.js'
import { errorInfo, type ErrorInfo } from './timeout.js'

export interface CrdtSyncInput {
  peerId: string
}

export interface ExchangeInput {
  peerId: string
  attempt: number
}

export interface ApplyInput {
  peerId: string
  response: unknown
}

/** What `apply` resolves with: a push plan when the peer lacks something (null otherwise). */
export interface ApplyOutput {
  push: unknown | null
  result: unknown
}

export interface PushInput {
  peerId: string
  push: unknown
}

export type CrdtSyncEvent = { type: 'SYNC'; policy?: BackoffPolicy } | RetryEvent

export interface SyncOutcome {
  round: number
  ok: boolean
  result?: unknown
  error?: ErrorInfo
  attempts: number
}

export interface CrdtSyncContext {
  peerId: string
  /** The round running now, or the last one started. */
  round: number
  queued: boolean
  queuedPolicy: BackoffPolicy | null
  policy: BackoffPolicy | null
  attempt: number
  response: unknown
  push: unknown
  result: unknown
  lastOutcome: SyncOutcome | null
  syncCount: number
  errorCount: number
}

/** A round without a retry policy makes one attempt. */
const attemptsAllowed = (context: CrdtSyncContext): number => context.policy?.maxAttempts ?? 1

export const crdtSyncMachine = setup({
  types: {
    input: {} as CrdtSyncInput,
    context: {} as CrdtSyncContext,
    events: {} as CrdtSyncEvent,
  },
  actors: {
    exchange: fromPromise<unknown, ExchangeInput>(async () => {
      throw new Error('exchange actor not provided')
    }),
    apply: fromPromise<ApplyOutput, ApplyInput>(async () => {
      throw new Error('apply actor not provided')
    }),
    push: fromPromise<unknown, PushInput>(async () => {
      throw new Error('push actor not provided')
    }),
    backoffTimer: fromCallback<RetryEvent, BackoffTimerInput>(({ sendBack }) => {
      sendBack({ type: 'RETRY' })
    }),
  },
  guards: {
    isRetryable: ({ event }) => defaultIsRetryable((event as { error?: unknown }).error),
    canRetry: ({ context }) => context.attempt < attemptsAllowed(context) && context.policy !== null,
    queued: ({ context }) => context.queued,
    needsPush: ({ event }) => (event as { output?: ApplyOutput }).output?.push != null,
  },
  actions: {
    startRound: assign(({ context, event }) => ({
      round: context.round + 1,
      attempt: 1,
      policy: event.type === 'SYNC' ? (event.policy ?? null) : context.queuedPolicy,
      queued: false,
      queuedPolicy: null,
      response: undefined,
      push: undefined,
      result: undefined,
    })),
    queue: assign(({ context, event }) => ({
      queued: true,
      // Coalesced SYNCs keep the most patient policy asked for.
      queuedPolicy:
        event.type === 'SYNC' && event.policy !== undefined && (context.queuedPolicy === null || event.policy.maxAttempts > context.queuedPolicy.maxAttempts)
          ? event.policy
          : context.queuedPolicy,
    })),
    succeed: assign(({ context }) => ({
      syncCount: context.syncCount + 1,
      lastOutcome: { round: context.round, ok: true, result: context.result, attempts: context.attempt },
    })),
    fail: assign(({ context, event }) => ({
      errorCount: context.errorCount + 1,
      lastOutcome: {
        round: context.round,
        ok: false,
        error: event.type === 'DEADLINE' ? { code: 'DEADLINE_EXCEEDED', message: 'retry deadline passed' } : errorInfo((event as { error?: unknown }).error),
        attempts: context.attempt,
      },
    })),
  },
}).createMachine({
  id: 'crdtSync',
  context: ({ input }) => ({
    peerId: input.peerId,
    round: 0,
    queued: false,
    queuedPolicy: null,
    policy: null,
    attempt: 1,
    response: undefined,
    push: undefined,
    result: undefined,
    lastOutcome: null,
    syncCount: 0,
    errorCount: 0,
  }),
  initial: 'idle',
  states: {
    idle: {
      always: { guard: 'queued', target: 'requesting', actions: 'startRound' },
      on: { SYNC: { target: 'requesting', actions: 'startRound' } },
    },
    requesting: {
      invoke: {
        id: 'exchange',
        src: 'exchange',
        input: ({ context }) => ({ peerId: context.peerId, attempt: context.attempt }),
        onDone: { target: 'applying', actions: assign({ response: ({ event }) => event.output }) },
        onError: [
          { guard: not('isRetryable'), target: 'idle', actions: 'fail' },
          { guard: 'canRetry', target: 'backoff' },
          { target: 'idle', actions: 'fail' },
        ],
      },
    },
    applying: {
      invoke: {
        id: 'apply',
        src: 'apply',
        input: ({ context }) => ({ peerId: context.peerId, response: context.response }),
        onDone: [
          {
            guard: 'needsPush',
            target: 'pushing',
            actions: assign({ push: ({ event }) => event.output.push, result: ({ event }) => event.output.result, response: undefined }),
          },
          { target: 'idle', actions: [assign({ result: ({ event }) => event.output.result, response: undefined }), 'succeed'] },
        ],
        // A response that fails validation is the peer's fault and will not improve by asking again.
        onError: { target: 'idle', actions: 'fail' },
      },
    },
    pushing: {
      invoke: {
        id: 'push',
        src: 'push',
        input: ({ context }) => ({ peerId: context.peerId, push: context.push }),
        onDone: { target: 'idle', actions: [assign({ push: undefined }), 'succeed'] },
        onError: [
          { guard: not('isRetryable'), target: 'idle', actions: 'fail' },
          { guard: 'canRetry', target: 'backoff' },
          { target: 'idle', actions: 'fail' },
        ],
      },
    },
    backoff: {
      invoke: {
        id: 'backoff',
        src: 'backoffTimer',
        input: ({ context }) => ({ attempt: context.attempt, policy: context.policy! }),
      },
      on: {
        RETRY: { target: 'requesting', actions: assign({ attempt: ({ context }) => context.attempt + 1 }) },
        DEADLINE: { target: 'idle', actions: 'fail' },
      },
    },
  },
  on: {
    SYNC: { actions: 'queue' },
  },
})
