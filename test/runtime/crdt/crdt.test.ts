// CrdtCoordinator: the sync protocol in process, bad input, builders, and over real libp2p TCP
// (3 runtimes, each with its own LMDB folder) including persistence across a restart.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { firstValueFrom } from 'rxjs'
import { afterEach, describe, expect, it, vi } from 'vitest'
import {
  capabilitySet,
  createCmHandler,
  createCvHandler,
  createDeltaHandler,
  createMvHandler,
  gCounter,
  opCounter,
  orSet,
  pnCounter,
  VectorClock,
  type CvType,
  type ORSetState,
  type PNCounterState,
} from '../../../runtime/crdt/lattices/index.js'
import { CrdtCoordinator } from '../../../runtime/crdt/crdt-coordinator.js'
import { LOG_LIMIT } from '../../../runtime/crdt/persistence.js'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { Simulation } from '../../../runtime/testing/simulation.js'
import { sharing } from '../../fixtures/crdt-access.js'
import { drive } from '../../fixtures/simulation-drive.js'
import { componentsOf } from '../../../runtime/core/components.js'

/** One sync between two unattached coordinators, by hand: a pulls from b, then pushes. */
async function syncByHand(a: CrdtCoordinator, b: CrdtCoordinator) {
  const request = a.createSyncRequest()
  const response = b.handleSyncRequest(request, a.peerId)
  const applied = await a.handleSyncResponse(response, b.peerId)
  return { request, response, applied }
}

const snapshot = (c: CrdtCoordinator) =>
  Object.fromEntries(c.documents().map((n) => [n, JSON.stringify(c.document(n)!.version().encode()) + c.document(n)!.mark()]))

/** Two simulated peers sharing a G-Counter that b has incremented once; a's coordinator and b's peer id. */
async function counterPeers() {
  const sim = await Simulation.create({ seed: 9, peers: 2, faults: { minDelayMs: 1, maxDelayMs: 3 } })
  const [a, b] = await sharing(Promise.all(sim.runtimes.map((r) => CrdtCoordinator.attach(r, { requestTimeoutMs: 100 }))))
  a!.cv('counter', gCounter)
  b!.cv('counter', gCounter)
  await b!.mutate('counter', (s: ReturnType<typeof gCounter.bottom>, r) => gCounter.increment(s, r, 1))
  return { sim, a: a!, peer: sim.runtimes[1]!.peerId }
}

