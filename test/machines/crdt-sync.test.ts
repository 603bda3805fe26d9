// The per-peer CRDT sync statechart with stub step effects: transitions, queued rounds, retries
// with backoff, failures that must not retry, and one effect run per step.
import { createActor, fromCallback, waitFor } from 'xstate'
import { describe, expect, it } from 'vitest'
import { crdtSyncMachine } from '../../machines/crdt-sync.js'
import type { RetryEvent } from '../../machines/retry.js'
import type { BackoffTimerInput } from '../../machines/kernel.js'
import { DecodeError, InvalidInput, NetworkError } from '../../effects/errors.js'

const policy = { maxAttempts: 3, initialDelayMs: 1, maxDelayMs: 1, multiplier: 1, jitter: 'none' as const }

function harness(options: { pullFailures?: unknown[]; applyError?: unknown; push?: boolean } = {}) {
  const failures = [...(options.pullFailures ?? [])]
  const calls: string[] = []
  let release: (() => void) | undefined
  let plan: unknown
  const machine = crdtSyncMachine.provide({
    // Answer at once where they can (failures, push); a pull's answer comes when the test releases it.
    actions: {
      pull: ({ context, self }) => {
        calls.push(`pull#${context.attempt}`)
        const failure = failures.shift()
        if (failure !== undefined) return self.send({ type: 'ERROR', error: failure })
        void new Promise<void>((resolve) => (release = resolve)).then(() => {
          // the answer arrived: joined in the same step, as the coordinator does
          const response = { versions: 'theirs' }
          calls.push(`apply:${JSON.stringify(response)}`)
          if (options.applyError) return self.send({ type: 'ERROR', error: options.applyError, rejected: true })
          plan = options.push ? ['doc'] : undefined
          self.send(options.push ? { type: 'DONE', push: true } : { type: 'DONE', result: { changed: ['doc'] } })
        })
      },
      push: ({ self }) => {
        calls.push(`push:${JSON.stringify(plan)}`)
        self.send({ type: 'DONE', result: { changed: ['doc'] } })
      },
    },
    actors: {
      backoffTimer: fromCallback<RetryEvent, BackoffTimerInput>(({ input, sendBack }) => {
        calls.push(`backoff#${input.attempt}`)
        sendBack({ type: 'RETRY' })
      }),
    },
  })
  const actor = createActor(machine, { input: { peerId: 'peer-b' } })
  actor.start()
  const states: string[] = []
  actor.subscribe((s) => {
    if (states[states.length - 1] !== s.value) states.push(String(s.value))
  })
  const answer = async () => {
    await waitFor(actor, () => release !== undefined)
    const r = release!
    release = undefined
    r()
  }
  return { actor, calls, states, answer }
}

