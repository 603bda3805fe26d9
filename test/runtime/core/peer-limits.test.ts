// Per-peer limits: a peer flooding us gets LIMIT_EXCEEDED answers (counted in metrics) while
// other peers are served as usual; the limits are config, validated with zod.
import { afterEach, describe, expect, it } from 'vitest'
import { Simulation } from '../../../runtime/testing/simulation.js'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { ConfigInvalid } from '../../../effects/errors.js'
import { drive } from '../../fixtures/simulation-drive.js'
import { componentsOf } from '../../../runtime/core/components.js'

const sims: Simulation[] = []
afterEach(async () => {
  for (const sim of sims.splice(0)) await sim.stop()
})

const RATE = 50

async function simulate() {
  const sim = await Simulation.create({
    seed: 11,
    peers: 3,
    faults: { minDelayMs: 1, maxDelayMs: 2 },
    runtime: { limits: { maxInboundPerPeerPerSecond: RATE } },
  })
  sims.push(sim)
  const [server, flooder, other] = sim.runtimes as [Runtime, Runtime, Runtime]
  await componentsOf(server).router.register('timeout', { ping: () => 'pong' })
  return { sim, server, flooder, other }
}

const ping = (from: Runtime, to: Runtime) =>
  componentsOf(from)
    .router.request(to.peerId, 'timeout', { kind: 'ping', payload: null })
    .then(
      (value) => ({ value }),
      (error: unknown) => ({ error }),
    )

describe('per-peer inbound rate limit', () => {
  it('a flood from one peer gets LIMIT_EXCEEDED answers and a metric; a second peer is still served', async () => {
    const { sim, server, flooder, other } = await simulate()
    const flood = Array.from({ length: 4 * RATE }, () => ping(flooder, server))
    const calm = Array.from({ length: 10 }, () => ping(other, server))
    const answers = (await drive(sim, Promise.all([...flood, ...calm]), 1_000)).value!
    const flooded = answers.slice(0, flood.length)
    expect(flooded.filter((a) => 'value' in a && a.value === 'pong')).toHaveLength(RATE) // a second's burst
    const refused = flooded.filter((a) => 'error' in a)
    expect(refused).toHaveLength(3 * RATE)
    for (const a of refused) expect((a as { error: unknown }).error).toMatchObject({ code: 'LIMIT_EXCEEDED' })
    expect(answers.slice(flood.length).every((a) => 'value' in a && a.value === 'pong')).toBe(true)
    expect(server.metrics().errors['LIMIT_EXCEEDED']).toBe(3 * RATE)

    // the bucket refills on the clock: a second later the flooder is served again
    await sim.run(1_000)
    const later = await drive(sim, ping(flooder, server), 1_000)
    expect(later.value).toEqual({ value: 'pong' })
  })

  it('a flood of bad messages is counted whole but answered only up to a bounded rate', async () => {
    const sim = await Simulation.create({ seed: 12, peers: 2, faults: { minDelayMs: 1, maxDelayMs: 2 } })
    sims.push(sim)
    const [server, flooder] = sim.runtimes as [Runtime, Runtime]
    await drive(
      sim,
      Promise.all(Array.from({ length: 600 }, () => componentsOf(flooder).router.send(server.peerId, 'timeout', { kind: 'no-such-kind', payload: null }))),
      500,
    )
    await sim.run(100)
    expect(server.metrics().errors['UNKNOWN_PROTOCOL']).toBe(600)
    // each answer the flooder got shows up on its side as a remote error
    const answered = flooder.metrics().errors['REMOTE_UNKNOWN_PROTOCOL'] ?? 0
    expect(answered).toBeGreaterThan(0)
    expect(answered).toBeLessThanOrEqual(200)
  })

  it('the limits are validated config', async () => {
    await expect(createRuntime({ limits: { maxInboundPerPeerPerSecond: 0 } })).rejects.toBeInstanceOf(ConfigInvalid)
    await expect(createRuntime({ limits: { maxStreamsPerPeer: 2 } })).rejects.toThrow(/maxStreamsPerPeer/)
    await expect(createRuntime({ limits: { maxConnections: -1 } })).rejects.toThrow(/maxConnections/)
    await expect(createRuntime({ sessions: { retainFinishedMs: -1 } })).rejects.toThrow(/retainFinishedMs/)
  })
})