describe('sync protocol (in process)', () => {
  it('a response carries only what the requester lacks, computed from its versions', async () => {
    const a = new CrdtCoordinator('a')
    const b = new CrdtCoordinator('b')
    const ca = a.cv('counter', pnCounter)
    b.cv('counter', pnCounter)
    for (let i = 0; i < 5; i++) await a.mutate<PNCounterState>('counter', (s, r) => pnCounter.increment(s, r, 2))
    await b.mutate<PNCounterState>('counter', (s, r) => pnCounter.decrement(s, r, 3))

    const first = await syncByHand(b, a)
    expect(first.applied.changed).toEqual(['counter'])
    expect(pnCounter.value(b.state('counter'))).toBe(7)
    // b's own entries are not sent back to it: only a's
    expect(first.response.docs[0]!.payload).toEqual({ p: { a: 10 }, n: {} })

    const second = await syncByHand(b, a)
    expect(second.response.docs[0]!.payload).toBeUndefined()
    expect(second.applied.changed).toEqual([])
    expect(pnCounter.value(ca.state())).toBe(10)
  })

  it('an all-documents request also brings documents the requester never had, created by type name', async () => {
    const a = new CrdtCoordinator('a')
    const b = new CrdtCoordinator('b')
    await a.mutate<ORSetState>((a.cv('tags', orSet), 'tags'), (s, r) => orSet.add(s, r, 'x'))
    a.yjs('notes').doc.getText('t').insert(0, 'hello')
    await syncByHand(b, a)
    expect(b.documents()).toEqual(['notes', 'tags'])
    expect(orSet.values(b.state('tags'))).toEqual(['x'])
    expect(b.yjs('notes').doc.getText('t').toString()).toBe('hello')
  })

  it('a Yjs deletion (which does not move the state vector) still shows as a difference and syncs', async () => {
    const a = new CrdtCoordinator('a')
    const b = new CrdtCoordinator('b')
    a.yjs('d').doc.getText('t').insert(0, 'abcdef')
    await syncByHand(b, a)
    expect(snapshot(a)).toEqual(snapshot(b))
    a.yjs('d').doc.getText('t').delete(0, 3)
    expect(a.document('d')!.version().encode()).toEqual(b.document('d')!.version().encode())
    expect(snapshot(a)).not.toEqual(snapshot(b))
    await syncByHand(b, a)
    expect(b.yjs('d').doc.getText('t').toString()).toBe('def')
    expect(snapshot(a)).toEqual(snapshot(b))
  })

  it('Cm documents send the ops the peer has not delivered; meet documents their constraints', async () => {
    const a = new CrdtCoordinator('a').withCmHandler(createCmHandler(opCounter, 'a')).withMvHandler(createMvHandler(capabilitySet, 'a'))
    const b = new CrdtCoordinator('b').withCmHandler(createCmHandler(opCounter, 'b')).withMvHandler(createMvHandler(capabilitySet, 'b'))
    await a.emitOp('cm', { add: 5 })
    await b.emitOp('cm', { add: -2 })
    await a.constrain('mv', capabilitySet.of(['read', 'write']))
    await b.constrain('mv', capabilitySet.of(['read', 'admin']))
    await syncByHand(a, b)
    await syncByHand(b, a)
    expect(a.state('cm')).toBe(3)
    expect(b.state('cm')).toBe(3)
    for (const c of [a, b]) expect(capabilitySet.encode(c.state('mv'))).toEqual({ rights: ['read'] })
    const again = b.handleSyncRequest(a.createSyncRequest())
    expect(again.docs.every((d) => d.payload === undefined)).toBe(true)
  })

  it('builders register handlers under kind names and the delta threshold applies to delta documents', async () => {
    const c = CrdtCoordinator.withCvState('p', { type: gCounter })
    expect(c.documents()).toEqual(['cv'])
    const d = CrdtCoordinator.withDeltaThreshold('p', 3)
    const h = d.delta('deltas', gCounter)
    expect(h.threshold).toBe(3)
    const full = new CrdtCoordinator('q')
      .withCvHandler(createCvHandler(orSet))
      .withDeltaHandler(createDeltaHandler(gCounter, { threshold: 2 }))
      .withCmHandler(createCmHandler(opCounter, 'q'))
      .withMetricsEnabled(true)
    expect(full.documents()).toEqual(['cm', 'cv', 'delta'])
    expect(() => full.withCvHandler(createCvHandler(orSet))).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => CrdtCoordinator.withDeltaThreshold('p', 0)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    // metrics on: a handled request counts its bytes
    full.handleSyncRequest(new CrdtCoordinator('r').createSyncRequest())
    expect(full.metrics().bytesReceived).toBeGreaterThan(0)
    expect(full.metrics().bytesSent).toBeGreaterThan(0)
  })
})