describe('crdt sync machine', () => {
  it('idle → pulling → pushing → idle, counting the round', async () => {
    const { actor, calls, states, answer } = harness({ push: true })
    expect(actor.getSnapshot().value).toBe('idle')
    actor.send({ type: 'SYNC' })
    await answer()
    const done = await waitFor(actor, (s) => s.context.lastOutcome !== null)
    expect(states).toEqual(['pulling', 'pushing', 'idle'])
    expect(calls).toEqual(['pull#1', 'apply:{"versions":"theirs"}', 'push:["doc"]'])
    expect(done.context.lastOutcome).toMatchObject({ round: 1, ok: true, result: { changed: ['doc'] }, attempts: 1 })
    expect(done.context.syncCount).toBe(1)
  })

  it('skips pushing when the peer lacks nothing', async () => {
    const { actor, states, answer } = harness()
    actor.send({ type: 'SYNC' })
    await answer()
    await waitFor(actor, (s) => s.context.lastOutcome !== null)
    expect(states).toEqual(['pulling', 'idle'])
  })

  it('a SYNC during a round is queued and coalesced into one more round', async () => {
    const { actor, calls, answer } = harness()
    actor.send({ type: 'SYNC' })
    actor.send({ type: 'SYNC' })
    actor.send({ type: 'SYNC' })
    expect(actor.getSnapshot().context.queued).toBe(true)
    await answer()
    await waitFor(actor, (s) => s.context.round === 2)
    await answer()
    const done = await waitFor(actor, (s) => s.context.lastOutcome?.round === 2)
    expect(done.value).toBe('idle')
    expect(calls.filter((c) => c.startsWith('pull'))).toHaveLength(2)
    expect(done.context.syncCount).toBe(2)
  })

  it('each step runs its effect once: a pull per attempt, a push per round that needs one', async () => {
    const { actor, calls, answer } = harness({ push: true })
    for (const round of [1, 2, 3]) {
      actor.send({ type: 'SYNC' })
      await answer()
      await waitFor(actor, (s) => s.context.lastOutcome?.round === round)
    }
    expect(calls).toEqual(Array.from({ length: 3 }, () => ['pull#1', 'apply:{"versions":"theirs"}', 'push:["doc"]']).flat())
    expect(actor.getSnapshot().context.syncCount).toBe(3)
  })

  it('step answers that arrive while idle are ignored', () => {
    const { actor } = harness()
    actor.send({ type: 'DONE', result: 'stale' })
    actor.send({ type: 'ERROR', error: new NetworkError('stale') })
    const snapshot = actor.getSnapshot()
    expect(snapshot.value).toBe('idle')
    expect(snapshot.context).toMatchObject({ round: 0, lastOutcome: null, syncCount: 0, errorCount: 0 })
  })

  it('transient failures back off and retry within the policy', async () => {
    const { actor, calls, answer } = harness({ pullFailures: [new NetworkError('down'), new NetworkError('down')] })
    actor.send({ type: 'SYNC', policy })
    await answer()
    const done = await waitFor(actor, (s) => s.context.lastOutcome !== null)
    expect(calls.slice(0, 5)).toEqual(['pull#1', 'backoff#1', 'pull#2', 'backoff#2', 'pull#3'])
    expect(done.context.lastOutcome).toMatchObject({ ok: true, attempts: 3 })
  })

  it('gives up when attempts run out, and without a policy makes one attempt', async () => {
    const withPolicy = harness({ pullFailures: [1, 2, 3].map(() => new NetworkError('down')) })
    withPolicy.actor.send({ type: 'SYNC', policy })
    const failed = await waitFor(withPolicy.actor, (s) => s.context.lastOutcome !== null)
    expect(failed.context.lastOutcome).toMatchObject({ ok: false, attempts: 3, error: { code: 'NETWORK' } })
    expect(failed.context.errorCount).toBe(1)

    const once = harness({ pullFailures: [new NetworkError('down')] })
    once.actor.send({ type: 'SYNC' })
    const single = await waitFor(once.actor, (s) => s.context.lastOutcome !== null)
    expect(single.context.lastOutcome).toMatchObject({ ok: false, attempts: 1 })
    expect(once.calls).toEqual(['pull#1'])
  })

  it('a bad answer (invalid input) fails the round at once, with no retry', async () => {
    const { actor, calls, answer } = harness({ applyError: new InvalidInput('bad clock') })
    actor.send({ type: 'SYNC', policy })
    await answer()
    const done = await waitFor(actor, (s) => s.context.lastOutcome !== null)
    expect(done.value).toBe('idle')
    expect(done.context.lastOutcome).toMatchObject({ ok: false, attempts: 1, error: { code: 'INVALID_INPUT' } })
    expect(calls.filter((c) => c.startsWith('backoff'))).toEqual([])
  })

  it('a refused answer is not retried even when its error alone would be (a bad update is a DecodeError)', async () => {
    const { actor, calls, answer } = harness({ applyError: new DecodeError('bad update') })
    actor.send({ type: 'SYNC', policy })
    await answer()
    const done = await waitFor(actor, (s) => s.context.lastOutcome !== null)
    expect(done.context.lastOutcome).toMatchObject({ ok: false, attempts: 1, error: { code: 'DECODE' } })
    expect(calls.filter((c) => c.startsWith('backoff') || c.startsWith('pull'))).toEqual(['pull#1'])
  })

  it('non-retryable request errors do not back off either', async () => {
    const { actor, calls } = harness({ pullFailures: [new InvalidInput('nope')] })
    actor.send({ type: 'SYNC', policy })
    const done = await waitFor(actor, (s) => s.context.lastOutcome !== null)
    expect(done.context.lastOutcome).toMatchObject({ ok: false, error: { code: 'INVALID_INPUT' } })
    expect(calls).toEqual(['pull#1'])
  })
})
