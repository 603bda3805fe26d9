// Transitions that no acknowledgement waits on are not written one commit each: they reach
// storage at the next awaited write or within the checkpoint interval (20 ms), so a restarted
// peer finds its sessions as they were moments before, finished ones included.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { z } from 'zod'
import { Simulation } from '../../../runtime/testing/simulation.js'
import { defineChoreography } from '../../../runtime/sessions/choreography.js'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { drive } from '../../fixtures/simulation-drive.js'
import { componentsOf } from '../../../runtime/core/components.js'
import { decodeSessionRecord } from '../../../runtime/sessions/session-record.js'

const sims: Simulation[] = []
const runtimes: Runtime[] = []
afterEach(async () => {
  for (const sim of sims.splice(0)) await sim.stop()
  for (const runtime of runtimes.splice(0)) await runtime.stop()
})

const pingPong = defineChoreography({
  name: 'ping-pong',
  roles: ['a', 'b'],
  steps: [
    { label: 'ping', from: 'a', to: ['b'], payload: z.object({ n: z.number() }), produce: () => ({ n: 1 }) },
    { label: 'pong', from: 'b', to: ['a'], payload: z.object({ n: z.number() }), produce: () => ({ n: 2 }) },
  ],
})

/** The stored snapshot's state value of a session on this peer, or undefined. */
const storedSnapshot = (stored: unknown) =>
  decodeSessionRecord(stored)?.snapshot as { value: unknown; context: { outcome: { kind: string } | null } } | undefined
const storedValue = (rt: Runtime, sessionId: string) => storedSnapshot(componentsOf(rt).storage.namespace('aura.sessions').get(sessionId))?.value

/** Two simulated peers running ping-pong (autoJoin), `delayMs` apart on the network. */
async function simulatedPair(seed: string, delayMs: number) {
  const sim = await Simulation.create({
    seed,
    peers: 2,
    faults: { minDelayMs: delayMs, maxDelayMs: delayMs },
    runtime: { protocols: [pingPong], sessions: { autoJoin: true } },
  })
  sims.push(sim)
  const [a, b] = sim.runtimes as [Runtime, Runtime]
  const roster = [
    { peerId: a.peerId, role: 'a' },
    { peerId: b.peerId, role: 'b' },
  ]
  return { sim, a, b, roster }
}

