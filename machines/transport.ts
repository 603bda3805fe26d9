// Transport coordination (pattern 5): the lifecycle of one logical channel to a peer within a
// context. Channels are cheap and many; the connection under them is pooled by the runtime.
//
//   Idle ──CONNECT──▶ Connecting ──CONNECTED──▶ Open ──BUDGET_SPENT / overrun / EPOCH_BUMP / CLOSE──▶ Draining ──▶ Closed
//                      │ dialing ◀─RETRY── backoff                                                            ▲
//                      └─CONNECT_FAILED (no address left, rounds exhausted, or permanent)──▶ Failed            │
//   STALE / REMOTE_CLOSED close at once from any live state ────────────────────────────────────────────────────┘
//
// The machine is pure: time reaches it as data (`at` on SEND) and through injected actors
// (`connector`, `backoffTimer`, `drainTimer`), so it replays the same on a virtual clock.
//
// Budget: a flow budget of bytes and/or messages per window. A fail-closed send that would
// overrun it is rejected (the sender gets BudgetExhausted) and the channel drains and closes: a
// peer that overruns its allowance loses the channel. A best-effort send that would overrun is
// rejected alone and the channel stays open (shedding optional traffic must not kill a channel).
//
// Epochs only move forward. A newer epoch drains the channel (it belongs to the old epoch). An
// EPOCH_BUMP to an older epoch is a regression: the channel fails with Error(EpochRegression) and
// keeps its epoch. The runtime never sends one on purpose (it rejects stale epochs before they
// reach a channel), so reaching this state means a bug above, which must not go unnoticed.
import { assign, fromCallback, setup } from 'xstate'
import { z } from 'zod'
import { backoffPolicySchema, type ErrorInfo } from './kernel.js'

export const flowBudgetSchema = z
  .object({
    maxBytes: z.number().int().positive().optional(),
    maxMessages: z.number().int().positive().optional(),
    windowMs: z.number().int().positive(),
  })
  .strict()
  .refine((b) => b.maxBytes !== undefined || b.maxMessages !== undefined, 'a flow budget limits bytes, messages or both')
export type FlowBudget = z.infer<typeof flowBudgetSchema>

export const reconnectPolicySchema = backoffPolicySchema
export type ReconnectPolicy = z.infer<typeof reconnectPolicySchema>

export const transportInputSchema = z
  .object({
    channelId: z.string().min(1).max(128),
    peerId: z.string().min(1),
    contextId: z.string().min(1).max(256),
    epoch: z.number().int().nonnegative(),
    /** where the peer can be dialed, in failover order; empty: rely on an existing connection */
    addresses: z.array(z.string().min(1)).default([]),
    budget: flowBudgetSchema.optional(),
    /** rounds over all addresses before the channel fails; backoff between rounds */
    reconnect: reconnectPolicySchema,
    /** how long Draining waits for in-flight sends before closing anyway */
    drainTimeoutMs: z.number().int().positive(),
  })
  .strict()
export type TransportInput = z.input<typeof transportInputSchema>

export type ChannelStateName = 'Idle' | 'Connecting' | 'Open' | 'Draining' | 'Closed' | 'Failed'

export type CloseReason = 'local' | 'budget' | 'epoch' | 'stale' | 'remote' | 'drain-timeout'

/** How a send is guarded: fail-closed sends tear the channel down on overrun, best-effort ones are shed alone. */
export type GuardMode = 'fail-closed' | 'best-effort'

export type SendVerdict = { key: string; accepted: true } | { key: string; accepted: false; code: 'BUDGET_EXHAUSTED' | 'CHANNEL_CLOSED' }

export type TransportEvent =
  | { type: 'CONNECT' }
  | { type: 'CONNECTED' }
  | { type: 'CONNECT_FAILED'; error: ErrorInfo; retryable?: boolean }
  | { type: 'RETRY' }
  | { type: 'SEND'; key: string; bytes: number; at: number; mode?: GuardMode }
  | { type: 'ACK'; key: string }
  | { type: 'SEND_FAILED'; key: string }
  | { type: 'BUDGET_SPENT' }
  | { type: 'EPOCH_BUMP'; epoch: number }
  | { type: 'CLOSE' }
  | { type: 'STALE' }
  | { type: 'REMOTE_CLOSED' }
  | { type: 'DRAIN_TIMEOUT' }

