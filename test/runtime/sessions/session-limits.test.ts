// Session limits are enforced, not just declared: too many participants, too many concurrent
// sessions and oversized step messages all get LIMIT_EXCEEDED, locally and from a peer, and the
// peer keeps serving.
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Simulation } from '../../../runtime/testing/simulation.js'
import { defineChoreography } from '../../../runtime/sessions/choreography.js'
import type { Runtime } from '../../../runtime/core/runtime.js'
import { drive } from '../../fixtures/simulation-drive.js'
import { componentsOf } from '../../../runtime/core/components.js'

const sims: Simulation[] = []
afterEach(async () => {
  for (const sim of sims.splice(0)) await sim.stop()
})

/** One step from `a` to `b` whose text is `size.bytes` long. */
const size = { bytes: 10 }
const shout = defineChoreography({
  name: 'shout',
  roles: ['a', 'b'],
  steps: [{ label: 'shout', from: 'a', to: ['b'], payload: z.object({ text: z.string() }), produce: () => ({ text: 'x'.repeat(size.bytes) }) }],
})

async function simulate(peers: number, limits: Record<string, number>) {
  const sim = await Simulation.create({
    seed: 10,
    peers,
    faults: { minDelayMs: 1, maxDelayMs: 3 },
    runtime: { protocols: [shout], sessions: { autoJoin: true }, limits },
  })
  sims.push(sim)
  return sim
}

const pair = (a: Runtime, b: Runtime) => [
  { peerId: a.peerId, role: 'a' },
  { peerId: b.peerId, role: 'b' },
]

describe('session limits', () => {
  it('more participants than maxParticipants is LIMIT_EXCEEDED, created locally or invited by a peer', async () => {
    const sim = await simulate(3, { maxParticipants: 2 })
    const [a, b, c] = sim.runtimes as [Runtime, Runtime, Runtime]
    const three = [...pair(a, b), { peerId: c.peerId, role: 'c' }]
    await expect(a.sessions.createSession('shout', three)).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' })
    // an invite whose own limits agree with its roster, but the invitee allows fewer
    const now = sim.clock.now()
    const input = { sessionId: 's-big', sessionType: 'shout', selfPeerId: b.peerId, participants: three, createdAt: now, deadlineAt: now + 5_000 }
    const generous = drive(
      sim,
      componentsOf(a).router.request(b.peerId, 'session', {
        kind: 'invite',
        payload: { input: { ...input, limits: { maxParticipants: 8, maxMessageBytes: 1024 } } },
      }),
      1_000,
    )
    expect((await generous).error).toMatchObject({ code: 'LIMIT_EXCEEDED' })
    // an invite whose roster breaks its own limits
    const strict = drive(
      sim,
      componentsOf(a).router.request(b.peerId, 'session', {
        kind: 'invite',
        payload: { input: { ...input, limits: { maxParticipants: 2, maxMessageBytes: 1024 } } },
      }),
      1_000,
    )
    expect((await strict).error).toMatchObject({ code: 'LIMIT_EXCEEDED' })
    expect(b.sessions.list()).toHaveLength(0)
    expect(b.metrics().errors['LIMIT_EXCEEDED']).toBe(2)
  })

  it('more running sessions than maxConcurrentSessions is LIMIT_EXCEEDED, here and on an invited peer; ending one frees the slot', async () => {
    const sim = await simulate(3, { maxConcurrentSessions: 1 })
    const [a, b, c] = sim.runtimes as [Runtime, Runtime, Runtime]
    const first = await drive(sim, a.sessions.createSession('shout', pair(a, b), { timeoutMs: 5_000, protocol: 'shout' }), 1_000)
    expect(first.value).toBeDefined()
    await expect(a.sessions.createSession('shout', pair(a, c))).rejects.toMatchObject({ code: 'LIMIT_EXCEEDED' })
    // b is in a's session already: c's invite is refused with the typed error
    const refused = await drive(sim, c.sessions.createSession('shout', pair(c, b), { timeoutMs: 500 }), 2_000)
    expect(refused.error).toMatchObject({ code: 'LIMIT_EXCEEDED' })
    // and the refused creator holds no half-created session that would take its own slot
    expect(c.sessions.list().map((s) => s.status)).toEqual(['cancelled'])
    expect(b.metrics().errors['LIMIT_EXCEEDED']).toBeGreaterThanOrEqual(1)
    await drive(sim, a.sessions.endSession(first.value!.id), 1_000)
    const again = await drive(sim, a.sessions.createSession('shout', pair(a, c), { timeoutMs: 5_000 }), 1_000)
    expect(again.value?.state().status).toBe('created')
  })

  it("a step over maxMessageBytes fails the sender's session with LIMIT_EXCEEDED, and a peer sending one directly gets LIMIT_EXCEEDED", async () => {
    const sim = await simulate(2, { maxMessageBytes: 1024 })
    const [a, b] = sim.runtimes as [Runtime, Runtime]
    size.bytes = 2_000
    const created = await drive(sim, a.sessions.createSession('shout', pair(a, b), { timeoutMs: 5_000, protocol: 'shout' }), 1_000)
    const session = created.value!
    const result = await drive(sim, session.executeProtocol(), 6_000)
    expect(result.value).toMatchObject({ status: 'failed', outcome: { kind: 'failure' } })
    expect(JSON.stringify(result.value!.outcome)).toMatch(/over 1024/)

    // b has not executed yet: a raw oversized step is refused before it reaches b's session
    const second = await drive(sim, a.sessions.createSession('shout', pair(a, b), { timeoutMs: 5_000, protocol: 'shout' }), 1_000)
    const id = second.value!.id
    const before = JSON.stringify(b.sessions.get(id)!.state())
    const step = (text: string) =>
      componentsOf(a).router.request(b.peerId, 'session', {
        kind: 'step',
        session: id,
        payload: { sessionId: id, protocol: 'shout', step: 0, payload: { text } },
      })
    expect((await drive(sim, step('x'.repeat(2_000)), 1_000)).error).toMatchObject({ code: 'LIMIT_EXCEEDED' })
    expect(JSON.stringify(b.sessions.get(id)!.state())).toBe(before)
    expect(b.metrics().errors['LIMIT_EXCEEDED']).toBe(1)
    // a step within the limit is still accepted
    expect((await drive(sim, step('small'), 1_000)).error).toBeUndefined()
  })
})
