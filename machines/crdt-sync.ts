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
// The effects are two injected actions, `pull` and `push`: each step state runs one on entry, and
// the runner (the coordinator) answers it later with DONE or ERROR. They were actors once, one per
// step, then one long-lived worker told what to do by event; but every event an actor handles
// cost 15-45 µs in a sync round on a busy runtime (xstate's paths are shared by every machine
// there), more than a step's own work on a fast link, so a round is now the SYNC that starts it and the
// answer that ends it. The runner keeps the step data (the pulled answer, the push plan), so the
// context holds only what the guards read plus the outcome. Receiving and joining are one step:
// joining is synchronous, and as a step of its own it cost two more events per round than the join
// itself. An answer that arrived but was refused (it failed validation) comes back as ERROR with
// `rejected`: it is the peer's fault and will not improve by asking again. Backoff is an injected
// timer actor (clock + random): the machine itself never touches time or randomness.

import { assign, fromCallback, not, setup } from 'xstate'
import { type RetryEvent } from './retry.js'
import { defaultIsRetryable, errorInfo, type BackoffPolicy, type BackoffTimerInput, type ErrorInfo } from './kernel.js'

export interface CrdtSyncInput {
  peerId: string
}

/**
 * A step's answer, sent by the runner. After `pull`, `push` says the peer lacks something; the step
 * that ends a round (`pull` without a push, or `push`) carries the round's `result`. An ERROR with
 * `rejected` is an answer that arrived and was refused (it failed validation): never retried.
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

export const crdtSyncMachine = setup({
  types: {
    input: {} as CrdtSyncInput,
    context: {} as CrdtSyncContext,
    events: {} as CrdtSyncEvent,
  },
  actors: {
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
    // The steps' effects, provided by the runner; each is answered with DONE or ERROR. Inert here:
    // a machine nobody runs waits in its step.
    pull: () => undefined,
    push: () => undefined,
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
