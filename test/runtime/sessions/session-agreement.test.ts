// Sessions end the same way on every participant. The case that used to split them: in a
// two-party greeting (client → server 'hello', server → client 'welcome') the client gets
// 'welcome' and is done, but its acknowledgement never reaches the server, whose delivery of
// 'welcome' then runs into the deadline. Each peer deciding alone ended client completed/success,
// server failed/timeout. Now the leader (whichever of the two created the session) decides.
import { afterEach, describe, expect, it } from 'vitest'
import { Simulation } from '../../../runtime/testing/simulation.js'
import type { Runtime } from '../../../runtime/core/runtime.js'
import { drive } from '../../fixtures/simulation-drive.js'
import { greeting } from '../../fixtures/greeting.js'
import { componentsOf } from '../../../runtime/core/components.js'

const FINALS = ['completed', 'failed', 'cancelled']

const simulations: Simulation[] = []
afterEach(async () => {
  for (const sim of simulations.splice(0)) await sim.stop()
})

/** The greeting's two peers; the one that does not lead runs what it is invited to (unless told not to). */
async function greetingPair(options: { retainFinishedMs?: number; invitedRuns?: boolean; leads?: 'client' | 'server' } = {}) {
  const sim = await Simulation.create({
    seed: 'agreement',
    peers: 2,
    faults: { minDelayMs: 1, maxDelayMs: 5 },
    runtime: {
      protocols: [greeting],
      sessions: { autoJoin: true, ...(options.retainFinishedMs !== undefined ? { retainFinishedMs: options.retainFinishedMs } : {}) },
    },
  })
  simulations.push(sim)
  const [client, server] = sim.runtimes as [Runtime, Runtime]
  const invited = options.leads === 'server' ? client : server
  if (options.invitedRuns ?? true) {
    invited.sessions.invitations$.subscribe((invite) => void invited.sessions.executeProtocol(invite.sessionId, invite.protocol).catch(() => undefined))
  }
  return { sim, client, server }
}

const rosterOf = (client: Runtime, server: Runtime) => [
  { peerId: client.peerId, role: 'client' },
  { peerId: server.peerId, role: 'server' },
]

const ending = (runtime: Runtime, sessionId: string) => {
  const view = runtime.sessions.get(sessionId)?.state()
  return view ? `${view.status}/${view.outcome?.kind ?? '-'}` : 'unknown'
}

