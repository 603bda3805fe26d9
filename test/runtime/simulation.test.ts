import { afterEach, describe, expect, it } from 'vitest'
import { Simulation } from '../../runtime/simulation.js'
import { thresholdCeremony } from '../../runtime/protocols/threshold-ceremony.js'
import { sessionMachine } from '../../machines/session.js'
import { lifecycleViolations, finalEntries } from '../../runtime/trace-check.js'
import type { Runtime } from '../../runtime/runtime.js'
import type { Session } from '../../runtime/sessions.js'

const FINALS = ['completed', 'failed', 'cancelled']

async function ceremony(sim: Simulation, timeoutMs = 2_000) {
  const [leader, ...rest] = sim.runtimes as [Runtime, ...Runtime[]]
  const protocol = thresholdCeremony(sim.runtimes.length)
  for (const runtime of rest) {
    runtime.sessions.invitations$.subscribe((invite) => void runtime.sessions.executeProtocol(invite.sessionId, protocol.name))
  }
  const participants = sim.runtimes.map((r, i) => ({ peerId: r.peerId, role: `p${i + 1}` }))
  // createSession resolves once every invite is acknowledged, which needs virtual time to pass.
  const created = leader.sessions.createSession('ceremony', participants, { timeoutMs, protocol: protocol.name })
  let session: Session | undefined
  void created.then((s) => {
    session = s
    void s.executeProtocol()
  })
  await sim.runUntil(() => session !== undefined, timeoutMs)
  expect(session).toBeDefined()
  return { session: session!, protocol }
}

const simulations: Simulation[] = []
afterEach(async () => {
  for (const sim of simulations.splice(0)) await sim.stop()
})

async function simulate(seed: number, options: Partial<Parameters<typeof Simulation.create>[0]> = {}) {
  const sim = await Simulation.create({
    seed,
    peers: 3,
    runtime: { protocols: [thresholdCeremony(3)], sessions: { autoJoin: true } },
    ...options,
  })
  simulations.push(sim)
  return sim
}

describe('simulation harness', () => {
  it('runs a 3-party threshold ceremony to completion on a fault-free simulated network', async () => {
    const sim = await simulate(1, { faults: { minDelayMs: 1, maxDelayMs: 5 } })
    const { session } = await ceremony(sim)
    const done = await sim.runUntil(() => sim.runtimes.every((r) => r.sessions.get(session.id)?.state().status === 'completed'), 5_000)
    expect(done).toBe(true)
    const keys = new Set(
      sim.runtimes.flatMap((r) => {
        const outcome = r.sessions.get(session.id)!.state().outcome!
        expect(outcome.kind).toBe('success')
        const results = (outcome as { results: Record<string, Record<string, { groupKey?: string }>> }).results
        return Object.values(results).flatMap((byPeer) => Object.values(byPeer).map((p) => p.groupKey)).filter(Boolean)
      }),
    )
    expect(keys.size).toBe(1)
    expect(lifecycleViolations(sim.trace, sessionMachine, 'session')).toEqual([])
  })

  it('same seed gives the same trace; another seed gives another', async () => {
    const run = async (seed: number) => {
      const sim = await simulate(seed, { faults: { minDelayMs: 1, maxDelayMs: 20, dropRate: 0.05, duplicateRate: 0.05 } })
      const { session } = await ceremony(sim)
      await sim.runUntil(() => sim.runtimes.every((r) => ['completed', 'failed'].includes(r.sessions.get(session.id)?.state().status ?? '')), 5_000)
      return sim.traceText()
    }
    const a = await run(7)
    const b = await run(7)
    const c = await run(8)
    expect(a.length).toBeGreaterThan(1000)
    expect(b).toBe(a)
    expect(c).not.toBe(a)
  })

  it('a partitioned peer makes every peer end Failed with a timeout at the deadline, exactly once', async () => {
    const sim = await simulate(3, { faults: { minDelayMs: 1, maxDelayMs: 5 } })
    const victim = sim.runtimes[2]!
    const { session } = await ceremony(sim, 1_000)
    // invites are through (createSession resolved); cut the third peer off before the protocol ends
    sim.hub.partition([[sim.runtimes[0]!.peerId, sim.runtimes[1]!.peerId], [victim.peerId]])
    const start = sim.clock.now()
    // The cut-off peer takes its outcome from the leader, so the link comes back at the deadline.
    const deadlineAt = victim.sessions.get(session.id)!.state().deadlineAt
    sim.clock.setTimeout(() => sim.hub.heal(), deadlineAt - sim.clock.now())
    const ended = await sim.runUntil(() => sim.runtimes.every((r) => FINALS.includes(r.sessions.get(session.id)?.state().status ?? '')), 3_000)
    expect(ended).toBe(true)
    for (const runtime of sim.runtimes) {
      const view = runtime.sessions.get(session.id)!.state()
      expect(view.status).toBe('failed')
      expect(view.outcome?.kind).toBe('timeout')
      expect(sim.clock.now()).toBeGreaterThanOrEqual(view.deadlineAt)
    }
    // the cut-off peer's first request for the verdict went into the partition: one request
    // timeout (1 s) later it asks again and gets it
    expect(sim.clock.now() - start).toBeLessThan(2_500)
    for (const entries of finalEntries(sim.trace, 'session', FINALS).values()) expect(entries).toHaveLength(1)
    expect(lifecycleViolations(sim.trace, sessionMachine, 'session')).toEqual([])
  })
})
