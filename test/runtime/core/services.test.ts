// The service contract: createRuntime starts the defaults and the configured services in
// dependency order (each factory sees only Components and its dependencies' APIs), stops them in
// reverse, and refuses configs it cannot honour with ConfigInvalid before anything starts.
import { afterEach, describe, expect, it } from 'vitest'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { startOrder } from '../../../runtime/core/services.js'
import type { ServiceFactory } from '../../../runtime/core/components.js'
import { crdt } from '../../../runtime/crdt/service.js'
import { antiEntropy } from '../../../runtime/anti-entropy/service.js'
import { sessions } from '../../../runtime/sessions/service.js'
import { transport } from '../../../runtime/transport/service.js'
import { replication, storage } from '../../../runtime/storage/service.js'
import { gCounter, type GCounterState } from '../../../runtime/crdt/lattices/index.js'
import { sharing } from '../../fixtures/crdt-access.js'

const runtimes: Runtime<unknown>[] = []
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.stop()
})

/** A service that records when it is created, started and stopped, and what it depended on. */
function recorder(log: string[], name: string, dependsOn: string[] = []): ServiceFactory<{ name: string; saw: string[] }> {
  return {
    kind: 'recorder',
    dependsOn,
    create: (components, deps) => {
      log.push(`create ${name}`)
      expect(typeof components.router.request).toBe('function')
      return {
        api: { name, saw: Object.keys(deps) },
        start: () => void log.push(`start ${name}`),
        stop: () => void log.push(`stop ${name}`),
      }
    },
  }
}

describe('services', () => {
  it('start after what they depend on, whatever order they are given in, and stop in reverse', async () => {
    const log: string[] = []
    const runtime = await createRuntime({
      transport: 'memory',
      services: { top: recorder(log, 'top', ['middle']), middle: recorder(log, 'middle', ['bottom', 'storage']), bottom: recorder(log, 'bottom') },
    })
    runtimes.push(runtime)
    expect(log).toEqual(['create bottom', 'start bottom', 'create middle', 'start middle', 'create top', 'start top'])
    expect(runtime.services.middle.saw).toEqual(['bottom', 'storage'])
    expect(runtime.services.storage).toBe(runtime.storage)
    await runtime.stop()
    expect(log.slice(6)).toEqual(['stop top', 'stop middle', 'stop bottom'])
  })

  it('a CRDT collection and its anti-entropy are services: two peers converge with one round', async () => {
    const make = () =>
      createRuntime({
        transport: 'memory',
        services: {
          notes: crdt({ namespace: 'notes' }),
          sync: antiEntropy({ crdt: 'notes', periodic: false, syncInterval: 60_000, peerSelection: { kind: 'random', k: 1 } }),
        },
      })
    const [a, b] = await Promise.all([make(), make()])
    runtimes.push(a, b)
    await a.connect(b.addresses()[0]!)
    await sharing([a.services.notes, b.services.notes])
    b.services.notes.cv('visits', gCounter)
    await b.services.notes.mutate<GCounterState>('visits', (s, replica) => gCounter.increment(s, replica, 3))
    const round = await a.services.sync.runRound()
    expect(round.failed).toBe(0)
    expect(gCounter.value(a.services.notes.state<GCounterState>('visits'))).toBe(3)
  })

  it('every option of a default service is reachable from createRuntime', async () => {
    const runtime = await createRuntime({ transport: 'memory', services: { transport: transport({ poolLimit: 3 }), replication: replication({ window: 7 }) } })
    runtimes.push(runtime)
    expect(runtime.transport.pool().limit).toBe(3)
    expect(runtime.services.transport).toBe(runtime.transport)
  })

  it('addService starts one more after its dependencies, and a taken name is a Conflict', async () => {
    const runtime = await createRuntime({ transport: 'memory' })
    runtimes.push(runtime)
    const notes = await runtime.addService('notes', crdt({ namespace: 'notes' }))
    expect(notes.collection).toBe('notes')
    await expect(runtime.addService('notes', crdt({ namespace: 'other' }))).rejects.toMatchObject({ code: 'CONFLICT' })
    await expect(
      runtime.addService('late', antiEntropy({ crdt: 'missing', syncInterval: 1_000, peerSelection: { kind: 'random', k: 1 } })),
    ).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
  })
})

describe('service configs are refused before anything starts', () => {
  it('a factory validates its init when called', () => {
    expect(() => crdt({ namespace: 5 as never })).toThrow(/invalid crdt service config: namespace/)
    expect(() => storage({ trustedRoots: 'me' as never })).toThrow(/trustedRoots/)
    expect(() => sessions({ autoJoin: 'yes' as never })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }))
  })

  it('a missing dependency, a cycle, a default replaced by another kind, or options given twice', async () => {
    const log: string[] = []
    expect(() => startOrder({ a: recorder(log, 'a', ['b']), b: recorder(log, 'b', ['a']) })).toThrow(/cycle: a → b → a/)
    await expect(createRuntime({ transport: 'memory', services: { a: recorder(log, 'a', ['nowhere']) } })).rejects.toThrow(/depends on 'nowhere'/)
    await expect(createRuntime({ transport: 'memory', services: { sessions: crdt() } })).rejects.toThrow(/must be a sessions service/)
    await expect(createRuntime({ transport: 'memory', sessions: { autoJoin: true }, services: { sessions: sessions() } })).rejects.toThrow(/in one place/)
    await expect(createRuntime({ transport: 'memory', services: { 'bad name': recorder(log, 'x') } })).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    await expect(createRuntime({ transport: 'memory', services: { x: { create: () => ({ api: 1 }) } as never } })).rejects.toThrow(/service factory/)
    expect(log).toEqual([])
  })
})