describe('session checkpoints', () => {
  it('a finished session reaches storage on both peers within the checkpoint interval, with the wire as short as it gets', async () => {
    const { sim, a, b, roster } = await simulatedPair('checkpoint', 1)
    b.sessions.invitations$.subscribe((invite) => void b.sessions.executeProtocol(invite.sessionId, invite.protocol))
    const kinds: string[] = []
    a.events$.subscribe((e) => {
      if (e.type === 'wire' && e.direction === 'out') kinds.push(e.kind)
    })
    b.events$.subscribe((e) => {
      if (e.type === 'wire' && e.direction === 'out') kinds.push(e.kind)
    })
    const session = (await drive(sim, a.sessions.createSession('ping-pong', roster, { timeoutMs: 60_000, protocol: 'ping-pong' }), 1_000)).value!
    expect((await drive(sim, session.executeProtocol(), 1_000)).value?.status).toBe('completed')
    expect(await sim.runUntil(() => b.sessions.get(session.id)?.state().status === 'completed', 1_000)).toBe(true)
    await sim.run(50)
    expect(storedValue(a, session.id)).toBe('completed')
    expect(storedValue(b, session.id)).toBe('completed')
    // invite (its answer is the join), ping, pong carrying the done report (its ack the verdict):
    // no separate join, report or verdict announcement
    expect(kinds.filter((k) => k !== 'reply').sort()).toEqual(['invite', 'step', 'step'])
    expect(kinds.filter((k) => k === 'reply')).toHaveLength(3)
  })

  it('an awaited write carries only its own session: a finished one still waits for its checkpoint', async () => {
    const { sim, a, b, roster } = await simulatedPair('own-commit', 2)
    const invited: string[] = []
    b.sessions.invitations$.subscribe((invite) => {
      invited.push(invite.sessionId)
      void b.sessions.executeProtocol(invite.sessionId, invite.protocol)
    })
    // in steps of 1 ms, so the session ends well before the checkpoint its first transition armed
    const settle = async <T>(promise: Promise<T>): Promise<T> => (await drive(sim, promise, 1_000, 1)).value!
    const first = await settle(a.sessions.createSession('ping-pong', roster, { timeoutMs: 60_000, protocol: 'ping-pong' }))
    expect((await settle(first.executeProtocol())).status).toBe('completed')
    expect(await sim.runUntil(() => b.sessions.get(first.id)?.state().status === 'completed', 1_000, 1)).toBe(true)
    const finishedAt = sim.clock.now()
    // the participant's end is no acknowledgement's business: it waits for the checkpoint
    expect(storedValue(b, first.id)).not.toBe('completed')
    // the next invite's answer waits for a write of that session alone
    const second = a.sessions.createSession('ping-pong', roster, { timeoutMs: 60_000, protocol: 'ping-pong' })
    expect(await sim.runUntil(() => invited.length === 2, 1_000, 1)).toBe(true)
    expect(sim.clock.now() - finishedAt).toBeLessThan(20)
    expect(storedValue(b, invited[1]!)).toBeDefined()
    expect(storedValue(b, first.id)).not.toBe('completed')
    // and the checkpoint, once due, writes the finished one
    expect(await sim.runUntil(() => storedValue(b, first.id) === 'completed', 1_000, 1)).toBe(true)
    await drive(sim, second, 1_000)
  })

  // Over libp2p (the memory transport) the participant's ack of the leader's step and its own
  // step carrying the report arrive together, as over TCP; the simulated network spaces them out.
  it('the leader answers the done report with its verdict only once the outcome is on disk, one write holding report and outcome', async () => {
    const [a, b] = await Promise.all([0, 1].map(() => createRuntime({ transport: 'memory', protocols: [pingPong], sessions: { autoJoin: true } })))
    runtimes.push(a!, b!)
    await a!.connect(b!.addresses()[0]!)
    b!.sessions.invitations$.subscribe((invite) => void b!.sessions.executeProtocol(invite.sessionId, invite.protocol))
    // what the leader writes, in order: each stored snapshot's state value and whether it holds an outcome
    const store = componentsOf(a!).storage.namespace('aura.sessions')
    const put = store.put.bind(store)
    const writes: Array<{ value: unknown; decided: boolean }> = []
    store.put = (key, value) => {
      const snapshot = storedSnapshot(value)!
      writes.push({ value: snapshot.value, decided: snapshot.context.outcome !== null })
      return put(key, value)
    }
    const storedOutcome = (sessionId: string) => storedSnapshot(store.get(sessionId))?.context.outcome?.kind
    // the moment the participant has the verdict (its report's answer), what the leader holds on disk
    const onDiskWhenAnswered: Array<string | undefined> = []
    b!.events$.subscribe((e) => {
      // a participant ends as soon as it has the verdict (it has nothing to release)
      if (e.type === 'transition' && e.machine === 'session' && e.state === 'completed') onDiskWhenAnswered.push(storedOutcome(e.actorId))
    })
    const roster = [
      { peerId: a!.peerId, role: 'a' },
      { peerId: b!.peerId, role: 'b' },
    ]
    const session = await a!.sessions.createSession('ping-pong', roster, { timeoutMs: 10_000, protocol: 'ping-pong' })
    expect((await session.executeProtocol()).status).toBe('completed')
    await vi.waitFor(() => expect(b!.sessions.get(session.id)?.state().status).toBe('completed'))
    expect(onDiskWhenAnswered).toEqual(['success'])
    // The write the report's answer waited for is the first to hold the outcome, and the release
    // adds none: next comes only the checkpoint of the finished session.
    await vi.waitFor(() => expect(writes.at(-1)?.value).toBe('completed'))
    const decidedAt = writes.findIndex((w) => w.decided)
    expect(writes.slice(decidedAt).map((w) => w.value)).toEqual(['terminating', 'completed'])
  })
})
