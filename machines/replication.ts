// Replication (pattern 3): one replication of a set of keys to n peers under a policy, as a
// k-of-n acknowledgement count with a deadline.
//
//   replicating ──acks ≥ required──▶ satisfied ──every peer settled──▶ settled
//        │  acks + pending < required ──▶ failed          │ DEADLINE (the rest time out) ──▶ settled
//        └─ DEADLINE ──▶ failed
//   CANCEL from any live state ──▶ cancelled
//
// Policies are values of `required`: all-ack is n, quorum is k, async is 0 (satisfied at once;
// sending goes on in the background and whatever does not arrive is left for repair). One
// `peerSender` child per peer (spawned on entry, stopped when the machine ends) does the sending
// with its own retries and reports PEER_ACKED or PEER_FAILED; the deadline is an injected timer.
// Reaching `satisfied` is when the caller gets its answer; `settled` is when every peer's fate is
// known. Pure: no clock, no network, no randomness.
import { assign, enqueueActions, fromCallback, setup } from 'xstate'
import { z } from 'zod'
import type { DeadlineEvent, DeadlineTimerInput, ErrorInfo } from './kernel.js'

export const replicationPolicySchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('all') }).strict(),
  z.object({ kind: z.literal('quorum'), k: z.number().int().min(1) }).strict(),
  z.object({ kind: z.literal('async') }).strict(),
])
export type ReplicationPolicy = z.infer<typeof replicationPolicySchema>

export const replicationInputSchema = z
  .object({
    peers: z.array(z.string().min(1)).refine((ps) => new Set(ps).size === ps.length, 'peers must be distinct'),
    required: z.number().int().nonnegative(),
    deadlineAt: z.number().finite(),
  })
  .strict()
  .refine((i) => i.required <= i.peers.length, { message: 'cannot require more acks than peers', path: ['required'] })
export type ReplicationInput = z.infer<typeof replicationInputSchema>

/** Acks a policy needs from `n` peers (quorum k must not exceed n). */
export function requiredAcks(policy: ReplicationPolicy, n: number): number {
  switch (policy.kind) {
    case 'all':
      return n
    case 'quorum':
      return policy.k
    case 'async':
      return 0
  }
}

/** abandoned: still sending when the replication failed for want of acks from the others */
export type PeerStatus = 'pending' | 'acked' | 'failed' | 'timedOut' | 'abandoned'
export interface PeerResult {
  status: PeerStatus
  attempts: number
  error?: ErrorInfo
}

export type PeerSenderInput = { peer: string; deadlineAt: number }

export type ReplicationEvent =
  | { type: 'PEER_ACKED'; peer: string; attempts: number }
  | { type: 'PEER_FAILED'; peer: string; attempts: number; error: ErrorInfo }
  | DeadlineEvent
  | { type: 'CANCEL'; reason?: string }

export type ReplicationStatus = 'succeeded' | 'failed' | 'cancelled'
export interface ReplicationOutput {
  status: ReplicationStatus
  required: number
  acked: string[]
  peers: Record<string, PeerResult>
  error?: ErrorInfo
}

type Context = ReplicationInput & { results: Record<string, PeerResult>; error: ErrorInfo | null; status: ReplicationStatus | null }

const count = (c: Context, status: PeerStatus): number => Object.values(c.results).filter((r) => r.status === status).length

/** Why a quorum became unreachable: the peers' common error code, or PEER_UNREACHABLE when they differ. */
function unreachable(c: Context): ErrorInfo {
  const codes = new Set(
    Object.values(c.results).flatMap((r) => (r.status === 'timedOut' ? ['DEADLINE_EXCEEDED'] : r.status === 'failed' && r.error ? [r.error.code] : [])),
  )
  const code = codes.size === 1 ? [...codes][0]! : 'PEER_UNREACHABLE'
  return { code, message: `${count(c, 'acked')} of ${c.required} required acks, and only ${count(c, 'pending')} peers still pending` }
}

const markPending = (c: Context, status: PeerStatus): Record<string, PeerResult> =>
  Object.fromEntries(Object.entries(c.results).map(([peer, r]) => [peer, r.status === 'pending' ? { ...r, status } : r]))