export type ConnectorInput = { peerId: string; channelId: string; contextId: string; epoch: number; address: string | undefined; addressIndex: number; round: number }
export type BackoffTimerInput = { attempt: number; policy: ReconnectPolicy }
export type DrainTimerInput = { ms: number }

/** What the channel was opened with; never changes. */
export type ChannelSettings = {
  channelId: string
  peerId: string
  contextId: string
  addresses: string[]
  reconnect: ReconnectPolicy
  drainTimeoutMs: number
  budget: FlowBudget | undefined
}

export type ChannelCounts = { inflight: number; sent: number; acked: number; failed: number; rejected: number }

// Few top-level keys on purpose: XState copies the context on every assign, and V8 copies an
// object of a dozen keys about ten times faster than one of twenty (it stays in fast mode).
export type TransportContext = {
  settings: ChannelSettings
  epoch: number
  /** failover position: index into settings.addresses, and the 1-based pass over the list */
  dial: { addressIndex: number; round: number }
  window: { startedAt: number; bytes: number; messages: number }
  counts: ChannelCounts
  /** the verdict on the latest SEND, read by the runtime right after sending it */
  lastSend: SendVerdict | null
  closeReason: CloseReason | null
  error: ErrorInfo | null
  ended: 'Closed' | 'Failed' | null
}

export type TransportOutput = { state: 'Closed' | 'Failed'; closeReason: CloseReason | null; error: ErrorInfo | null; sent: number; acked: number; failed: number }

type SendEvent = Extract<TransportEvent, { type: 'SEND' }>

/** The window the send falls in: a new one starts once `windowMs` has passed since the last start. */
function windowAt(context: TransportContext, at: number): TransportContext['window'] {
  const budget = context.settings.budget
  if (budget === undefined || at - context.window.startedAt < budget.windowMs) return context.window
  return { startedAt: at, bytes: 0, messages: 0 }
}

function fits(context: TransportContext, event: SendEvent): boolean {
  const budget = context.settings.budget
  if (budget === undefined) return true
  const window = windowAt(context, event.at)
  if (budget.maxBytes !== undefined && window.bytes + event.bytes > budget.maxBytes) return false
  if (budget.maxMessages !== undefined && window.messages + 1 > budget.maxMessages) return false
  return true
}

const errorOf = (code: string, message: string): ErrorInfo => ({ code, message })

