// The seed's composition examples, in TypeScript, over libp2p TCP with LMDB.
//
// Replicated storage with anti-entropy: a write is stored locally (capability-checked), replicated
// with the async policy, and whatever replication could not deliver (a peer was down) is repaired
// by anti-entropy rounds; the CRDT state anti-entropy reconciles converges as well.
import { afterEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime, type Runtime } from '../../runtime/core/runtime.js'
import { CrdtCoordinator } from '../../runtime/crdt/crdt-coordinator.js'
import { AntiEntropy } from '../../runtime/anti-entropy/anti-entropy.js'
import { orSet, type ORSetState } from '../../runtime/crdt/lattices/index.js'
import type { CapabilityToken } from '../../runtime/core/capability.js'
import { sharing } from '../fixtures/crdt-access.js'

const HOUR = 3_600_000
const stops: Array<() => Promise<void>> = []
const dirs: string[] = []
afterEach(async () => {
  for (const stop of stops.splice(0).reverse()) await stop()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

interface Peer {
  runtime: Runtime
  crdt: CrdtCoordinator
  antiEntropy: AntiEntropy
}

async function peer(dataDir: string): Promise<Peer> {
  const runtime = await createRuntime({ dataDir })
  stops.push(() => runtime.stop())
  const crdt = await CrdtCoordinator.attach(runtime)
  crdt.cv('tags', orSet)
  const antiEntropy = await AntiEntropy.attach(runtime, crdt, { syncInterval: 150, peerSelection: { kind: 'random', k: 2 }, digest: 'merkle' })
  return { runtime, crdt, antiEntropy }
}

async function eventually(check: () => boolean | Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms
  while (!(await check())) {
    if (Date.now() > end) throw new Error('condition not reached in time')
    await new Promise((r) => setTimeout(r, 50))
  }
}

describe('composition', () => {
  it('replicated storage with anti-entropy: a peer that was down gets the write and the CRDT state from later rounds', async () => {
    const folders = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), 'aura-compose-')))
    dirs.push(...folders)
    const [a, b, c] = (await Promise.all(folders.map(peer))) as [Peer, Peer, Peer]
    for (const [x, y] of [
      [a, b],
      [a, c],
      [b, c],
    ] as const)
      await x.runtime.connect(y.runtime.addresses()[0]!)
    // The three replicas of the collection let each other in (c keeps its tokens across its restart).
    await sharing([a.crdt, b.crdt, c.crdt])

    // Each receiver's owner lets `a` replicate into its default namespace.
    const window = { notBefore: Date.now() - HOUR, expiresAt: Date.now() + HOUR }
    const capability: Record<string, CapabilityToken> = {}
    for (const receiver of [b, c]) {
      capability[receiver.runtime.peerId] = await receiver.runtime.storage.grant({
        audience: a.runtime.peerId,
        namespace: 'default',
        rights: ['replicate'],
        ...window,
      })
    }

    // c goes down before the write.
    const cId = c.runtime.peerId
    await c.runtime.stop() // idempotent: the afterEach stop of it does nothing

    // Store locally, replicate (async), trigger anti-entropy: the TypeScript form of the seed's example.
    await a.runtime.storage.store('greeting', { text: 'hello' })
    await a.crdt.mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, 'urgent'))
    const replication = await a.runtime.replication.replicateToPeers(
      'default',
      ['greeting'],
      [b.runtime.peerId, cId],
      { kind: 'async' },
      { capability, timeoutMs: 1_000 },
    )
    await replication.settled.catch(() => undefined)
    expect(a.runtime.replication.pendingRepairs()).toEqual([{ peer: cId, namespace: 'default', key: 'greeting' }])
    a.runtime.replication.repairOn(a.antiEntropy.rounds$, { capability, timeoutMs: 1_000 })
    for (const p of [a, b]) p.antiEntropy.start()
    await eventually(async () => (await b.runtime.storage.load('greeting').catch(() => undefined)) !== undefined)

    // c comes back from the same LMDB folder (same identity) and rejoins.
    const back = await peer(folders[2]!)
    expect(back.runtime.peerId).toBe(cId)
    await back.runtime.connect(a.runtime.addresses()[0]!)
    await back.runtime.connect(b.runtime.addresses()[0]!)
    back.antiEntropy.start()

    await eventually(async () => a.runtime.replication.pendingRepairs().length === 0)
    expect(await back.runtime.storage.load('greeting')).toEqual({ text: 'hello' })
    await eventually(() => orSet.values(back.crdt.state<ORSetState>('tags')).includes('urgent'))
    expect(orSet.values(b.crdt.state<ORSetState>('tags'))).toEqual(['urgent'])
  }, 60_000)
})
