// Finished sessions do not pile up: each is dropped from memory and storage `retainFinishedMs`
// after it finished (timed on the clock effect, here the simulation's virtual clock).
import { afterEach, describe, expect, it } from 'vitest'
import { z } from 'zod'
import { Simulation } from '../../../runtime/testing/simulation.js'
import { defineChoreography } from '../../../runtime/sessions/choreography.js'
import type { Runtime } from '../../../runtime/core/runtime.js'
import { createRuntime } from '../../../runtime/core/runtime.js'
import { MemoryStorage } from '../../../effects/storage/index.js'
import { VirtualClock } from '../../../effects/time/index.js'
import { SeededRandom } from '../../../effects/random/index.js'
import { Ed25519Crypto } from '../../../effects/crypto/index.js'
import { SimulatedNetworkHub } from '../../../effects/network/index.js'
import { drive } from '../../fixtures/simulation-drive.js'
import { componentsOf } from '../../../runtime/core/components.js'

const sims: Simulation[] = []
afterEach(async () => {
  for (const sim of sims.splice(0)) await sim.stop()
})

const hello = defineChoreography({
  name: 'hello',
  roles: ['a', 'b'],
  steps: [{ label: 'hello', from: 'a', to: ['b'], payload: z.object({ n: z.number() }), produce: () => ({ n: 1 }) }],
})

const RETAIN_MS = 1_000
const stored = (rt: Runtime) => [...componentsOf(rt).storage.namespace('aura.sessions').range()].map((e) => String(e.key))

describe('finished session retention', () => {
  it('a completed session is readable for retainFinishedMs, then gone from memory and storage on every peer', async () => {
    const sim = await Simulation.create({
      seed: 9,
      peers: 2,
      faults: { minDelayMs: 1, maxDelayMs: 3 },
      runtime: { protocols: [hello], sessions: { autoJoin: true, retainFinishedMs: RETAIN_MS } },
    })
    sims.push(sim)
    const [a, b] = sim.runtimes as [Runtime, Runtime]
    b.sessions.invitations$.subscribe((invite) => void b.sessions.executeProtocol(invite.sessionId, invite.protocol))
    const roster = [
      { peerId: a.peerId, role: 'a' },
      { peerId: b.peerId, role: 'b' },
    ]
    const session = (await drive(sim, a.sessions.createSession('hello', roster, { timeoutMs: 60_000, protocol: 'hello' }), 1_000)).value!
    const result = await drive(sim, session.executeProtocol(), 1_000)
    expect(result.value?.status).toBe('completed')
    await sim.runUntil(() => b.sessions.get(session.id)?.state().status === 'completed', 1_000)
    const finishedAt = sim.clock.now()
    await sim.run(RETAIN_MS - 100)
    for (const peer of [a, b]) {
      expect(peer.sessions.get(session.id)?.state().status).toBe('completed')
      expect(stored(peer)).toContain(session.id)
    }
    await sim.run(200)
    expect(sim.clock.now() - finishedAt).toBeGreaterThan(RETAIN_MS)
    for (const peer of [a, b]) {
      expect(peer.sessions.get(session.id)).toBeUndefined()
      expect(peer.sessions.list()).toEqual([])
      expect(stored(peer)).toEqual([])
    }
  })

  it('a restarted peer keeps a finished session only for what is left of its retention', async () => {
    const clock = new VirtualClock(1_700_000_000_000)
    const storage = new MemoryStorage()
    const random = new SeededRandom(3)
    const crypto = await Ed25519Crypto.fromSeed(new Uint8Array(32).fill(3))
    const config = { protocols: [hello], sessions: { retainFinishedMs: RETAIN_MS } }
    // the same peer twice: same identity and storage, a fresh network endpoint each time
    const effects = () => ({ clock, storage, random, crypto, network: new SimulatedNetworkHub({ clock, random }).createNetwork(crypto.peerId) })
    const first = await createRuntime({ ...config, effects: effects() })
    const session = await first.sessions.createSession('hello', [{ peerId: first.peerId, role: 'a' }], { timeoutMs: 100 })
    await clock.advance(150) // timed out: finished at about +100
    expect(session.state().status).toBe('failed')
    await first.stop()
    await clock.advance(600)
    const second = await createRuntime({ ...config, effects: effects() })
    try {
      expect(second.sessions.get(session.id)?.state().status).toBe('failed')
      await clock.advance(300) // +1050: not yet RETAIN_MS after it finished
      expect(second.sessions.get(session.id)?.state().status).toBe('failed')
      await clock.advance(100) // +1150: past it
      expect(second.sessions.get(session.id)).toBeUndefined()
      expect(stored(second)).toEqual([])
    } finally {
      await second.stop()
    }
  })
})