export const transportMachine = setup({
  types: {
    input: {} as TransportInput,
    context: {} as TransportContext,
    events: {} as TransportEvent,
    output: {} as TransportOutput,
  },
  actors: {
    // Placeholders: the runtime provides the real ones over the network and clock effects.
    connector: fromCallback<TransportEvent, ConnectorInput>(({ sendBack }) => {
      sendBack({ type: 'CONNECT_FAILED', error: errorOf('CONFIG_INVALID', 'connector actor not provided'), retryable: false })
    }),
    backoffTimer: fromCallback<TransportEvent, BackoffTimerInput>(({ sendBack }) => {
      sendBack({ type: 'RETRY' })
    }),
    drainTimer: fromCallback<TransportEvent, DrainTimerInput>(() => undefined),
  },
  guards: {
    permanent: ({ event }) => event.type === 'CONNECT_FAILED' && event.retryable === false,
    hasNextAddress: ({ context }) => context.dial.addressIndex + 1 < context.settings.addresses.length,
    roundsLeft: ({ context }) => context.dial.round < context.settings.reconnect.maxAttempts,
    fitsBudget: ({ context, event }) => event.type === 'SEND' && fits(context, event),
    bestEffort: ({ event }) => event.type === 'SEND' && event.mode === 'best-effort',
    hasInflight: ({ context }) => context.counts.inflight > 0,
    nothingInflight: ({ context }) => context.counts.inflight === 0,
    newerEpoch: ({ context, event }) => event.type === 'EPOCH_BUMP' && event.epoch > context.epoch,
    olderEpoch: ({ context, event }) => event.type === 'EPOCH_BUMP' && event.epoch < context.epoch,
  },
  actions: {
    charge: assign(({ context, event }) => {
      const e = event as SendEvent
      const window = windowAt(context, e.at)
      return {
        window: { startedAt: window.startedAt, bytes: window.bytes + e.bytes, messages: window.messages + 1 },
        counts: { ...context.counts, inflight: context.counts.inflight + 1, sent: context.counts.sent + 1 },
        lastSend: { key: e.key, accepted: true } as SendVerdict,
      }
    }),
    rejectOverrun: assign(({ context, event }) => ({
      counts: { ...context.counts, rejected: context.counts.rejected + 1 },
      lastSend: { key: (event as SendEvent).key, accepted: false, code: 'BUDGET_EXHAUSTED' } as SendVerdict,
    })),
    rejectClosed: assign(({ context, event }) => ({
      counts: { ...context.counts, rejected: context.counts.rejected + 1 },
      lastSend: {
        key: (event as SendEvent).key,
        accepted: false,
        // A channel closed for its budget keeps answering BudgetExhausted: the sender learns why.
        code: context.closeReason === 'budget' ? 'BUDGET_EXHAUSTED' : 'CHANNEL_CLOSED',
      } as SendVerdict,
    })),
    settleAck: assign(({ context }) => ({ counts: { ...context.counts, inflight: context.counts.inflight - 1, acked: context.counts.acked + 1 } })),
    settleFailure: assign(({ context }) => ({ counts: { ...context.counts, inflight: context.counts.inflight - 1, failed: context.counts.failed + 1 } })),
    nextAddress: assign(({ context }) => ({ dial: { addressIndex: context.dial.addressIndex + 1, round: context.dial.round } })),
    nextRound: assign(({ context }) => ({ dial: { addressIndex: 0, round: context.dial.round + 1 } })),
    adoptEpoch: assign(({ context, event }) => ({ epoch: Math.max(context.epoch, (event as { epoch: number }).epoch), closeReason: 'epoch' as const })),
    markRegression: assign(({ context, event }) => ({
      error: errorOf('EPOCH_REGRESSION', `epoch ${(event as { epoch: number }).epoch} is older than the channel's ${context.epoch}`),
    })),
    markConnectFailed: assign(({ event }) => ({ error: (event as Extract<TransportEvent, { type: 'CONNECT_FAILED' }>).error })),
    closedFor: assign((_, params: { reason: CloseReason }) => ({ closeReason: params.reason })),
  },
}).createMachine({
  id: 'transport',
  context: ({ input }) => {
    const parsed = transportInputSchema.parse(input)
    return {
      settings: {
        channelId: parsed.channelId,
        peerId: parsed.peerId,
        contextId: parsed.contextId,
        addresses: parsed.addresses,
        reconnect: parsed.reconnect,
        drainTimeoutMs: parsed.drainTimeoutMs,
        budget: parsed.budget,
      },
      epoch: parsed.epoch,
      dial: { addressIndex: 0, round: 1 },
      window: { startedAt: Number.NEGATIVE_INFINITY, bytes: 0, messages: 0 },
      counts: { inflight: 0, sent: 0, acked: 0, failed: 0, rejected: 0 },
      lastSend: null,
      closeReason: null,
      error: null,
      ended: null,
    }
  },
  initial: 'Idle',
  states: {
    Idle: {
      on: {
        CONNECT: 'Connecting',
        CLOSE: { target: 'Closed', actions: { type: 'closedFor', params: { reason: 'local' } } },
        STALE: { target: 'Closed', actions: { type: 'closedFor', params: { reason: 'stale' } } },
        EPOCH_BUMP: [
          { guard: 'newerEpoch', target: 'Closed', actions: 'adoptEpoch' },
          { guard: 'olderEpoch', target: 'Failed', actions: 'markRegression' },
        ],
      },
    },
    Connecting: {
      initial: 'dialing',
      states: {
        dialing: {
          invoke: {
            id: 'connector',
            src: 'connector',
            input: ({ context }) => ({
              peerId: context.settings.peerId,
              channelId: context.settings.channelId,
              contextId: context.settings.contextId,
              epoch: context.epoch,
              address: context.settings.addresses[context.dial.addressIndex],
              addressIndex: context.dial.addressIndex,
              round: context.dial.round,
            }),
          },
          on: {
            CONNECT_FAILED: [
              { guard: 'permanent', target: '#transport.Failed', actions: 'markConnectFailed' },
              // Failover: the next address is tried at once; backoff only between full rounds.
              { guard: 'hasNextAddress', target: 'dialing', reenter: true, actions: 'nextAddress' },
              { guard: 'roundsLeft', target: 'backoff', actions: 'markConnectFailed' },
              { target: '#transport.Failed', actions: 'markConnectFailed' },
            ],
          },
        },
        backoff: {
          invoke: { id: 'backoffTimer', src: 'backoffTimer', input: ({ context }) => ({ attempt: context.dial.round, policy: context.settings.reconnect }) },
          on: { RETRY: { target: 'dialing', actions: 'nextRound' } },
        },
      },
      on: {
        CONNECTED: { target: 'Open', actions: assign({ error: null }) },
        CLOSE: { target: 'Closed', actions: { type: 'closedFor', params: { reason: 'local' } } },
        STALE: { target: 'Closed', actions: { type: 'closedFor', params: { reason: 'stale' } } },
        REMOTE_CLOSED: { target: 'Closed', actions: { type: 'closedFor', params: { reason: 'remote' } } },
        EPOCH_BUMP: [
          { guard: 'newerEpoch', target: 'Closed', actions: 'adoptEpoch' },
          { guard: 'olderEpoch', target: 'Failed', actions: 'markRegression' },
        ],
      },
    },
    Open: {
      on: {
        SEND: [
          { guard: 'fitsBudget', actions: 'charge' },
          { guard: 'bestEffort', actions: 'rejectOverrun' },
          { target: 'Draining', actions: ['rejectOverrun', { type: 'closedFor', params: { reason: 'budget' } }] },
        ],
        ACK: { guard: 'hasInflight', actions: 'settleAck' },
        SEND_FAILED: { guard: 'hasInflight', actions: 'settleFailure' },
        BUDGET_SPENT: { target: 'Draining', actions: { type: 'closedFor', params: { reason: 'budget' } } },
        CLOSE: { target: 'Draining', actions: { type: 'closedFor', params: { reason: 'local' } } },
        STALE: { target: 'Closed', actions: { type: 'closedFor', params: { reason: 'stale' } } },
        REMOTE_CLOSED: { target: 'Closed', actions: { type: 'closedFor', params: { reason: 'remote' } } },
        EPOCH_BUMP: [
          { guard: 'newerEpoch', target: 'Draining', actions: 'adoptEpoch' },
          { guard: 'olderEpoch', target: 'Failed', actions: 'markRegression' },
        ],
      },
    },
    Draining: {
      // In-flight sends finish (acked or failed); nothing new is accepted.
      always: { guard: 'nothingInflight', target: 'Closed' },
      invoke: { id: 'drainTimer', src: 'drainTimer', input: ({ context }) => ({ ms: context.settings.drainTimeoutMs }) },
      on: {
        SEND: { actions: 'rejectClosed' },
        ACK: { guard: 'hasInflight', actions: 'settleAck' },
        SEND_FAILED: { guard: 'hasInflight', actions: 'settleFailure' },
        DRAIN_TIMEOUT: { target: 'Closed', actions: { type: 'closedFor', params: { reason: 'drain-timeout' } } },
        STALE: { target: 'Closed', actions: { type: 'closedFor', params: { reason: 'stale' } } },
        REMOTE_CLOSED: { target: 'Closed', actions: { type: 'closedFor', params: { reason: 'remote' } } },
        // A newer epoch while draining only moves the epoch on; the drain is already under way.
        EPOCH_BUMP: [
          { guard: 'newerEpoch', actions: assign({ epoch: ({ event }) => event.epoch }) },
          { guard: 'olderEpoch', target: 'Failed', actions: 'markRegression' },
        ],
      },
    },
    Closed: { type: 'final', entry: assign({ ended: 'Closed' as const }) },
    Failed: { type: 'final', entry: assign({ ended: 'Failed' as const }) },
  },
  output: ({ context }) => ({
    state: context.ended ?? 'Closed',
    closeReason: context.closeReason,
    error: context.error,
    sent: context.counts.sent,
    acked: context.counts.acked,
    failed: context.counts.failed,
  }),
})
