// The anti-entropy statechart with stub effect actors, and its config schema.
import { createActor, fromCallback, fromPromise, waitFor } from 'xstate'
import { describe, expect, it } from 'vitest'
import {
  antiEntropyConfigSchema,
  antiEntropyMachine,
  type AntiEntropyEvent,
  type AntiEntropyProgress,
  type DigestOutcome,
  type ExchangeDigestInput,
  type IntervalTimerInput,
  type ReconcileInput,
  type ReconcileOutcome,
} from '../../machines/anti-entropy.js'
import type { RetryEvent } from '../../machines/retry.js'
import type { BackoffTimerInput } from '../../machines/kernel.js'
import { InvalidInput, NetworkError } from '../../effects/errors.js'

const retry = { maxAttempts: 2, initialDelayMs: 1, maxDelayMs: 1, multiplier: 1, jitter: 'none' as const }

function harness(options: { peers?: string[]; failDigest?: Record<string, unknown[]>; maxRounds?: number } = {}) {
  const progress: AntiEntropyProgress[] = []
  const states: string[] = []
  const failures = Object.fromEntries(Object.entries(options.failDigest ?? {}).map(([k, v]) => [k, [...v]]))
  let tick: (() => void) | undefined
  const machine = antiEntropyMachine.provide({
    actors: {
      intervalTimer: fromCallback<AntiEntropyEvent, IntervalTimerInput>(({ sendBack }) => {
        tick = () => sendBack({ type: 'TICK' })
        return () => (tick = undefined)
      }),
      selectPeers: fromPromise(async () => options.peers ?? ['b', 'c']),
      exchangeDigest: fromPromise<DigestOutcome, ExchangeDigestInput>(async ({ input }) => {
        const failure = failures[input.peerId]?.shift()
        if (failure) throw failure
        return { status: 'local-behind', differing: ['doc'], bytes: 10 }
      }),
      reconcile: fromPromise<ReconcileOutcome, ReconcileInput>(async ({ input }) => ({ pulled: input.digest.differing.length, pushed: 0, bytes: 5 })),
      backoffTimer: fromCallback<RetryEvent, BackoffTimerInput>(({ sendBack }) => sendBack({ type: 'RETRY' })),
    },
    actions: { report: (_, p) => progress.push(p) },
  })
  const actor = createActor(machine, { input: { syncInterval: 1000, retry, ...(options.maxRounds ? { maxRounds: options.maxRounds } : {}) } })
  actor.subscribe((s) => {
    if (states[states.length - 1] !== s.value) states.push(String(s.value))
  })
  actor.start()
  return { actor, progress, states, tick: () => tick?.() }
}

const roundDone = (progress: AntiEntropyProgress[], round: number) => progress.some((p) => p.type === 'AllCompleted' && p.round === round)

