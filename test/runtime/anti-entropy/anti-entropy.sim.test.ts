// Strong eventual consistency in the simulator: 5 peers make random changes to a PN-Counter,
// an OR-Set and a Yjs document while the network drops 10% of frames, duplicates, reorders,
// and partitions then heals. Anti-entropy (bloom digests on some peers, Merkle on others)
// must bring every replica to the same state, holding every acknowledged change. Seeds are
// fixed; fast-check prints the failing seed and case.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { orSet, pnCounter, type ORSetState, type PNCounterState } from '../../../runtime/crdt/lattices/index.js'
import { AntiEntropy, type AntiEntropyProgress } from '../../../runtime/anti-entropy/anti-entropy.js'
import { CrdtCoordinator } from '../../../runtime/crdt/crdt-coordinator.js'
import { Simulation } from '../../../runtime/testing/simulation.js'
import { sharing } from '../../fixtures/crdt-access.js'
import { componentsOf } from '../../../runtime/core/components.js'

const PEERS = 5

type Op = { peer: number; at: number; kind: 'inc' | 'dec' | 'add' | 'remove' | 'push'; amount: number }

const opArb: fc.Arbitrary<Op> = fc.record({
  peer: fc.integer({ min: 0, max: PEERS - 1 }),
  at: fc.integer({ min: 0, max: 1_500 }),
  kind: fc.constantFrom('inc', 'dec', 'add', 'remove', 'push'),
  amount: fc.integer({ min: 1, max: 5 }),
})

async function scenario(seed: number, ops: Op[], split: number) {
  const sim = await Simulation.create({ seed, peers: PEERS, faults: { dropRate: 0.1, duplicateRate: 0.1, reorder: true, minDelayMs: 1, maxDelayMs: 15 } })
  try {
    const ids = sim.runtimes.map((r) => r.peerId)
    const coordinators = await sharing(Promise.all(sim.runtimes.map((r) => CrdtCoordinator.attach(r, { requestTimeoutMs: 80 }))))
    for (const c of coordinators) {
      c.cv('counter', pnCounter)
      c.cv('set', orSet)
      c.yjs('doc')
    }
    const progress: AntiEntropyProgress[] = []
    const engines = await Promise.all(
      sim.runtimes.map((r, i) =>
        AntiEntropy.attach(r, coordinators[i]!, {
          syncInterval: 50,
          peerSelection: { kind: 'random', k: 2 },
          digest: i % 2 === 0 ? 'bloom' : 'merkle',
          retry: { maxAttempts: 2, initialDelayMs: 20, maxDelayMs: 40, multiplier: 2, jitter: 'full' },
          requestTimeoutMs: 80,
        }),
      ),
    )
    for (const e of engines) {
      e.progress$.subscribe((p) => progress.push(p))
      e.start()
    }

    // What was acknowledged (the local change resolved) is what every replica must end with.
    const expected = { counter: 0, added: new Set<string>(), removed: new Set<string>(), pushed: [] as string[] }
    const ownAdds = ids.map(() => [] as string[])
    ops.forEach((op, n) => {
      sim.clock.setTimeout(() => {
        const c = coordinators[op.peer]!
        switch (op.kind) {
          case 'inc':
          case 'dec': {
            const by = op.kind === 'inc' ? op.amount : -op.amount
            void c
              .mutate<PNCounterState>('counter', (s, r) => (by > 0 ? pnCounter.increment(s, r, by) : pnCounter.decrement(s, r, -by)))
              .then(() => (expected.counter += by))
            break
          }
          case 'add': {
            const element = `e${n}`
            void c
              .mutate<ORSetState>('set', (s, r) => orSet.add(s, r, element))
              .then(() => {
                expected.added.add(element)
                ownAdds[op.peer]!.push(element)
              })
            break
          }
          case 'remove': {
            const element = ownAdds[op.peer]!.shift()
            if (element !== undefined) void c.mutate<ORSetState>('set', (s, r) => orSet.remove(s, r, element)).then(() => expected.removed.add(element))
            break
          }
          case 'push': {
            const token = `t${n}`
            void c.edit('doc', (d) => d.getArray<string>('items').push([token])).then(() => expected.pushed.push(token))
            break
          }
        }
      }, op.at)
    })
    sim.clock.setTimeout(() => sim.hub.partition([ids.slice(0, split), ids.slice(split)]), 300)
    sim.clock.setTimeout(() => sim.hub.heal(), 900)
    await sim.run(1_600)

    const fingerprint = (c: CrdtCoordinator) => JSON.stringify([...c.digestEntries()].sort())
    const converged = () => coordinators.every((c) => fingerprint(c) === fingerprint(coordinators[0]!))
    const quiesced = await sim.runUntil(converged, 20_000, 50)
    const failedRetries = progress.filter((p) => p.type === 'PeerFailed')
    for (const e of engines) e.stop()
    return { sim, coordinators, engines, expected, quiesced, failedRetries, progress }
  } catch (error) {
    await sim.stop()
    throw error
  }
}

