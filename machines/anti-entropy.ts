// Anti-entropy (pattern 2): periodic rounds that find and repair differences with peers.
//
//   idle ──TICK (interval timer) / RUN_NOW──▶ selecting ──▶ exchanging ──▶ reconciling ──▶ nextPeer
//   selecting ──no eligible peer──▶ idle
//   exchanging / reconciling ──error──▶ failed ──retry left──▶ backoff ──RETRY──▶ exchanging
//                                         └──no retry left──▶ nextPeer
//   nextPeer ──more peers──▶ exchanging;  ──all done──▶ idle (or done, after maxRounds)
//
// exchanging: a compact collection digest (bloom filter or Merkle tree over document version
// hashes) goes to the peer; the answer says which documents differ. reconciling: only those
// are transferred, in batches. A failed peer is retried after a backoff (the retry policy's
// attempts), then skipped. `maxRounds` ends the actor after that many rounds.
//
// Effects are injected: `intervalTimer` and `backoffTimer` (the clock), `selectPeers`,
// `exchangeDigest`, `reconcile` (router, coordinator). Progress goes out through the `report`
// action, which the runtime binds to its stream.

import { assign, fromCallback, fromPromise, setup } from 'xstate'
import { z } from 'zod'
import { type RetryEvent } from './retry.js'
import { backoffPolicySchema, defaultIsRetryable, errorInfo, type BackoffPolicy, type BackoffTimerInput } from './kernel.js'

export const peerSelectionSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('random'), k: z.number().int().min(1).max(1024) }).strict(),
  z.object({ kind: z.literal('round-robin') }).strict(),
  /** listed peers first (in list order), then the rest by score (success rate, latency); k per round */
  z
    .object({ kind: z.literal('priority'), peers: z.array(z.string().min(1).max(256)).max(4096).optional(), k: z.number().int().min(1).max(1024).default(1) })
    .strict(),
])

export const antiEntropyConfigSchema = z
  .object({
    /** ms between the end of a round and the start of the next */
    syncInterval: z
      .number()
      .int()
      .positive()
      .max(24 * 3600_000),
    peerSelection: peerSelectionSchema,
    /** merkle: trees kept current per write, a round costs O(differing · log n); bloom: rebuilt (salted) every round, O(n) */
    digest: z.enum(['bloom', 'merkle']).default('merkle'),
    /** minimum bloom filter size in bits; grows with the collection to keep ~1% false positives */
    bloomFilterSize: z
      .number()
      .int()
      .min(64)
      .max(32 * 1024 * 1024 * 8)
      .default(8192),
    /** stop after this many rounds (default: run until stopped) */
    maxRounds: z.number().int().positive().optional(),
    /** documents per reconcile request */
    batchSize: z.number().int().min(1).max(100_000).default(500),
    /** largest digest accepted from a peer, bytes */
    maxDigestBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(4 * 1024 * 1024),
    /** per-peer retries within a round */
    retry: backoffPolicySchema.default({ maxAttempts: 2, initialDelayMs: 50, maxDelayMs: 1_000, multiplier: 2, jitter: 'equal' }),
    requestTimeoutMs: z.number().int().positive().max(600_000).default(5_000),
  })
  .strict()

export type AntiEntropyConfigInput = z.input<typeof antiEntropyConfigSchema>
export type AntiEntropyConfig = z.output<typeof antiEntropyConfigSchema>
export type PeerSelection = AntiEntropyConfig['peerSelection']

/** What a digest exchange found, from the initiator's side. */
export type DigestStatus = 'equal' | 'local-behind' | 'remote-behind' | 'diverged'

export interface DigestOutcome {
  status: DigestStatus
  /** documents that differ (either side lacks or holds another version) */
  differing: string[]
  bytes: number
}

export interface ReconcileOutcome {
  pulled: number
  pushed: number
  bytes: number
}

