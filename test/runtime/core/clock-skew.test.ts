// Deadlines travel as the budget left (relative ms), so a peer whose clock is ahead or behind
// still gets the time the caller had left, measured on its own clock.
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

const SKEW_MS = 2_000

const ping = defineChoreography({
  name: 'ping',
  roles: ['a', 'b'],
  steps: [
    { label: 'ping', from: 'a', to: ['b'], payload: z.object({ n: z.number() }), produce: () => ({ n: 1 }) },
    { label: 'pong', from: 'b', to: ['a'], payload: z.object({ n: z.number() }), produce: () => ({ n: 2 }) },
  ],
})

/** Two peers; the callee's clock reads `SKEW_MS` ahead of the caller's (or behind, with -1). */
async function skewed(direction: 1 | -1 = 1) {
  const sim = await Simulation.create({
    seed: 5,
    peers: 2,
    clockOffsets: [0, direction * SKEW_MS],
    faults: { minDelayMs: 1, maxDelayMs: 5 },
    runtime: { protocols: [ping], sessions: { autoJoin: true } },
  })
  sims.push(sim)
  return sim.runtimes as [Runtime, Runtime]
}

/** Registers `work` on `callee`: sleeps `ms`, records on the callee's clock when it started and its deadline. */
function registerWork(callee: Runtime) {
  const seen: Array<{ arrivedAt: number; deadlineAt: number; endedAt?: number; aborted?: boolean }> = []
  callee.timeouts.register('work', async (payload, ctx) => {
    const entry: (typeof seen)[number] = { arrivedAt: componentsOf(callee).clock.now(), deadlineAt: ctx.deadlineAt }
    seen.push(entry)
    try {
      await ctx.sleep((payload as { ms: number }).ms)
      return 'done'
    } catch (error) {
      entry.aborted = true
      throw error
    } finally {
      entry.endedAt = componentsOf(callee).clock.now()
    }
  })
  return seen
}

describe('deadlines under clock skew', () => {
  it.each([1, -1] as const)(
    "a call with 1.5 s of budget succeeds when the callee clock is off by %i × 2 s; the callee's deadline is the budget on its own clock",
    async (direction) => {
      const [a, b] = await skewed(direction)
      const sim = sims[0]!
      const seen = registerWork(b)
      const call = a.timeouts.withTimeout(1_500, (_signal, ctx) => ctx.call<string>(b.peerId, 'work', { ms: 100 }))
      const outcome = await drive(sim, call, 3_000)
      expect(outcome.error).toBeUndefined()
      expect(outcome.value).toBe('done')
      const [entry] = seen
      // what was left of the 1.5 s when the request arrived (a few ms in flight), on b's own clock
      const budget = entry!.deadlineAt - entry!.arrivedAt
      expect(budget).toBeGreaterThan(1_400)
      expect(budget).toBeLessThanOrEqual(1_500)
    },
  )

  it('the callee still gives up when the budget runs out, measured on its own clock', async () => {
    const [a, b] = await skewed()
    const sim = sims[0]!
    const seen = registerWork(b)
    const call = a.timeouts.withTimeout(1_500, (_signal, ctx) => ctx.call(b.peerId, 'work', { ms: 10_000 }))
    const outcome = await drive(sim, call, 5_000)
    expect(outcome.error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    await sim.run(100)
    const [entry] = seen
    expect(entry!.aborted).toBe(true)
    // b's work ended at b's deadline (or by the origin's cancel, a moment later), not 2 s early
    expect(entry!.endedAt! - entry!.arrivedAt).toBeGreaterThan(1_400)
    expect(entry!.endedAt! - entry!.arrivedAt).toBeLessThan(1_600)
  })

  it("a 1.5 s session completes when the invitee's clock is 2 s ahead", async () => {
    const [a, b] = await skewed()
    const sim = sims[0]!
    b.sessions.invitations$.subscribe((invite) => void b.sessions.executeProtocol(invite.sessionId, invite.protocol))
    const participants = [
      { peerId: a.peerId, role: 'a' },
      { peerId: b.peerId, role: 'b' },
    ]
    const session = (await drive(sim, a.sessions.createSession('ping', participants, { timeoutMs: 1_500, protocol: 'ping' }), 1_000)).value!
    const result = await drive(sim, session.executeProtocol(), 3_000)
    expect(result.value?.status).toBe('completed')
    // b ends when the leader's verdict reaches it, a message after a ends
    await sim.runUntil(() => b.sessions.get(session.id)!.state().status !== 'agreeing', 100)
    const remote = b.sessions.get(session.id)!.state()
    expect(remote.status).toBe('completed')
    // b's deadline is the session's on b's clock: 2 s later in b's numbers than in a's
    // (plus the invite's few ms in flight, which a relative budget does not subtract)
    expect(remote.deadlineAt - session.state().deadlineAt).toBeGreaterThanOrEqual(SKEW_MS)
    expect(remote.deadlineAt - session.state().deadlineAt).toBeLessThanOrEqual(SKEW_MS + 10)
  })
})
