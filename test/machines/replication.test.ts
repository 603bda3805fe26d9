import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { createActor, fromCallback, toPromise } from 'xstate'
import {
  replicationInputSchema,
  replicationMachine,
  requiredAcks,
  type PeerSenderInput,
  type ReplicationEvent,
  type ReplicationInput,
} from '../../machines/replication.js'
import type { DeadlineEvent, DeadlineTimerInput } from '../../machines/kernel.js'

type Outcome = 'ack' | 'deny' | 'unreachable' | 'hang'

function harness(outcomes: Record<string, Outcome>, required: number) {
  let fireDeadline = () => {}
  const stopped: string[] = []
  const states: string[] = []
  const machine = replicationMachine.provide({
    actors: {
      peerSender: fromCallback<ReplicationEvent, PeerSenderInput>(({ input, sendBack }) => {
        const outcome = outcomes[input.peer]!
        queueMicrotask(() => {
          if (outcome === 'ack') sendBack({ type: 'PEER_ACKED', peer: input.peer, attempts: 1 })
          else if (outcome !== 'hang') {
            const code = outcome === 'deny' ? 'PERMISSION_DENIED' : 'ATTEMPT_BUDGET_EXHAUSTED'
            sendBack({ type: 'PEER_FAILED', peer: input.peer, attempts: 3, error: { code, message: outcome } })
          }
        })
        return () => stopped.push(input.peer)
      }),
      deadlineTimer: fromCallback<DeadlineEvent, DeadlineTimerInput>(({ sendBack }) => {
        fireDeadline = () => sendBack({ type: 'DEADLINE' })
      }),
    },
  })
  const input: ReplicationInput = { peers: Object.keys(outcomes), required, deadlineAt: 1_000 }
  const actor = createActor(machine, { input })
  actor.subscribe((s) => {
    if (states.at(-1) !== s.value) states.push(String(s.value))
  })
  actor.start()
  const settle = async () => {
    for (let i = 0; i < 5; i++) await Promise.resolve()
  }
  return { actor, states, stopped, fire: () => fireDeadline(), settle, done: toPromise(actor) }
}

describe('replication chart', () => {
  it('all-ack: still replicating with a peer outstanding; settled once every peer acked', async () => {
    const h = harness({ a: 'ack', b: 'hang', c: 'ack' }, 3)
    await h.settle()
    expect(h.actor.getSnapshot().value).toBe('replicating')
    h.actor.send({ type: 'PEER_ACKED', peer: 'b', attempts: 2 })
    const output = await h.done
    expect(output.status).toBe('succeeded')
    expect(output.acked.sort()).toEqual(['a', 'b', 'c'])
    expect(output.peers.b).toEqual({ status: 'acked', attempts: 2 })
    // the last ack meets the policy and settles every peer in one step
    expect(h.states).toEqual(['replicating', 'settled'])
  })

  it("a peer's first answer counts; a later contradictory one is ignored", async () => {
    const h = harness({ a: 'deny', b: 'hang' }, 1)
    await h.settle()
    h.actor.send({ type: 'PEER_ACKED', peer: 'a', attempts: 9 })
    h.actor.send({ type: 'PEER_ACKED', peer: 'b', attempts: 1 })
    const output = await h.done
    expect(output.peers.a!.status).toBe('failed')
    expect(output.acked).toEqual(['b'])
  })

  it('quorum 2 of 3: answered at two acks; the silent peer times out at the deadline and is reported', async () => {
    const h = harness({ a: 'ack', b: 'hang', c: 'ack' }, 2)
    await h.settle()
    expect(h.actor.getSnapshot().value).toBe('satisfied')
    h.fire()
    const output = await h.done
    expect(output.status).toBe('succeeded')
    expect(output.peers.b).toMatchObject({ status: 'timedOut' })
    expect(h.stopped).toContain('b')
  })

  it("quorum fails as soon as it cannot be met, with the peers' common error, before any deadline", async () => {
    const h = harness({ a: 'deny', b: 'ack', c: 'deny' }, 2)
    const output = await h.done
    expect(output.status).toBe('failed')
    expect(output.error?.code).toBe('PERMISSION_DENIED')
    expect(output.acked).toEqual(['b'])
  })

  it('mixed failure reasons become PEER_UNREACHABLE', async () => {
    const output = await harness({ a: 'deny', b: 'unreachable' }, 1).done
    expect(output.error?.code).toBe('PEER_UNREACHABLE')
  })

  it('all-ack with a silent peer fails with DEADLINE_EXCEEDED and stops every sender', async () => {
    const h = harness({ a: 'ack', b: 'hang' }, 2)
    await h.settle()
    h.fire()
    const output = await h.done
    expect(output).toMatchObject({ status: 'failed', error: { code: 'DEADLINE_EXCEEDED' } })
    expect(output.peers.b!.status).toBe('timedOut')
    expect(h.stopped.sort()).toEqual(['a', 'b'])
  })

  it('async: satisfied at once, before any peer answers', () => {
    const h = harness({ a: 'hang', b: 'hang' }, 0)
    expect(h.actor.getSnapshot().value).toBe('satisfied')
    h.actor.send({ type: 'CANCEL' })
    expect(h.actor.getSnapshot().value).toBe('cancelled')
  })

  it('requiredAcks per policy, and the input refuses more acks than peers', () => {
    expect(requiredAcks({ kind: 'all' }, 3)).toBe(3)
    expect(requiredAcks({ kind: 'quorum', k: 2 }, 3)).toBe(2)
    expect(requiredAcks({ kind: 'async' }, 3)).toBe(0)
    expect(replicationInputSchema.safeParse({ peers: ['a'], required: 2, deadlineAt: 1 }).success).toBe(false)
    expect(replicationInputSchema.safeParse({ peers: ['a', 'a'], required: 1, deadlineAt: 1 }).success).toBe(false)
  })

  it('law: a replication succeeds iff at least `required` peers ack before the deadline', async () => {
    const outcome = fc.constantFrom<Outcome>('ack', 'deny', 'unreachable', 'hang')
    await fc.assert(
      fc.asyncProperty(fc.array(outcome, { minLength: 1, maxLength: 6 }), fc.nat(), async (list, pick) => {
        const outcomes = Object.fromEntries(list.map((o, i) => [`p${i}`, o]))
        const required = pick % (list.length + 1)
        const h = harness(outcomes, required)
        await h.settle()
        h.fire()
        const output = await h.done
        const acks = list.filter((o) => o === 'ack').length
        expect(output.status).toBe(acks >= required ? 'succeeded' : 'failed')
        // a failed replication stops listening, so acks after the failure are not counted
        if (output.status === 'succeeded') expect(output.acked.length).toBe(acks)
        else expect(output.acked.length).toBeLessThan(Math.max(required, 1))
        // no peer is left pending: each one's fate is known
        expect(Object.values(output.peers).every((r) => r.status !== 'pending')).toBe(true)
      }),
      { numRuns: 100 },
    )
  })
})