export type AntiEntropyProgress =
  | { type: 'Started'; round: number; peers: string[] }
  | { type: 'DigestExchanged'; round: number; peerId: string; status: DigestStatus; differing: number; bytes: number }
  | { type: 'Pulling'; round: number; peerId: string; docs: number }
  | { type: 'Pushing'; round: number; peerId: string; docs: number }
  | { type: 'PeerCompleted'; round: number; peerId: string; pulled: number; pushed: number; bytes: number }
  | { type: 'PeerFailed'; round: number; peerId: string; willRetry: boolean; attempt: number; code: string; message: string }
  | { type: 'AllCompleted'; round: number; peers: number; failed: number }

export interface AntiEntropyInput {
  syncInterval: number
  retry: BackoffPolicy
  maxRounds?: number
}

export interface IntervalTimerInput {
  ms: number
}

export interface SelectPeersInput {
  round: number
}

export interface ExchangeDigestInput {
  round: number
  peerId: string
  attempt: number
}

export interface ReconcileInput {
  round: number
  peerId: string
  digest: DigestOutcome
}

export type AntiEntropyEvent = { type: 'TICK' } | { type: 'RUN_NOW' } | { type: 'STOP' } | RetryEvent

export interface AntiEntropyContext {
  syncInterval: number
  retry: BackoffPolicy
  maxRounds: number | undefined
  round: number
  peers: string[]
  index: number
  attempt: number
  digest: DigestOutcome | null
  failedPeers: number
  lastError: unknown
}

const currentPeer = (context: AntiEntropyContext): string => context.peers[context.index] ?? ''

