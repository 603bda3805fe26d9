// Sessions end the same way on every participant. The case that used to split them: in a
// two-party greeting (client → server 'hello', server → client 'welcome') the client gets
// 'welcome' and is done, but its acknowledgement never reaches the server, whose delivery of
// 'welcome' then runs into the deadline. Each peer deciding alone ended client completed/success,
// server failed/timeout.
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { defineChoreography } from '../../runtime/choreography.js'
import { Simulation } from '../../runtime/simulation.js'
import type { Runtime } from '../../runtime/runtime.js'

const FINALS = ['completed', 'failed', 'cancelled']

const greeting = defineChoreography({
  name: 'greeting',
  roles: ['client', 'server'],
  steps: [
    { label: 'hello', from: 'client', to: ['server'], payload: z.object({ text: z.string() }), produce: () => ({ text: 'hello' }) },
    { label: 'welcome', from: 'server', to: ['client'], payload: z.object({ text: z.string() }), produce: () => ({ text: 'welcome' }) },
  ],
})

const simulations: Simulation[] = []
afterEach(async () => {
  for (const sim of simulations.splice(0)) await sim.stop()
})

async function greetingPair() {
  const sim = await Simulation.create({
    seed: 'agreement',
    peers: 2,
    faults: { minDelayMs: 1, maxDelayMs: 5 },
    runtime: { protocols: [greeting], sessions: { autoJoin: true } },
  })
  simulations.push(sim)
  const [client, server] = sim.runtimes as [Runtime, Runtime]
  server.sessions.invitations$.subscribe((invite) => void server.sessions.executeProtocol(invite.sessionId, invite.protocol).catch(() => undefined))
  return { sim, client, server }
}

const ending = (runtime: Runtime, sessionId: string) => {
  const view = runtime.sessions.get(sessionId)?.state()
  return view ? `${view.status}/${view.outcome?.kind ?? '-'}` : 'unknown'
}

describe('session outcome agreement', () => {
  it("a lost acknowledgement of the server's last message does not split the outcome", async () => {
    const { sim, client, server } = await greetingPair()
    const roster = [
      { peerId: client.peerId, role: 'client' },
      { peerId: server.peerId, role: 'server' },
    ]
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
    void client.sessions.createSession('greeting', roster, { timeoutMs: 1_000, protocol: 'greeting' }).then((session) => {
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
    // The server never learnt that 'welcome' arrived, so it could not report done: not a success.
    expect(ending(client, id)).toBe('failed/timeout')
  })
})
