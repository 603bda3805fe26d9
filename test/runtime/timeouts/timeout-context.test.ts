// The enclosing timeout is implicit: a session, a nested timeout or any coordinator started
// inside withTimeout / withCoordinatedTimeouts inherits its deadline and its cancellation
// without a signal threaded by hand.
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Simulation } from '../../../runtime/testing/simulation.js'
import { defineChoreography } from '../../../runtime/sessions/choreography.js'
import type { Runtime } from '../../../runtime/core/runtime.js'
import { currentDeadline, currentSignal, enclosingDeadline } from '../../../runtime/timeouts/timeout-context.js'
import { drive } from '../../fixtures/simulation-drive.js'

const sims: Simulation[] = []
afterEach(async () => {
  for (const sim of sims.splice(0)) await sim.stop()
})

// b never answers in time: the session only ends by a deadline or a cancel
const stuck = defineChoreography({
  name: 'stuck',
  roles: ['a', 'b'],
  steps: [
    { label: 'ask', from: 'a', to: ['b'], payload: z.object({ n: z.number() }), produce: () => ({ n: 1 }) },
    { label: 'never', from: 'b', to: ['a'], payload: z.object({ n: z.number() }), produce: () => new Promise(() => undefined) },
  ],
})

async function simulate(peers = 2) {
  const sim = await Simulation.create({
    seed: 6,
    peers,
    faults: { minDelayMs: 1, maxDelayMs: 5 },
    runtime: { protocols: [stuck], sessions: { autoJoin: true } },
  })
  sims.push(sim)
  const [a, b] = sim.runtimes as [Runtime, Runtime]
  b.sessions.invitations$.subscribe((invite) => void b.sessions.executeProtocol(invite.sessionId, invite.protocol))
  return {
    sim,
    a,
    b,
    roster: [
      { peerId: a.peerId, role: 'a' },
      { peerId: b.peerId, role: 'b' },
    ],
  }
}

const ENDED = ['failed', 'cancelled']

describe('implicit timeout context', () => {
  it('a session created inside withTimeout(300) with a 30 s timeout of its own ends with the enclosing operation, on every peer', async () => {
    const { sim, a, b, roster } = await simulate()
    const start = sim.clock.now()
    let sessionId = ''
    const outcome = await drive(
      sim,
      a.timeouts.withTimeout(300, async () => {
        const session = await a.sessions.createSession('stuck', roster, { timeoutMs: 30_000, protocol: 'stuck' })
        sessionId = session.id
        return session.executeProtocol() // no signal passed by hand
      }),
      2_000,
    )
    expect(outcome.error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    expect(outcome.at - start).toBeLessThanOrEqual(301)
    const local = a.sessions.get(sessionId)!.state()
    expect(local.deadlineAt).toBeLessThanOrEqual(start + 300)
    await sim.run(200)
    for (const peer of [a, b]) {
      const view = peer.sessions.get(sessionId)!.state()
      expect(ENDED).toContain(view.status)
      expect(['timeout', 'cancelled', 'failure']).toContain(view.outcome?.kind)
    }
  })

  it('a session is cancelled when a fail-fast sibling fails, long before any deadline', async () => {
    const { sim, a, b, roster } = await simulate()
    const start = sim.clock.now()
    let sessionId = ''
    const outcome = await drive(
      sim,
      a.timeouts.withCoordinatedTimeouts(
        60_000,
        [
          async () => {
            const session = await a.sessions.createSession('stuck', roster, { timeoutMs: 30_000, protocol: 'stuck' })
            sessionId = session.id
            return session.executeProtocol()
          },
          async (_signal, ctx) => {
            await ctx.sleep(100)
            throw new Error('sibling failed')
          },
        ],
        'fail-fast',
      ),
      2_000,
    )
    expect(outcome.value).toMatchObject({ status: 'failed' })
    expect(outcome.at - start).toBeLessThan(200)
    await sim.run(50)
    // here and, through the session's own `end`, on the other peer
    expect(a.sessions.get(sessionId)!.state().status).toBe('cancelled')
    expect(b.sessions.get(sessionId)!.state().status).toBe('cancelled')
  })

  it('a session made outside but executed inside is cancelled with the operation; a nested withTimeout gets what is left', async () => {
    const { sim, a, roster } = await simulate()
    const session = (await drive(sim, a.sessions.createSession('stuck', roster, { timeoutMs: 30_000, protocol: 'stuck' }), 1_000)).value!
    const start = sim.clock.now()
    let inner: { deadline?: number; signal?: AbortSignal; bounded?: number } = {}
    const outcome = await drive(
      sim,
      a.timeouts.withTimeout(300, async (_signal, ctx) => {
        await ctx.sleep(10) // the scope survives awaits on the clock effect
        inner = { deadline: currentDeadline(), signal: currentSignal(), bounded: enclosingDeadline(Number.MAX_SAFE_INTEGER) }
        const nested = a.timeouts.withTimeout(10_000, async (_s, nestedCtx) => nestedCtx.deadlineAt)
        expect(await nested).toBe(ctx.deadlineAt)
        return session.executeProtocol()
      }),
      2_000,
    )
    expect(outcome.error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    expect(inner.deadline).toBe(start + 300)
    expect(inner.bounded).toBe(start + 300)
    expect(inner.signal?.aborted).toBe(true)
    await sim.run(50)
    expect(session.state().status).toBe('cancelled')
    // outside any operation there is no enclosing deadline
    expect(currentDeadline()).toBeUndefined()
    expect(enclosingDeadline(5)).toBe(5)
  })
})