export const replicationMachine = setup({
  types: {
    input: {} as ReplicationInput,
    context: {} as Context,
    events: {} as ReplicationEvent,
    output: {} as ReplicationOutput,
  },
  actors: {
    peerSender: fromCallback<ReplicationEvent, PeerSenderInput>(({ input, sendBack }) => {
      sendBack({ type: 'PEER_FAILED', peer: input.peer, attempts: 0, error: { code: 'CONFIG_INVALID', message: 'peerSender not provided' } })
    }),
    deadlineTimer: fromCallback<DeadlineEvent, DeadlineTimerInput>(() => undefined),
  },
  guards: {
    quorumMet: ({ context }) => count(context, 'acked') >= context.required,
    quorumImpossible: ({ context }) => count(context, 'acked') + count(context, 'pending') < context.required,
    allSettled: ({ context }) => count(context, 'pending') === 0,
  },
  actions: {
    spawnSenders: enqueueActions(({ context, enqueue }) => {
      context.peers.forEach((peer, i) => enqueue.spawnChild('peerSender', { id: `peer-${i}`, input: { peer, deadlineAt: context.deadlineAt } }))
    }),
    recordAck: assign(({ context, event }) => {
      if (event.type !== 'PEER_ACKED' || context.results[event.peer]?.status !== 'pending') return {}
      return { results: { ...context.results, [event.peer]: { status: 'acked' as const, attempts: event.attempts } } }
    }),
    recordFailure: assign(({ context, event }) => {
      if (event.type !== 'PEER_FAILED' || context.results[event.peer]?.status !== 'pending') return {}
      // A sender that gave up because the deadline came is a peer that did not answer in time.
      const status = event.error.code === 'DEADLINE_EXCEEDED' ? ('timedOut' as const) : ('failed' as const)
      return { results: { ...context.results, [event.peer]: { status, attempts: event.attempts, error: event.error } } }
    }),
    markUnreachable: assign(({ context }) => ({ status: 'failed' as const, error: unreachable(context), results: markPending(context, 'abandoned') })),
    markDeadline: assign(({ context }) => ({
      status: 'failed' as const,
      results: markPending(context, 'timedOut'),
      error: { code: 'DEADLINE_EXCEEDED', message: `${count(context, 'acked')} of ${context.required} required acks by the deadline` },
    })),
    markSettled: assign({ status: 'succeeded' as const }),
    markLate: assign(({ context }) => ({ status: 'succeeded' as const, results: markPending(context, 'timedOut') })),
    markCancelled: assign(({ event }) => ({
      status: 'cancelled' as const,
      error: { code: 'CANCELLED', message: (event.type === 'CANCEL' ? event.reason : undefined) ?? 'replication cancelled' },
    })),
  },
}).createMachine({
  id: 'replication',
  context: ({ input }) => ({
    ...input,
    results: Object.fromEntries(input.peers.map((p) => [p, { status: 'pending' as const, attempts: 0 }])),
    error: null,
    status: null,
  }),
  invoke: { id: 'deadline', src: 'deadlineTimer', input: ({ context }) => ({ deadlineAt: context.deadlineAt }) },
  entry: 'spawnSenders',
  on: {
    PEER_ACKED: { actions: 'recordAck' },
    PEER_FAILED: { actions: 'recordFailure' },
    CANCEL: { target: '.cancelled', actions: 'markCancelled' },
  },
  initial: 'replicating',
  states: {
    replicating: {
      always: [
        { guard: 'quorumMet', target: 'satisfied' },
        { guard: 'quorumImpossible', target: 'failed', actions: 'markUnreachable' },
      ],
      on: { DEADLINE: { target: 'failed', actions: 'markDeadline' } },
    },
    satisfied: {
      always: { guard: 'allSettled', target: 'settled', actions: 'markSettled' },
      on: { DEADLINE: { target: 'settled', actions: 'markLate' } },
    },
    settled: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
  },
  output: ({ context }) => {
    const out: ReplicationOutput = {
      status: context.status ?? 'failed',
      required: context.required,
      acked: Object.entries(context.results).flatMap(([peer, r]) => (r.status === 'acked' ? [peer] : [])),
      peers: context.results,
    }
    if (context.error) out.error = context.error
    return out
  },
})