describe('session outcome agreement', () => {
  it.each(['client', 'server'] as const)("a lost acknowledgement of the server's last message does not split the outcome (%s leads)", async (leads) => {
    const { sim, client, server } = await greetingPair({ leads })
    const roster = rosterOf(client, server)
    const leader = leads === 'client' ? client : server
    let sessionId: string | undefined
    // The moment the client holds 'welcome' (its cursor passes the last step), cut the link: the
    // acknowledgement it is about to send is lost, and so is every retry the server makes.
    let cut = false
    client.events$.subscribe((event) => {
      if (cut || sessionId === undefined || event.type !== 'transition' || event.machine !== 'session') return
      if ((client.sessions.get(sessionId)?.state().cursor ?? 0) >= 2) {
        cut = true
        sim.hub.partition([[client.peerId], [server.peerId]])
      }
    })
    void leader.sessions.createSession('greeting', roster, { timeoutMs: 1_000, protocol: 'greeting' }).then((session) => {
      sessionId = session.id
      void session.executeProtocol().catch(() => undefined)
    })
    expect(await sim.runUntil(() => cut, 1_000)).toBe(true)
    const id = sessionId!
    const deadlineAt = server.sessions.get(id)!.state().deadlineAt
    // Past the deadline the link comes back, as it does in the chaos campaign.
    await sim.runUntil(() => sim.clock.now() > deadlineAt + 100, 2_000)
    sim.hub.heal()
    const ended = await sim.runUntil(() => [client, server].every((r) => FINALS.includes(r.sessions.get(id)?.state().status ?? '')), 30_000)
    expect(ended).toBe(true)
    expect(ending(server, id)).toBe(ending(client, id))
    // Client leads: 'welcome' was the server's last act and carried its done report, so the leader
    // had everything and decided success; the server, never acknowledged, asks and adopts it.
    // Server leads: it never learnt that 'welcome' arrived and cannot decide success, so the
    // agreed outcome is a timeout.
    expect(ending(client, id)).toBe(leads === 'client' ? 'completed/success' : 'failed/timeout')
  })

  it('a leader that already forgot the session still answers a participant asking late', async () => {
    // retention 0: the leader drops the finished session at once, keeping only its verdict
    const { sim, client, server } = await greetingPair({ retainFinishedMs: 0 })
    let sessionId: string | undefined
    void client.sessions.createSession('greeting', rosterOf(client, server), { timeoutMs: 1_000, protocol: 'greeting' }).then((session) => {
      sessionId = session.id
      // the server is cut off as soon as the protocol starts, so it learns nothing until the deadline
      sim.hub.partition([[client.peerId], [server.peerId]])
      void session.executeProtocol().catch(() => undefined)
    })
    expect(await sim.runUntil(() => sessionId !== undefined, 1_000)).toBe(true)
    const id = sessionId!
    expect(await sim.runUntil(() => client.sessions.get(id) === undefined, 2_000)).toBe(true)
    // the server's deadline (a few ms later on its clock: the invite's time in flight) has it ask
    expect(await sim.runUntil(() => server.sessions.get(id)?.state().status === 'agreeing', 1_000)).toBe(true)
    const serverResult = server.sessions.result(id)
    await sim.run(100)
    expect(client.sessions.get(id)).toBeUndefined()
    sim.hub.heal()
    // (retention 0 applies to the server too, so its ending is read from its result)
    const ended = await drive(sim, serverResult, 5_000)
    expect(`${ended.value?.status}/${ended.value?.outcome.kind}`).toBe('failed/timeout')
    // and what the leader kept answers anyone asking later still
    const answer = await drive(
      sim,
      componentsOf(server).router.request(client.peerId, 'session', { kind: 'report', payload: { sessionId: id, kind: 'timeout' } }),
      1_000,
    )
    expect(answer.value).toEqual({ verdict: { kind: 'timeout' } })
  })

  it('only the leader gives a verdict and only the leader takes reports: anything else is refused and changes nothing', async () => {
    const { sim, client, server } = await greetingPair({ invitedRuns: false })
    const session = (await drive(sim, client.sessions.createSession('greeting', rosterOf(client, server), { timeoutMs: 5_000, protocol: 'greeting' }), 1_000))
      .value!
    const result = session.executeProtocol()
    await sim.run(50)
    const before = [client, server].map((r) => r.sessions.get(session.id)!.state())
    const attempts = [
      // the server is no leader: its verdict is not the client's to take
      drive(
        sim,
        componentsOf(server).router.request(client.peerId, 'session', { kind: 'verdict', payload: { sessionId: session.id, kind: 'success' } }),
        1_000,
      ),
      // nor does it collect reports
      drive(sim, componentsOf(client).router.request(server.peerId, 'session', { kind: 'report', payload: { sessionId: session.id, kind: 'done' } }), 1_000),
      // malformed: a kind that does not exist, an extra field
      drive(
        sim,
        componentsOf(server).router.request(client.peerId, 'session', { kind: 'report', payload: { sessionId: session.id, kind: 'finished' } }),
        1_000,
      ),
      drive(
        sim,
        componentsOf(client).router.request(server.peerId, 'session', { kind: 'verdict', payload: { sessionId: session.id, kind: 'success', extra: 1 } }),
        1_000,
      ),
    ]
    const errors = (await Promise.all(attempts)).map((outcome) => (outcome.error as { code?: string } | undefined)?.code)
    expect(errors).toEqual(['PERMISSION_DENIED', 'PERMISSION_DENIED', 'INVALID_INPUT', 'INVALID_INPUT'])
    expect([client, server].map((r) => r.sessions.get(session.id)!.state())).toEqual(before)
    // the session itself goes on and ends alike
    void server.sessions.executeProtocol(session.id, 'greeting')
    expect((await drive(sim, result, 2_000)).value?.status).toBe('completed')
    expect(await sim.runUntil(() => ending(server, session.id) === 'completed/success', 1_000)).toBe(true)
  })
})