export const antiEntropyMachine = setup({
  types: {
    input: {} as AntiEntropyInput,
    context: {} as AntiEntropyContext,
    events: {} as AntiEntropyEvent,
  },
  actors: {
    intervalTimer: fromCallback<AntiEntropyEvent, IntervalTimerInput>(() => undefined),
    selectPeers: fromPromise<string[], SelectPeersInput>(async () => []),
    exchangeDigest: fromPromise<DigestOutcome, ExchangeDigestInput>(async () => {
      throw new Error('exchangeDigest actor not provided')
    }),
    reconcile: fromPromise<ReconcileOutcome, ReconcileInput>(async () => {
      throw new Error('reconcile actor not provided')
    }),
    backoffTimer: fromCallback<RetryEvent, BackoffTimerInput>(({ sendBack }) => {
      sendBack({ type: 'RETRY' })
    }),
  },
  guards: {
    roundsDone: ({ context }) => context.maxRounds !== undefined && context.round >= context.maxRounds,
    noPeers: ({ event }) => ((event as { output?: string[] }).output ?? []).length === 0,
    canRetry: ({ context }) => context.attempt < context.retry.maxAttempts && defaultIsRetryable(context.lastError),
    morePeers: ({ context }) => context.index + 1 < context.peers.length,
  },
  actions: {
    // Bound by the runtime to its progress stream.
    report: (_, _progress: AntiEntropyProgress) => {},
  },
}).createMachine({
  id: 'antiEntropy',
  context: ({ input }) => ({
    syncInterval: input.syncInterval,
    retry: input.retry,
    maxRounds: input.maxRounds,
    round: 0,
    peers: [],
    index: 0,
    attempt: 1,
    digest: null,
    failedPeers: 0,
    lastError: undefined,
  }),
  initial: 'idle',
  states: {
    idle: {
      always: { guard: 'roundsDone', target: 'done' },
      invoke: { id: 'interval', src: 'intervalTimer', input: ({ context }) => ({ ms: context.syncInterval }) },
      on: {
        TICK: 'selecting',
        RUN_NOW: 'selecting',
      },
      exit: assign(({ context }) => ({ round: context.round + 1, peers: [], index: 0, attempt: 1, digest: null, failedPeers: 0, lastError: undefined })),
    },
    selecting: {
      invoke: {
        id: 'selectPeers',
        src: 'selectPeers',
        input: ({ context }) => ({ round: context.round }),
        onDone: [
          {
            guard: 'noPeers',
            target: 'idle',
            actions: [
              { type: 'report', params: ({ context }) => ({ type: 'Started', round: context.round, peers: [] }) },
              { type: 'report', params: ({ context }) => ({ type: 'AllCompleted', round: context.round, peers: 0, failed: 0 }) },
            ],
          },
          {
            target: 'exchanging',
            actions: [
              assign({ peers: ({ event }) => event.output }),
              { type: 'report', params: ({ context }) => ({ type: 'Started', round: context.round, peers: context.peers }) },
            ],
          },
        ],
        onError: {
          target: 'idle',
          actions: { type: 'report', params: ({ context }) => ({ type: 'AllCompleted', round: context.round, peers: 0, failed: 0 }) },
        },
      },
    },
    exchanging: {
      invoke: {
        id: 'exchangeDigest',
        src: 'exchangeDigest',
        input: ({ context }) => ({ round: context.round, peerId: currentPeer(context), attempt: context.attempt }),
        onDone: {
          target: 'reconciling',
          actions: [
            assign({ digest: ({ event }) => event.output }),
            {
              type: 'report',
              params: ({ context }) => ({
                type: 'DigestExchanged',
                round: context.round,
                peerId: currentPeer(context),
                status: context.digest!.status,
                differing: context.digest!.differing.length,
                bytes: context.digest!.bytes,
              }),
            },
          ],
        },
        onError: { target: 'failed', actions: assign({ lastError: ({ event }) => event.error }) },
      },
    },
    reconciling: {
      invoke: {
        id: 'reconcile',
        src: 'reconcile',
        input: ({ context }) => ({ round: context.round, peerId: currentPeer(context), digest: context.digest! }),
        onDone: {
          target: 'nextPeer',
          actions: {
            type: 'report',
            params: ({ context, event }) => ({
              type: 'PeerCompleted',
              round: context.round,
              peerId: currentPeer(context),
              pulled: event.output.pulled,
              pushed: event.output.pushed,
              bytes: event.output.bytes + (context.digest?.bytes ?? 0),
            }),
          },
        },
        onError: { target: 'failed', actions: assign({ lastError: ({ event }) => event.error }) },
      },
    },
    failed: {
      always: [
        {
          guard: 'canRetry',
          target: 'backoff',
          actions: {
            type: 'report',
            params: ({ context }) => ({
              type: 'PeerFailed',
              round: context.round,
              peerId: currentPeer(context),
              willRetry: true,
              attempt: context.attempt,
              ...codeOf(context.lastError),
            }),
          },
        },
        {
          target: 'nextPeer',
          actions: [
            {
              type: 'report',
              params: ({ context }) => ({
                type: 'PeerFailed',
                round: context.round,
                peerId: currentPeer(context),
                willRetry: false,
                attempt: context.attempt,
                ...codeOf(context.lastError),
              }),
            },
            assign({ failedPeers: ({ context }) => context.failedPeers + 1 }),
          ],
        },
      ],
    },
    backoff: {
      invoke: { id: 'backoff', src: 'backoffTimer', input: ({ context }) => ({ attempt: context.attempt, policy: context.retry }) },
      on: {
        RETRY: { target: 'exchanging', actions: assign({ attempt: ({ context }) => context.attempt + 1 }) },
        DEADLINE: 'nextPeer',
      },
    },
    nextPeer: {
      always: [
        {
          guard: 'morePeers',
          target: 'exchanging',
          actions: assign({ index: ({ context }) => context.index + 1, attempt: 1, digest: null, lastError: undefined }),
        },
        {
          target: 'idle',
          actions: {
            type: 'report',
            params: ({ context }) => ({ type: 'AllCompleted', round: context.round, peers: context.peers.length, failed: context.failedPeers }),
          },
        },
      ],
    },
    done: { type: 'final' },
    stopped: { type: 'final' },
  },
  on: {
    STOP: '.stopped',
  },
})

function codeOf(error: unknown): { code: string; message: string } {
  const info = errorInfo(error)
  return { code: info.code, message: info.message }
}