/** A round of `engine`; if priority picked the crashed peer first, the next one (it goes to the better-scored peer). */
async function roundPastTheCrashedPeer(sim: Simulation, engine: AntiEntropy): Promise<Awaited<ReturnType<AntiEntropy['runRound']>>> {
  for (let attempt = 0; ; attempt++) {
    let summary: Awaited<ReturnType<AntiEntropy['runRound']>> | undefined
    void engine.runRound().then((s) => (summary = s))
    expect(await sim.runUntil(() => summary !== undefined, 2_000)).toBe(true)
    if (summary!.failed === 0 || attempt === 1) return summary!
  }
}

describe('anti-entropy under faults (simulated)', () => {
  it('strong eventual consistency: after quiescence all replicas are equal and hold every acknowledged change', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 1_000_000 }),
        fc.array(opArb, { minLength: 15, maxLength: 40 }),
        fc.integer({ min: 1, max: PEERS - 1 }),
        async (seed, ops, split) => {
          const { sim, coordinators, expected, quiesced, progress } = await scenario(seed, ops, split)
          try {
            expect(quiesced, `did not converge (seed ${seed})`).toBe(true)
            const wantSet = [...expected.added].filter((e) => !expected.removed.has(e)).sort()
            for (const c of coordinators) {
              expect(pnCounter.value(c.state('counter'))).toBe(expected.counter)
              expect(orSet.values(c.state('set'))).toEqual(wantSet)
              expect(c.yjs('doc').doc.getArray<string>('items').toArray().sort()).toEqual([...expected.pushed].sort())
            }
            // the faults were real: frames were dropped and duplicated on the way
            expect(sim.trace.some((e) => e.type === 'net' && e.what === 'drop')).toBe(true)
            expect(sim.trace.some((e) => e.type === 'net' && e.what === 'duplicate')).toBe(true)
            expect(progress.some((p) => p.type === 'AllCompleted')).toBe(true)
            expect(expected.counter !== 0 || expected.added.size + expected.pushed.length > 0).toBe(true)
          } finally {
            await sim.stop()
          }
        },
      ),
      { numRuns: 6 },
    )
  })

  it('a partition is detected as differing digests and repaired after it heals; failures carry willRetry and attempt', async () => {
    const ops: Op[] = [0, 1, 2, 3, 4].map((peer) => ({ peer, at: 400 + peer, kind: 'inc', amount: peer + 1 }))
    const { sim, coordinators, quiesced, failedRetries, progress } = await scenario(4242, ops, 2)
    try {
      expect(quiesced).toBe(true)
      for (const c of coordinators) expect(pnCounter.value(c.state('counter'))).toBe(15)
      expect(failedRetries.length).toBeGreaterThan(0)
      expect(failedRetries.some((p) => p.type === 'PeerFailed' && p.willRetry && p.attempt === 1)).toBe(true)
      expect(failedRetries.some((p) => p.type === 'PeerFailed' && !p.willRetry)).toBe(true)
      const kinds = new Set(progress.map((p) => p.type))
      for (const kind of ['Started', 'DigestExchanged', 'Pulling', 'Pushing', 'PeerCompleted', 'PeerFailed', 'AllCompleted']) expect(kinds).toContain(kind)
      expect(progress.some((p) => p.type === 'DigestExchanged' && p.status !== 'equal')).toBe(true)
    } finally {
      await sim.stop()
    }
  })
})