describe('tombstone collection', () => {
  const removalsOf = (c: CrdtCoordinator, name: string) => (c.state(name) as ORSetState).removals.size

  it('the op log of a Cm document is compacted once every known peer delivered the ops; a new peer gets the snapshot', async () => {
    const a = new CrdtCoordinator('a')
    const b = new CrdtCoordinator('b')
    for (const c of [a, b]) c.cm('ops', opCounter)
    for (let i = 0; i < 20; i++) await a.emitOp('ops', { add: 1 })
    await syncByHand(b, a)
    await syncByHand(b, a) // b's second request tells a it delivered all 20
    const log = (c: CrdtCoordinator) => c.handler<ReturnType<typeof createCmHandler>>('ops').opsSince(VectorClock.empty).length
    expect(log(a)).toBe(20)
    expect(a.collectRemovals()).toEqual(['ops'])
    expect(log(a)).toBe(0)
    expect(a.state('ops')).toBe(20)
    // a peer a never heard of is sent the snapshot and the ops after it, over the wire form
    await a.emitOp('ops', { add: 5 })
    const fresh = new CrdtCoordinator('fresh')
    await syncByHand(fresh, a)
    expect(fresh.state('ops')).toBe(25)
    expect(log(fresh)).toBe(1)
    // and b, which already had the folded ops, only the new one
    const { response } = await syncByHand(b, a)
    expect(JSON.stringify(response)).not.toContain('snapshot')
    expect(b.state('ops')).toBe(25)
  })

  it('drops the removal records every known peer has seen; a peer behind them, or unknown, still converges', async () => {
    const a = new CrdtCoordinator('a')
    const b = new CrdtCoordinator('b')
    const late = new CrdtCoordinator('late')
    for (const c of [a, b, late]) c.cv('tags', orSet)
    await a.mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, 'x'))
    await syncByHand(late, a) // late holds x, then goes away
    for (let i = 0; i < 10; i++) await a.mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, `t${i}`))
    for (let i = 0; i < 10; i++) await a.mutate<ORSetState>('tags', (s, r) => orSet.remove(s, r, `t${i}`))
    await a.mutate<ORSetState>('tags', (s, r) => orSet.remove(s, r, 'x'))
    await syncByHand(b, a)
    await syncByHand(b, a) // b's next request tells a the version b reached
    expect(removalsOf(a, 'tags')).toBe(11)
    // late told a its version before the removals: they are not stable yet
    expect(a.collectRemovals()).toEqual([])
    expect(removalsOf(a, 'tags')).toBe(11)
    // once a hears late is gone (forgotten) the records go; late is then sent the whole state
    a.forgetPeer('late')
    expect(a.collectRemovals()).toEqual(['tags'])
    expect(removalsOf(a, 'tags')).toBe(0)
    await syncByHand(late, a)
    expect(orSet.values(late.state('tags'))).toEqual([])
    // a peer a never knew of converges too
    const stranger = new CrdtCoordinator('stranger')
    stranger.cv('tags', orSet)
    await stranger.mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, 'mine'))
    await syncByHand(stranger, a)
    await syncByHand(a, stranger)
    expect(orSet.values(stranger.state('tags'))).toEqual(['mine'])
    expect(orSet.values(a.state('tags'))).toEqual(['mine'])
  })
})

describe('bad input: typed error, state untouched', () => {
  async function seeded() {
    const c = new CrdtCoordinator('a')
    c.cv('counter', pnCounter)
    await c.mutate<PNCounterState>('counter', (s, r) => pnCounter.increment(s, r, 4))
    c.yjs('doc').doc.getText('t').insert(0, 'kept')
    return c
  }

  it.each([
    [
      'malformed vector clock in a request',
      (c: CrdtCoordinator) => c.handleSyncRequest({ all: true, docs: [{ name: 'counter', version: { a: -1 } }] }),
      'INVALID_INPUT',
    ],
    [
      'malformed vector clock in a response',
      (c: CrdtCoordinator) => c.handleSyncResponse({ docs: [{ name: 'counter', kind: 'cv', type: 'pn-counter', version: { b: 'x' } }] }),
      'INVALID_INPUT',
    ],
    [
      'bad Yjs update',
      (c: CrdtCoordinator) =>
        c.handleSyncResponse({ docs: [{ name: 'doc', kind: 'cv', type: 'yjs', version: {}, payload: new Uint8Array([1, 200, 7, 7, 7]) }] }),
      'DECODE',
    ],
    [
      'a valid entry followed by a bad one (nothing applied)',
      (c: CrdtCoordinator) =>
        c.handleSyncResponse({
          docs: [
            { name: 'counter', kind: 'cv', type: 'pn-counter', version: { z: 9 }, payload: { p: { z: 9 }, n: { z: 0 } } },
            { name: 'doc', kind: 'cv', type: 'yjs', version: {}, payload: new Uint8Array([1, 200, 7, 7, 7]) },
          ],
        }),
      'DECODE',
    ],
    [
      'kind mismatch',
      (c: CrdtCoordinator) => c.handleSyncResponse({ docs: [{ name: 'counter', kind: 'cv', type: 'g-counter', version: {} }] }),
      'INVALID_INPUT',
    ],
  ])('%s', async (_name, act, code) => {
    const c = await seeded()
    const before = { value: pnCounter.value(c.state('counter')), text: c.yjs('doc').doc.getText('t').toString(), docs: c.documents(), versions: snapshot(c) }
    await expect(Promise.resolve().then((): unknown => act(c))).rejects.toMatchObject({ code })
    expect({ value: pnCounter.value(c.state('counter')), text: c.yjs('doc').doc.getText('t').toString(), docs: c.documents(), versions: snapshot(c) }).toEqual(
      before,
    )
  })
})

