// CRDT sync with one peer (pattern 1): a long-lived actor per peer.
//
//   idle ──SYNC──▶ pulling ──(peer lacks something)──▶ pushing ──▶ idle
//                     │                                   │
//                     └──────────── ERROR ──▶ backoff ──RETRY──▶ pulling
//                                 (or idle, failed, when not retryable / out of attempts)
//
// pulling: send our versions, receive what we lack, and join it in (validated first, its write
// queued), working out what the peer lacks. pushing: send that. A SYNC that arrives while a round
// runs is queued and coalesced: one more round starts when this one ends, so a caller's change
// made during a round is never missed. Rounds are numbered; `lastOutcome.round` tells a waiting
// caller that its round (or a later one) has finished.
//
// The effects live in one injected callback actor, the sync worker, invoked for the machine's
// whole life: each step state tells it what to do (PULL / PUSH) on entry and waits for its DONE
// or ERROR. Starting an actor per step cost more than the step's own work on a fast link, and the
// worker keeps the step data (the push plan) itself, so the context holds only what the guards
// read plus the outcome. Receiving and joining are one step: joining is synchronous, and as a
// step of its own it cost two more deliveries per round than the join itself. An answer that
// arrived but was refused (it failed validation) comes back as ERROR with `rejected`: it is the
// peer's fault and will not improve by asking again. Backoff is an injected timer actor
// (clock + random): the machine itself never touches time or randomness.

import { assign, fromCallback, not, sendTo, setup } from 'xstate'
import { type RetryEvent } from './retry.js'
import { defaultIsRetryable, errorInfo, type BackoffPolicy, type BackoffTimerInput, type ErrorInfo } from './kernel.js'

export interface CrdtSyncInput {
  peerId: string
}

export interface SyncWorkerInput {
  peerId: string
}

/** What the machine asks its worker to do; one step at a time, each answered by DONE or ERROR. */
export type SyncWorkerCommand = { type: 'PULL'; attempt: number } | { type: 'PUSH' }

/**
 * A step's answer. After PULL, `push` says the peer lacks something; the step that ends a round
 * (PULL without a push, or PUSH) carries the round's `result`. An ERROR with `rejected` is an
 * answer that arrived and was refused (it failed validation): never retried.
 */
export type SyncStepEvent = { type: 'DONE'; push?: boolean; result?: unknown } | { type: 'ERROR'; error: unknown; rejected?: boolean }

export type CrdtSyncEvent = { type: 'SYNC'; policy?: BackoffPolicy } | SyncStepEvent | RetryEvent

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
  lastOutcome: SyncOutcome | null
  syncCount: number
  errorCount: number
}

/** A round without a retry policy makes one attempt. */
const attemptsAllowed = (context: CrdtSyncContext): number => context.policy?.maxAttempts ?? 1

const WORKER = 'worker'

export const crdtSyncMachine = setup({
  types: {
    input: {} as CrdtSyncInput,
    context: {} as CrdtSyncContext,
    events: {} as CrdtSyncEvent,
  },
  actors: {
    syncWorker: fromCallback<SyncWorkerCommand, SyncWorkerInput>(({ sendBack, receive }) => {
      receive(() => sendBack({ type: 'ERROR', error: new Error('sync worker not provided') }))
    }),
    backoffTimer: fromCallback<RetryEvent, BackoffTimerInput>(({ sendBack }) => {
      sendBack({ type: 'RETRY' })
    }),
  },
  guards: {
    isRetryable: ({ event }) => defaultIsRetryable((event as { error?: unknown }).error),
    rejected: ({ event }) => (event as { rejected?: boolean }).rejected === true,
    canRetry: ({ context }) => context.attempt < attemptsAllowed(context) && context.policy !== null,
    queued: ({ context }) => context.queued,
    needsPush: ({ event }) => (event as { push?: boolean }).push === true,
  },
  actions: {
    startRound: assign(({ context, event }) => ({
      round: context.round + 1,
      attempt: 1,
      policy: event.type === 'SYNC' ? (event.policy ?? null) : context.queuedPolicy,
      queued: false,
      queuedPolicy: null,
    })),
    queue: assign(({ context, event }) => ({
      queued: true,
      // Coalesced SYNCs keep the most patient policy asked for.
      queuedPolicy:
        event.type === 'SYNC' && event.policy !== undefined && (context.queuedPolicy === null || event.policy.maxAttempts > context.queuedPolicy.maxAttempts)
          ? event.policy
          : context.queuedPolicy,
    })),
    succeed: assign(({ context, event }) => ({
      syncCount: context.syncCount + 1,
      lastOutcome: { round: context.round, ok: true, result: (event as { result?: unknown }).result, attempts: context.attempt },
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
    pull: sendTo(WORKER, ({ context }) => ({ type: 'PULL', attempt: context.attempt })),
    push: sendTo(WORKER, { type: 'PUSH' }),
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
    lastOutcome: null,
    syncCount: 0,
    errorCount: 0,
  }),
  invoke: {
    id: WORKER,
    src: 'syncWorker',
    input: ({ context }) => ({ peerId: context.peerId }),
  },
  initial: 'idle',
  states: {
    idle: {
      always: { guard: 'queued', target: 'pulling', actions: 'startRound' },
      on: { SYNC: { target: 'pulling', actions: 'startRound' } },
    },
    pulling: {
      entry: 'pull',
      on: {
        DONE: [
          { guard: 'needsPush', target: 'pushing' },
          { target: 'idle', actions: 'succeed' },
        ],
        ERROR: [
          { guard: 'rejected', target: 'idle', actions: 'fail' },
          { guard: not('isRetryable'), target: 'idle', actions: 'fail' },
          { guard: 'canRetry', target: 'backoff' },
          { target: 'idle', actions: 'fail' },
        ],
      },
    },
    pushing: {
      entry: 'push',
      on: {
        DONE: { target: 'idle', actions: 'succeed' },
        ERROR: [
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
        RETRY: { target: 'pulling', actions: assign({ attempt: ({ context }) => context.attempt + 1 }) },
        DEADLINE: { target: 'idle', actions: 'fail' },
      },
    },
  },
  on: {
    SYNC: { actions: 'queue' },
  },
})