describe('anti-entropy engine (simulated)', () => {
  async function pair(docs: number, config: Partial<Parameters<typeof AntiEntropy.attach>[2]> = {}) {
    const sim = await Simulation.create({ seed: 99, peers: 3, faults: { minDelayMs: 1, maxDelayMs: 2 } })
    const cs = await sharing(Promise.all(sim.runtimes.map((r) => CrdtCoordinator.attach(r))))
    for (let i = 0; i < docs; i++) for (const c of cs.slice(0, 2)) c.cv(`k${i}`, pnCounter)
    // the same state on both, by one write synced by hand, then a few differences
    for (let i = 0; i < docs; i++) await cs[0]!.mutate<PNCounterState>(`k${i}`, (s, r) => pnCounter.increment(s, r))
    await cs[1]!.handleSyncResponse(cs[0]!.handleSyncRequest(cs[1]!.createSyncRequest()))
    const engines = await Promise.all(
      sim.runtimes.map((r, i) =>
        AntiEntropy.attach(r, cs[i]!, { syncInterval: 1_000, peerSelection: { kind: 'round-robin' }, bloomFilterSize: 64, ...config }),
      ),
    )
    return { sim, cs, engines }
  }

  it.each(['bloom', 'merkle'] as const)('%s: a round transfers only the differing documents, in bytes far below the state size', async (digest) => {
    const { sim, cs, engines } = await pair(2_000, { digest, peerSelection: { kind: 'priority', peers: [] } })
    try {
      sim.hub.crash(sim.runtimes[2]!.peerId)
      for (const i of [3, 500, 1999]) await cs[1]!.mutate<PNCounterState>(`k${i}`, (s, r) => pnCounter.decrement(s, r, 2))
      const fullBytes = JSON.stringify(cs[0]!.createSyncRequest()).length
      const summary = await roundPastTheCrashedPeer(sim, engines[0]!)
      expect(summary.differing).toBe(3)
      expect(summary.pulled).toBe(3)
      for (const i of [3, 500, 1999]) expect(pnCounter.value(cs[0]!.state(`k${i}`))).toBe(-1)
      expect(summary.bytes).toBeLessThan(fullBytes * 0.25)
    } finally {
      await sim.stop()
    }
  })

  it('merkle: once the walk knows the differing buckets its last request pulls their documents; exchange() is left only what the peer needs back', async () => {
    // 4,000 documents: depth 2, and 40 differences spread past the dump budget, so the walk ends asking about known buckets
    const { sim, cs, engines } = await pair(4_000, { digest: 'merkle', peerSelection: { kind: 'priority', peers: [] } })
    try {
      sim.hub.crash(sim.runtimes[2]!.peerId)
      const theirs = Array.from({ length: 40 }, (_, i) => i * 100)
      const both = [100, 2_500]
      const ours = [3_999]
      for (const i of theirs) await cs[1]!.mutate<PNCounterState>(`k${i}`, (s, r) => pnCounter.decrement(s, r, 2))
      for (const i of [...both, ...ours]) await cs[0]!.mutate<PNCounterState>(`k${i}`, (s, r) => pnCounter.increment(s, r, 5))
      const exchanged: string[][] = []
      const exchange = cs[0]!.exchange.bind(cs[0]!)
      cs[0]!.exchange = (peer, names, hooks) => (exchanged.push([...(names ?? [])]), exchange(peer, names, hooks))
      const summary = await roundPastTheCrashedPeer(sim, engines[0]!)
      expect(summary.differing).toBe(theirs.length + ours.length)
      expect(summary.pulled).toBe(theirs.length)
      // pushed by exchange(): the documents both changed, and ours alone
      expect(exchanged.flat().sort()).toEqual([...both, ...ours].map((i) => `k${i}`).sort())
      for (const i of [...theirs, ...ours]) expect(cs[0]!.state(`k${i}`)).toEqual(cs[1]!.state(`k${i}`))
      expect(pnCounter.value(cs[1]!.state('k100'))).toBe(1 - 2 + 5)
    } finally {
      await sim.stop()
    }
  })

  it('only connected peers are chosen; round-robin cycles through them', async () => {
    const { sim, engines } = await pair(1)
    try {
      const chosen: string[][] = []
      engines[0]!.progress$.subscribe((p) => p.type === 'Started' && chosen.push(p.peers))
      for (let i = 0; i < 4; i++) {
        let done = false
        void engines[0]!.runRound().then(() => (done = true))
        await sim.runUntil(() => done, 2_000)
      }
      const others = sim.runtimes
        .slice(1)
        .map((r) => r.peerId)
        .sort()
      expect(chosen.map((c) => c.length)).toEqual([1, 1, 1, 1])
      expect([chosen[0]![0], chosen[1]![0]].sort()).toEqual(others)
      expect(chosen[2]).toEqual(chosen[0])
      expect(chosen.flat()).not.toContain(sim.runtimes[0]!.peerId)
      expect(engines[0]!.state()).toBe('idle')
      expect(engines[0]!.metrics().rounds).toBe(4)
    } finally {
      for (const e of engines) e.stop()
      await sim.stop()
    }
  })

  it('an oversized or malformed digest is a typed error, counted by the router, with no state change', async () => {
    const { sim, cs } = await pair(3, { maxDigestBytes: 2_048 })
    try {
      const [a, b] = sim.runtimes as [(typeof sim.runtimes)[0], (typeof sim.runtimes)[0]]
      const errors: string[] = []
      b.events$.subscribe((e) => e.type === 'error' && errors.push(e.code))
      const before = JSON.stringify([...cs[1]!.digestEntries()])
      const bad = [
        { digest: 'bloom', salt: 's', filter: new Uint8Array(10_000), count: 1 },
        { digest: 'bloom', salt: 's', filter: new Uint8Array([1, 2, 3]), count: 1 },
        // a node list that is not whole uint32 indices; a node the level does not have; a level
        // below the buckets; a depth out of range; the string prefixes of an older format
        { digest: 'merkle', op: 'children', depth: 2, level: 0, nodes: new Uint8Array(3) },
        { digest: 'merkle', op: 'children', depth: 2, level: 0, nodes: new Uint8Array([0, 0, 0, 7]) },
        { digest: 'merkle', op: 'children', depth: 2, level: 2, nodes: new Uint8Array(4) },
        { digest: 'merkle', op: 'buckets', depth: 99, nodes: new Uint8Array() },
        { digest: 'merkle', op: 'children', depth: 2, prefixes: ['0'] },
        // a compare naming too many parents; a last step whose pull is not a sync request
        { digest: 'merkle', op: 'compare', depth: 2, level: 1, nodes: new Uint8Array(4 * 129), children: new Uint8Array() },
        { digest: 'merkle', op: 'compare', depth: 1, level: 0, nodes: new Uint8Array(4), children: new Uint8Array(2), attach: { docs: 'x' } },
        { digest: 'full-list', ids: ['a'] },
      ]
      const outcomes: unknown[] = []
      for (const payload of bad)
        void componentsOf(a)
          .router.request(b.peerId, 'anti-entropy', { kind: 'digest', payload }, 500)
          .catch((e) => outcomes.push(e))
      expect(await sim.runUntil(() => outcomes.length === bad.length, 2_000)).toBe(true)
      for (const o of outcomes) expect(o).toMatchObject({ code: 'INVALID_INPUT' })
      expect(errors.filter((c) => c === 'INVALID_INPUT')).toHaveLength(bad.length)
      expect(JSON.stringify([...cs[1]!.digestEntries()])).toBe(before)
    } finally {
      await sim.stop()
    }
  })
})