describe('application types', () => {
  // An application's own type: a counter under its own name (what the registry sees is the name).
  const tally: CvType<ReturnType<typeof gCounter.bottom>> = { ...gCounter, name: 'tally' }

  it('a document of a type this peer lacks is skipped and reported; the others in the message still apply', async () => {
    const c = new CrdtCoordinator('a')
    c.cv('counter', pnCounter)
    const result = await c.handleSyncResponse({
      docs: [
        { name: 'custom', kind: 'cv', type: 'no-such-crdt', version: { b: 1 }, payload: {} },
        { name: 'counter', kind: 'cv', type: 'pn-counter', version: { b: 2 }, payload: { p: { b: 2 }, n: {} } },
      ],
    })
    expect(result.skipped).toEqual(['custom'])
    expect(result.changed).toEqual(['counter'])
    expect(pnCounter.value(c.state('counter'))).toBe(2)
    expect(c.documents()).toEqual(['counter'])
    expect(c.metrics().skippedUnknownType).toBe(1)
  })

  it('registerType makes an application type usable locally and creatable from a peer', async () => {
    const a = new CrdtCoordinator('a')
    const b = new CrdtCoordinator('b').registerType('tally', tally)
    const unaware = new CrdtCoordinator('c')
    a.cv('votes', tally) // first use registers it
    await a.mutate('votes', (s: ReturnType<typeof gCounter.bottom>, r) => gCounter.increment(s, r, 41))
    const applied = await b.handleSyncResponse(a.handleSyncRequest(b.createSyncRequest()), 'a')
    expect(applied.skipped).toEqual([])
    expect(b.document('votes')?.typeName).toBe('tally')
    expect(gCounter.value(b.state('votes'))).toBe(41)
    expect((await unaware.handleSyncResponse(a.handleSyncRequest(unaware.createSyncRequest()), 'a')).skipped).toEqual(['votes'])
    expect(() => b.registerType('other-name', tally)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => b.registerType('tally', { ...tally })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })
})

// ── over libp2p TCP ──────────────────────────────────────────────────────────────────────

const dirs: string[] = []
const runtimes: Runtime[] = []
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.stop()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

async function tcpRuntime(dataDir = mkdtempSync(join(tmpdir(), 'aura-crdt-'))) {
  if (!dirs.includes(dataDir)) dirs.push(dataDir)
  const runtime = await createRuntime({ dataDir })
  runtimes.push(runtime)
  return { runtime, dataDir }
}

describe('over libp2p TCP', () => {
  it('3 runtimes converge on a PN-Counter, an OR-Set and a Yjs doc, and know they are in sync', async () => {
    const peers = await Promise.all([0, 1, 2].map(() => tcpRuntime()))
    for (const a of peers) for (const b of peers) if (a !== b) await a.runtime.connect(b.runtime.addresses()[0]!)
    const cs = await sharing(Promise.all(peers.map((p) => CrdtCoordinator.attach(p.runtime))))
    const [c0, c1, c2] = cs as [CrdtCoordinator, CrdtCoordinator, CrdtCoordinator]
    for (const c of cs) {
      c.cv('counter', pnCounter)
      c.cv('set', orSet)
      c.yjs('doc')
    }
    await c0.mutate<PNCounterState>('counter', (s, r) => pnCounter.increment(s, r, 10))
    await c1.mutate<PNCounterState>('counter', (s, r) => pnCounter.decrement(s, r, 3))
    await c2.mutate<PNCounterState>('counter', (s, r) => pnCounter.increment(s, r, 1))
    await c0.mutate<ORSetState>('set', (s, r) => orSet.add(s, r, 'apple'))
    await c1.mutate<ORSetState>('set', (s, r) => orSet.add(s, r, 'pear'))
    await c2.mutate<ORSetState>('set', (s, r) => orSet.add(s, r, 'plum'))
    await c0.edit('doc', (d) => d.getArray<string>('items').push(['from-0']))
    await c1.edit('doc', (d) => d.getArray<string>('items').push(['from-1']))
    await c2.edit('doc', (d) => d.getArray<string>('items').push(['from-2']))

    expect(c0.syncStatus(peers[1]!.runtime.peerId).status).toBe('unknown')
    const synced = firstValueFrom(c0.synced$)
    const first = await c0.syncWithPeer(peers[1]!.runtime.peerId)
    expect(first.pulled.sort()).toEqual(['counter', 'doc', 'set'])
    expect(first.pushed.sort()).toEqual(['counter', 'doc', 'set'])
    expect(first.status.status).toBe('in-sync')
    expect((await synced).peerId).toBe(peers[1]!.runtime.peerId)
    await c2.syncWithPeer(peers[1]!.runtime.peerId)
    await c0.syncWithPeer(peers[2]!.runtime.peerId)
    // c0 learnt c2's changes since it last spoke to peer 1: it knows it is ahead of it
    expect(c0.syncStatus(peers[1]!.runtime.peerId).status).toBe('ahead')
    await c0.syncWithPeer(peers[1]!.runtime.peerId)

    for (const c of cs) {
      expect(pnCounter.value(c.state('counter'))).toBe(8)
      expect(orSet.values(c.state('set'))).toEqual(['apple', 'pear', 'plum'])
      expect(c.yjs('doc').doc.getArray<string>('items').toArray().sort()).toEqual(['from-0', 'from-1', 'from-2'])
    }
    for (const [c, other] of [
      [c0, peers[1]!],
      [c0, peers[2]!],
      [c2, peers[1]!],
    ] as const) {
      const status = c.syncStatus(other.runtime.peerId)
      expect(status.status).toBe('in-sync')
      expect(status.knownAt).toBeTypeOf('number')
      expect(status.docs.counter!.local).toEqual(status.docs.counter!.remote)
    }
    // a local change makes us 'ahead' of what we know the peer has
    await c0.mutate<PNCounterState>('counter', (s, r) => pnCounter.increment(s, r))
    expect(c0.syncStatus(peers[1]!.runtime.peerId).status).toBe('ahead')
    const metrics = c0.metrics()
    expect(metrics.syncCount).toBe(3)
    expect(metrics.errorCount).toBe(0)
    expect(metrics.avgLatencyMs).toBeGreaterThanOrEqual(0)
  })

  it('state survives a runtime restart (persisted in LMDB)', async () => {
    const { runtime, dataDir } = await tcpRuntime()
    const c = await CrdtCoordinator.attach(runtime)
    c.cv('counter', pnCounter)
    await c.mutate<PNCounterState>('counter', (s, r) => pnCounter.increment(s, r, 42))
    await c.mutate<ORSetState>((c.cv('set', orSet), 'set'), (s, r) => orSet.add(s, r, 'kept'))
    c.yjs('doc').doc.getText('t').insert(0, 'persisted text')
    await c.detach()
    await runtime.stop()
    runtimes.splice(runtimes.indexOf(runtime), 1)

    const again = await tcpRuntime(dataDir)
    expect(again.runtime.peerId).toBe(runtime.peerId)
    const restored = await CrdtCoordinator.attach(again.runtime)
    expect(restored.documents()).toEqual(['counter', 'doc', 'set'])
    expect(pnCounter.value(restored.state('counter'))).toBe(42)
    expect(orSet.values(restored.state('set'))).toEqual(['kept'])
    expect(restored.yjs('doc').doc.getText('t').toString()).toBe('persisted text')
    // and it keeps counting from where it was (same replica id, same entries)
    await restored.mutate<PNCounterState>('counter', (s, r) => pnCounter.increment(s, r))
    expect(pnCounter.value(restored.state('counter'))).toBe(43)
  })

  it('Yjs edits are appended to a log, compacted into one record past LOG_LIMIT, and restored', async () => {
    const { runtime, dataDir } = await tcpRuntime()
    const c = await CrdtCoordinator.attach(runtime)
    const stored = () => [...componentsOf(runtime).storage.namespace('crdt.default').range()]
    const logKeys = () => stored().filter((e) => Array.isArray(e.key)).length
    await c.edit('doc', (d) => d.getText('t').insert(0, 'a'))
    const record = stored().find((e) => e.key === 'doc')!.value
    for (const ch of 'bcd') await c.edit('doc', (d) => d.getText('t').insert(d.getText('t').length, ch))
    // later edits append: the whole-document record is not rewritten
    expect(logKeys()).toBe(3)
    expect(stored().find((e) => e.key === 'doc')!.value).toEqual(record)
    for (let i = 0; i < LOG_LIMIT + 5; i++) await c.edit('doc', (d) => d.getText('t').insert(d.getText('t').length, String(i % 10)))
    expect(logKeys()).toBeLessThan(LOG_LIMIT)
    c.yjs('doc').doc.getText('t').delete(0, 1)
    const text = c.yjs('doc').doc.getText('t').toString()
    await c.detach()
    await runtime.stop()
    runtimes.splice(runtimes.indexOf(runtime), 1)

    const again = await tcpRuntime(dataDir)
    const restored = await CrdtCoordinator.attach(again.runtime)
    expect(restored.yjs('doc').doc.getText('t').toString()).toBe(text)
    expect(restored.document('doc')!.mark()).not.toBe('')
    await restored.edit('doc', (d) => d.getText('t').insert(0, '!'))
    expect(restored.yjs('doc').doc.getText('t').toString()).toBe(`!${text}`)
  })

  it('Yjs updates that arrive between two writes go to the log as one entry holding them in order, and are restored', async () => {
    const { runtime, dataDir } = await tcpRuntime()
    const c = await CrdtCoordinator.attach(runtime)
    const entries = () => [...componentsOf(runtime).storage.namespace('crdt.default').range()].filter((e) => Array.isArray(e.key))
    await c.edit('doc', (d) => d.getText('t').insert(0, 'a'))
    const text = () => c.yjs('doc').doc.getText('t')
    // three transactions of their own, then an edit: four updates before the next write starts
    for (const ch of 'bcd') text().insert(text().length, ch)
    await c.edit('doc', (d) => d.getText('t').insert(d.getText('t').length, 'e'))
    const log = entries()
    expect(log).toHaveLength(1)
    expect(Array.isArray(log[0]!.value) && (log[0]!.value as unknown[]).length).toBe(4)
    await c.detach()
    await runtime.stop()
    runtimes.splice(runtimes.indexOf(runtime), 1)

    const again = await tcpRuntime(dataDir)
    const restored = await CrdtCoordinator.attach(again.runtime)
    expect(restored.yjs('doc').doc.getText('t').toString()).toBe('abcde')
  })

  it('what a sync pulled is persisted without the sync waiting for it, and survives a restart', async () => {
    const [a, b] = await Promise.all([tcpRuntime(), tcpRuntime()])
    await a!.runtime.connect(b!.runtime.addresses()[0]!)
    const [ca, cb] = await sharing(Promise.all([CrdtCoordinator.attach(a!.runtime), CrdtCoordinator.attach(b!.runtime)]))
    cb!.cv('counter', pnCounter)
    await cb!.mutate<PNCounterState>('counter', (s, r) => pnCounter.increment(s, r, 7))
    await cb!.edit('doc', (d) => d.getArray<number>('items').push([1, 2, 3]))
    await ca!.syncWithPeer(b!.runtime.peerId)
    await ca!.detach()
    await a!.runtime.stop()
    runtimes.splice(runtimes.indexOf(a!.runtime), 1)

    const again = await tcpRuntime(a!.dataDir)
    const restored = await CrdtCoordinator.attach(again.runtime)
    expect(pnCounter.value(restored.state('counter'))).toBe(7)
    expect(restored.yjs('doc').doc.getArray<number>('items').toArray()).toEqual([1, 2, 3])
  })

  it('a malformed sync message over the wire is rejected with a typed error, counted, state untouched', async () => {
    const [a, b] = await Promise.all([tcpRuntime(), tcpRuntime()])
    await a!.runtime.connect(b!.runtime.addresses()[0]!)
    const cb = await CrdtCoordinator.attach(b!.runtime)
    cb.cv('counter', pnCounter)
    await cb.mutate<PNCounterState>('counter', (s, r) => pnCounter.increment(s, r, 5))
    const ca = await CrdtCoordinator.attach(a!.runtime)
    const capability = await cb.grantAccess(a!.runtime.peerId)
    ca.addCapability(capability)
    const before = snapshot(cb)
    const bad = [
      { kind: 'push', payload: { docs: [{ name: 'counter', kind: 'cv', type: 'pn-counter', version: { x: 1.5 } }] }, code: 'INVALID_INPUT' },
      { kind: 'push', payload: { docs: [{ name: 'n', kind: 'cv', type: 'pn-counter', version: {}, payload: 'not a state' }] }, code: 'INVALID_INPUT' },
      { kind: 'delta', payload: { doc: 'missing', type: 'g-counter', to: 1, delta: {} }, code: 'NOT_FOUND' },
      { kind: 'push', payload: { docs: [{ name: 'y', kind: 'cv', type: 'yjs', version: {}, payload: new Uint8Array([9, 9, 9]) }] }, code: 'DECODE' },
    ]
    for (const { kind, payload, code } of bad) {
      const gated = { collection: 'crdt.default', capability, body: payload }
      await expect(componentsOf(a!.runtime).router.request(b!.runtime.peerId, 'crdt', { kind, payload: gated }, 5_000)).rejects.toMatchObject({ code })
    }
    expect(snapshot(cb)).toEqual(before)
    expect(cb.metrics().errorCount).toBe(4)
    const errors = b!.runtime.metrics().errors
    expect((errors.INVALID_INPUT ?? 0) + (errors.NOT_FOUND ?? 0) + (errors.DECODE ?? 0)).toBe(4)
  })
})

describe('retry and delta propagation (simulated network, virtual clock)', () => {
  it('syncWithRetry backs off through a partition and succeeds once it heals', async () => {
    const sim = await Simulation.create({ seed: 7, peers: 2, faults: { minDelayMs: 1, maxDelayMs: 3 } })
    try {
      const [a, b] = await sharing(Promise.all(sim.runtimes.map((r) => CrdtCoordinator.attach(r, { requestTimeoutMs: 100 }))))
      b!.cv('counter', gCounter)
      await b!.mutate('counter', (s: ReturnType<typeof gCounter.bottom>, r) => gCounter.increment(s, r, 3))
      sim.hub.partition([[sim.runtimes[0]!.peerId], [sim.runtimes[1]!.peerId]])
      let result: Awaited<ReturnType<CrdtCoordinator['syncWithRetry']>> | undefined
      void a!
        .syncWithRetry(sim.runtimes[1]!.peerId, { maxAttempts: 10, initialDelayMs: 50, maxDelayMs: 200, multiplier: 2, jitter: 'none' })
        .then((r) => (result = r))
      await sim.run(400)
      expect(result).toBeUndefined()
      sim.hub.heal()
      expect(await sim.runUntil(() => result !== undefined, 3_000)).toBe(true)
      expect(result!.attempts).toBeGreaterThan(1)
      expect(gCounter.value(a!.state('counter'))).toBe(3)

      // delta propagation: buffered deltas go out, acknowledged groups are dropped
      const d = b!.delta('deltas', gCounter)
      a!.delta('deltas', gCounter)
      await b!.mutate('deltas', (s: ReturnType<typeof gCounter.bottom>, r) => gCounter.increment(s, r, 2))
      let sent: string[] | undefined
      void b!.pushDeltas(sim.runtimes[0]!.peerId).then((s) => (sent = s))
      expect(await sim.runUntil(() => sent !== undefined, 1_000)).toBe(true)
      expect(sent).toEqual(['deltas'])
      expect(gCounter.value(a!.state('deltas'))).toBe(2)
      expect(d.buffered()).toEqual([])
    } finally {
      await sim.stop()
    }
  })

  it('syncWithPeer calls made in one turn with an idle peer share one round', async () => {
    const { sim, a, peer } = await counterPeers()
    try {
      const results: Array<{ pulled: string[] }> = []
      for (let i = 0; i < 4; i++) void a!.syncWithPeer(peer).then((r) => results.push(r))
      expect(await sim.runUntil(() => results.length === 4, 2_000)).toBe(true)
      expect(results.map((r) => r.pulled)).toEqual([['counter'], ['counter'], ['counter'], ['counter']])
      expect(a!.metrics().syncCount).toBe(4)
    } finally {
      await sim.stop()
    }
  })

  it('syncWithPeer calls made during a round are coalesced into one more round, and each caller is answered', async () => {
    const { sim, a, peer } = await counterPeers()
    try {
      const results: Array<{ pulled: string[] }> = []
      // The first call starts a round (at the end of this turn); the three made while it runs wait for one more.
      void a!.syncWithPeer(peer).then((r) => results.push(r))
      await sim.run(0)
      for (let i = 0; i < 3; i++) void a!.syncWithPeer(peer).then((r) => results.push(r))
      expect(await sim.runUntil(() => results.length === 4, 2_000)).toBe(true)
      expect(gCounter.value(a!.state('counter'))).toBe(1)
      expect(a!.metrics().syncCount).toBe(4)
      expect(results.map((r) => r.pulled)).toEqual([['counter'], [], [], []])
      // two rounds in all: the queued callers share the second round's result
      expect(new Set(results.map((r) => r.pulled)).size).toBe(2)
    } finally {
      await sim.stop()
    }
  })

  it('a sync started inside withTimeout ends with the enclosing deadline, not after its own retries', async () => {
    const sim = await Simulation.create({ seed: 10, peers: 2, faults: { minDelayMs: 1, maxDelayMs: 3 } })
    try {
      const [a] = await sharing(Promise.all(sim.runtimes.map((r) => CrdtCoordinator.attach(r, { requestTimeoutMs: 1_000 }))))
      sim.hub.partition([[sim.runtimes[0]!.peerId], [sim.runtimes[1]!.peerId]])
      const startedAt = sim.clock.now()
      const policy = { maxAttempts: 10, initialDelayMs: 500, maxDelayMs: 5_000, multiplier: 2, jitter: 'none' as const }
      let sync: Promise<unknown> | undefined
      const outer = sim.runtimes[0]!.timeouts.withTimeout(300, () => (sync = a!.syncWithRetry(sim.runtimes[1]!.peerId, policy)))
      expect((await drive(sim, outer, 10_000)).error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
      // the sync itself is answered at the deadline too, not when its own retries run out
      const outcome = await drive(sim, sync!, 10_000)
      expect(outcome.error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
      expect(outcome.at - startedAt).toBeLessThan(400)
    } finally {
      await sim.stop()
    }
  })

  it('an answer arriving after the coordinator detached is not sent to its stopped sync machine', async () => {
    const { sim, a, peer } = await counterPeers()
    const warn = vi.spyOn(console, 'warn')
    try {
      void a.syncWithPeer(peer)
      // the round has started and its request is on the way
      await sim.run(0)
      await a.detach()
      await sim.run(50)
      expect(warn).not.toHaveBeenCalled()
      expect(a.metrics()).toMatchObject({ syncCount: 0, errorCount: 0 })
    } finally {
      warn.mockRestore()
      await sim.stop()
    }
  })

  it('syncWithPeer to an unreachable peer fails with a typed error and counts it', async () => {
    const sim = await Simulation.create({ seed: 8, peers: 2 })
    try {
      const [a] = await sharing(Promise.all(sim.runtimes.map((r) => CrdtCoordinator.attach(r, { requestTimeoutMs: 100 }))))
      sim.hub.crash(sim.runtimes[1]!.peerId)
      let error: unknown
      void a!.syncWithPeer(sim.runtimes[1]!.peerId).catch((e) => (error = e))
      expect(await sim.runUntil(() => error !== undefined, 1_000)).toBe(true)
      expect(error).toMatchObject({ code: expect.stringMatching(/PEER_UNREACHABLE|DEADLINE_EXCEEDED|NETWORK/) })
      expect(a!.metrics().errorCount).toBe(1)
    } finally {
      await sim.stop()
    }
  })
})
