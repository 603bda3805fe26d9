import { afterEach, describe, expect, it } from 'vitest'
import { Simulation } from '../../../runtime/testing/simulation.js'
import { thresholdCeremony } from '../../../runtime/sessions/protocols/threshold-ceremony.js'
import { sessionMachine } from '../../../machines/session.js'
import { lifecycleViolations, finalEntries } from '../../../runtime/testing/trace-check.js'
import type { Runtime } from '../../../runtime/core/runtime.js'
import { CrashableClock } from '../../../effects/time/index.js'
import type { Session } from '../../../runtime/sessions/session-manager.js'
import { componentsOf } from '../../../runtime/core/components.js'

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
        return Object.values(results)
          .flatMap((byPeer) => Object.values(byPeer).map((p) => p.groupKey))
          .filter(Boolean)
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

describe('simulation: a real crash and restart', () => {
  it('a crashed runtime is dead: its timers never fire again and its storage view refuses writes', async () => {
    const sim = await simulate(11, { faults: { minDelayMs: 1, maxDelayMs: 5 } })
    const dead = sim.runtimes[1]!
    const fired: string[] = []
    componentsOf(dead).clock.setTimeout(() => fired.push('set before the crash'), 100)
    await componentsOf(dead).storage.namespace('disk').put('before', 1)
    sim.crash(1)
    expect(sim.isDown(1)).toBe(true)
    expect((componentsOf(dead).clock as CrashableClock).pendingTimers()).toBe(0)
    componentsOf(dead).clock.setTimeout(() => fired.push('set after the crash'), 10)
    await expect(componentsOf(dead).storage.namespace('disk').put('after', 2)).rejects.toMatchObject({ code: 'STORAGE' })
    await expect(componentsOf(dead).storage.namespace('disk').delete('before')).rejects.toMatchObject({ code: 'STORAGE' })
    await expect(componentsOf(dead).storage.batch([{ type: 'put', namespace: 'disk', key: 'batched', value: 3 }])).rejects.toMatchObject({ code: 'STORAGE' })
    await sim.run(5_000)
    expect(fired).toEqual([])
    // what was written before the crash is still readable; nothing after it landed
    expect(componentsOf(dead).storage.namespace('disk').get('before')).toBe(1)
    expect(componentsOf(dead).storage.namespace('disk').has('after')).toBe(false)
    expect(sim.runtimes[0]!.connectedPeers()).not.toContain(dead.peerId)
    expect(() => sim.crash(1)).toThrow(/already down/)
  })

  it('a restarted peer keeps its peer id and its stored data, gets a new runtime and reconnects; onStart runs for every start', async () => {
    const starts: string[] = []
    const sim = await simulate(12, {
      faults: { minDelayMs: 1, maxDelayMs: 5 },
      onStart: (runtime, index, { life }) => void starts.push(`${index}/${life}/${runtime.peerId.slice(-4)}`),
    })
    const old = sim.runtimes[2]!
    await componentsOf(old).storage.namespace('disk').put('kept', 'yes')
    await expect(sim.restart(2)).rejects.toThrow(/not down/)
    sim.crash(2)
    await sim.run(100)
    const restarted = await sim.restart(2)
    expect(restarted).not.toBe(old)
    expect(sim.runtimes[2]).toBe(restarted)
    expect(sim.isDown(2)).toBe(false)
    expect(restarted.peerId).toBe(old.peerId)
    expect(componentsOf(restarted).storage.namespace('disk').get('kept')).toBe('yes')
    await sim.run(100)
    expect(restarted.connectedPeers()).toEqual([sim.runtimes[0]!.peerId, sim.runtimes[1]!.peerId].sort())
    for (const other of sim.runtimes.slice(0, 2)) expect(other.connectedPeers()).toContain(restarted.peerId)
    const tail = old.peerId.slice(-4)
    expect(starts).toEqual([`0/0/${sim.runtimes[0]!.peerId.slice(-4)}`, `1/0/${sim.runtimes[1]!.peerId.slice(-4)}`, `2/0/${tail}`, `2/1/${tail}`])
    // the old incarnation stays dead after the restart
    await expect(componentsOf(old).storage.namespace('disk').put('late', 1)).rejects.toMatchObject({ code: 'STORAGE' })
  })

  it('a participant crashed mid-session and restarted resumes from storage; every peer ends the session the same way; same seed, same trace', async () => {
    const run = async (seed: number) => {
      const sim = await simulate(seed, {
        faults: { minDelayMs: 1, maxDelayMs: 20, dropRate: 0.05 },
        // the restarted participant's executeProtocol handler comes back with it
        onStart: (runtime, index, { life }) => {
          if (index === 0 || life === 0) return
          runtime.sessions.invitations$.subscribe((invite) => void runtime.sessions.executeProtocol(invite.sessionId, invite.protocol))
        },
      })
      // a long deadline: a step sent to the crashed peer waits min(remaining, 5 s) for its reply
      // before it is retried, so the retry that reaches the restarted peer comes after 5 s
      const { session } = await ceremony(sim, 20_000)
      const victim = sim.runtimes[2]!
      expect(victim.sessions.get(session.id)).toBeDefined()
      sim.crash(2)
      let restarted: Runtime | undefined
      sim.clock.setTimeout(() => void sim.restart(2).then((r) => (restarted = r)), 400)
      const ended = await sim.runUntil(
        () => restarted !== undefined && sim.runtimes.every((r) => FINALS.includes(r.sessions.get(session.id)?.state().status ?? '')),
        30_000,
      )
      expect(ended).toBe(true)
      expect(restarted!.peerId).toBe(victim.peerId)
      const views = sim.runtimes.map((r) => r.sessions.get(session.id)!.state())
      expect(new Set(views.map((v) => `${v.status}/${v.outcome?.kind ?? '-'}`)).size).toBe(1)
      expect(sim.trace.filter((e) => e.type === 'sim').map((e) => (e.type === 'sim' ? `${e.what}/${e.life}` : ''))).toEqual(['crash/0', 'restart/1'])
      return { trace: sim.traceText(), outcome: `${views[0]!.status}/${views[0]!.outcome?.kind ?? '-'}` }
    }
    const a = await run(21)
    const b = await run(21)
    expect(b.trace).toBe(a.trace)
    expect(b.outcome).toBe(a.outcome)
    // it resumed where it was: the restarted participant finished the ceremony with the others
    expect(a.outcome).toBe('completed/success')
  })
})