describe('anti-entropy machine', () => {
  it('a round on the interval: idle → selecting → exchanging → reconciling → (next peer) → idle', async () => {
    const { actor, progress, states, tick } = harness()
    expect(actor.getSnapshot().value).toBe('idle')
    tick()
    await waitFor(actor, () => roundDone(progress, 1))
    expect(states).toEqual(['idle', 'selecting', 'exchanging', 'reconciling', 'exchanging', 'reconciling', 'idle'])
    expect(progress.map((p) => p.type)).toEqual(['Started', 'DigestExchanged', 'PeerCompleted', 'DigestExchanged', 'PeerCompleted', 'AllCompleted'])
    expect(progress[0]).toEqual({ type: 'Started', round: 1, peers: ['b', 'c'] })
    expect(progress[2]).toMatchObject({ type: 'PeerCompleted', peerId: 'b', pulled: 1, bytes: 15 })
    expect(progress[5]).toEqual({ type: 'AllCompleted', round: 1, peers: 2, failed: 0 })
  })

  it('a failing peer is retried after backoff, then given up; the round still completes', async () => {
    const { actor, progress, states } = harness({
      failDigest: { b: [new NetworkError('lost'), new NetworkError('lost again')], c: [new NetworkError('once')] },
    })
    actor.send({ type: 'RUN_NOW' })
    await waitFor(actor, () => roundDone(progress, 1))
    const failed = progress.filter((p) => p.type === 'PeerFailed')
    expect(failed).toEqual([
      expect.objectContaining({ peerId: 'b', willRetry: true, attempt: 1, code: 'NETWORK' }),
      expect.objectContaining({ peerId: 'b', willRetry: false, attempt: 2, code: 'NETWORK' }),
      expect.objectContaining({ peerId: 'c', willRetry: true, attempt: 1 }),
    ])
    expect(states).toContain('backoff')
    expect(progress.at(-1)).toEqual({ type: 'AllCompleted', round: 1, peers: 2, failed: 1 })
  })

  it('does not retry errors that cannot improve (invalid input)', async () => {
    const { actor, progress } = harness({ peers: ['b'], failDigest: { b: [new InvalidInput('digest too large')] } })
    actor.send({ type: 'RUN_NOW' })
    await waitFor(actor, () => roundDone(progress, 1))
    expect(progress.filter((p) => p.type === 'PeerFailed')).toEqual([expect.objectContaining({ willRetry: false, attempt: 1, code: 'INVALID_INPUT' })])
  })

  it('no eligible peer: the round ends at once', async () => {
    const { actor, progress } = harness({ peers: [] })
    actor.send({ type: 'RUN_NOW' })
    await waitFor(actor, () => roundDone(progress, 1))
    expect(progress).toEqual([
      { type: 'Started', round: 1, peers: [] },
      { type: 'AllCompleted', round: 1, peers: 0, failed: 0 },
    ])
    expect(actor.getSnapshot().value).toBe('idle')
  })

  it('stops after maxRounds, and on STOP', async () => {
    const { actor, progress } = harness({ maxRounds: 2 })
    actor.send({ type: 'RUN_NOW' })
    await waitFor(actor, () => roundDone(progress, 1))
    actor.send({ type: 'RUN_NOW' })
    const done = await waitFor(actor, (s) => s.status === 'done')
    expect(done.value).toBe('done')
    expect(progress.filter((p) => p.type === 'AllCompleted')).toHaveLength(2)

    const other = harness()
    other.actor.send({ type: 'STOP' })
    expect(other.actor.getSnapshot().value).toBe('stopped')
  })
})

describe('anti-entropy config', () => {
  it('fills defaults and accepts the three peer selections', () => {
    const config = antiEntropyConfigSchema.parse({ syncInterval: 1000, peerSelection: { kind: 'random', k: 3 } })
    expect(config).toMatchObject({ digest: 'merkle', bloomFilterSize: 8192, batchSize: 500 })
    expect(antiEntropyConfigSchema.parse({ syncInterval: 1, peerSelection: { kind: 'round-robin' }, digest: 'merkle', maxRounds: 3 }).maxRounds).toBe(3)
    expect(antiEntropyConfigSchema.parse({ syncInterval: 1, peerSelection: { kind: 'priority', peers: ['x'] } }).peerSelection).toEqual({
      kind: 'priority',
      peers: ['x'],
      k: 1,
    })
  })

  it.each([
    [{ syncInterval: 0, peerSelection: { kind: 'random', k: 1 } }],
    [{ syncInterval: 10, peerSelection: { kind: 'random', k: 0 } }],
    [{ syncInterval: 10, peerSelection: { kind: 'nearest' } }],
    [{ syncInterval: 10, peerSelection: { kind: 'round-robin' }, digest: 'full-list' }],
    [{ syncInterval: 10, peerSelection: { kind: 'round-robin' }, bloomFilterSize: 8 }],
    [{ syncInterval: 10, peerSelection: { kind: 'round-robin' }, extra: true }],
  ])('rejects %j', (input) => {
    expect(antiEntropyConfigSchema.safeParse(input).success).toBe(false)
  })
})
