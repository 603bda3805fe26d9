// Replication over real libp2p TCP between 3 runtimes (each with its own LMDB folder) for every
// policy; capability enforcement on the receiving side; conflict resolution by LWW on a hybrid
// logical clock (tie broken by peer id) and by CRDT join.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { firstValueFrom, filter } from 'rxjs'
import { Ed25519Crypto } from '../../../effects/crypto/ed25519.js'
import { issueRoot, type CapabilityToken } from '../../../runtime/core/capability.js'
import { AuraError } from '../../../effects/errors.js'
import { LmdbStorage, MemoryStorage, type Storage } from '../../../effects/storage/index.js'
import type { Clock } from '../../../effects/time/index.js'
import { gCounter } from '../../../runtime/crdt/lattices/g-counter.js'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { StorageCoordinator, type StoredRecord } from '../../../runtime/storage/storage-coordinator.js'
import { ReplicationCoordinator, type ReplicationProgress } from '../../../runtime/storage/replication-coordinator.js'
import { HybridLogicalClock, compareHlc } from '../../../runtime/storage/hybrid-clock.js'
import { CrdtCoordinator } from '../../../runtime/crdt/crdt-coordinator.js'
import { AntiEntropy } from '../../../runtime/anti-entropy/anti-entropy.js'
import { sharing } from '../../fixtures/crdt-access.js'
import { componentsOf } from '../../../runtime/core/components.js'

const HOUR = 3_600_000
const dirs: string[] = []
const runtimes: Runtime[] = []
afterEach(async () => {
  for (const r of runtimes.splice(0)) await r.stop()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

interface Node {
  runtime: Runtime
  storage: StorageCoordinator
  replication: ReplicationCoordinator
}

/** 3 runtimes, fully connected; all trust the first as the owner of every namespace. */
async function cluster(n = 3, options: { silent?: number[]; crdt?: boolean } = {}): Promise<Node[]> {
  const nodes: Node[] = []
  let ownerId: string | undefined
  for (let i = 0; i < n; i++) {
    const dataDir = mkdtempSync(join(tmpdir(), 'aura-repl-'))
    dirs.push(dataDir)
    const runtime = await createRuntime({ dataDir })
    runtimes.push(runtime)
    ownerId ??= runtime.peerId
    const storage = new StorageCoordinator(runtime.peerId, componentsOf(runtime).storage, {
      crypto: componentsOf(runtime).crypto,
      clock: componentsOf(runtime).clock,
      trustedRoots: [ownerId],
      ...(options.crdt ? { namespaces: { counters: { kind: 'crdt', type: 'g-counter' } } } : {}),
    })
    const replication = new ReplicationCoordinator({
      storage,
      router: componentsOf(runtime).router,
      clock: componentsOf(runtime).clock,
      random: componentsOf(runtime).random,
      retry: { maxAttempts: 4, initialDelayMs: 20, maxDelayMs: 200, multiplier: 2, jitter: 'equal' },
      attemptTimeoutMs: 2_000,
    })
    await storage.attach(componentsOf(runtime))
    if (options.silent?.includes(i)) {
      // a peer that takes replication messages and never answers
      await componentsOf(runtime).router.register('replication', { apply: () => new Promise(() => {}) })
    } else {
      await replication.attach()
    }
    nodes.push({ runtime, storage, replication })
  }
  for (const a of nodes) for (const b of nodes) if (a !== b && a.runtime.peerId < b.runtime.peerId) await a.runtime.connect(b.runtime.addresses()[0]!)
  return nodes
}

const grant = (from: Node, to: Node, namespace: string, rights: CapabilityToken['rights']) =>
  from.storage.grant({ audience: to.runtime.peerId, namespace, rights, notBefore: Date.now() - HOUR, expiresAt: Date.now() + HOUR })

async function read(node: Node, namespace: string, key: string): Promise<unknown> {
  return node.storage.retrieve(namespace, key, await grant(node, node, namespace, ['read']))
}

async function seed(node: Node, namespace: string, entries: Record<string, unknown>): Promise<string[]> {
  const cap = await grant(node, node, namespace, ['write'])
  for (const [key, value] of Object.entries(entries)) await node.storage.storeInNamespace(namespace, key, value, cap)
  return Object.keys(entries)
}

describe('replication over libp2p TCP (3 runtimes)', () => {
  it('all-ack: resolves once both peers merged every key', async () => {
    const [a, b, c] = (await cluster()) as [Node, Node, Node]
    const keys = await seed(a, 'docs', { k1: 'one', k2: { n: 2 }, k3: new Uint8Array([3]) })
    const cap = await grant(a, a, 'docs', ['replicate'])
    const result = await a.replication.replicateToPeers('docs', keys, [b.runtime.peerId, c.runtime.peerId], { kind: 'all' }, { capability: cap })
    expect(result.acked.sort()).toEqual([b.runtime.peerId, c.runtime.peerId].sort())
    for (const node of [b, c]) {
      expect(await read(node, 'docs', 'k1')).toBe('one')
      expect(await read(node, 'docs', 'k2')).toEqual({ n: 2 })
    }
    expect((await result.settled).status).toBe('succeeded')
    expect(a.replication.pendingRepairs()).toEqual([])
  })

  it('quorum 1 of 2 succeeds with one silent peer; the silent one times out and is queued for repair', async () => {
    const [a, b, c] = (await cluster(3, { silent: [2] })) as [Node, Node, Node]
    const keys = await seed(a, 'docs', { x: 1, y: 2 })
    const cap = await grant(a, a, 'docs', ['replicate'])
    const progress: ReplicationProgress[] = []
    const sub = a.replication.progress$.subscribe((p) => progress.push(p))
    const result = await a.replication.replicateToPeers(
      'docs',
      keys,
      [b.runtime.peerId, c.runtime.peerId],
      { kind: 'quorum', k: 1 },
      { capability: cap, timeoutMs: 1_500 },
    )
    expect(result.acked).toEqual([b.runtime.peerId])
    expect(await read(b, 'docs', 'x')).toBe(1)
    const settled = await result.settled
    sub.unsubscribe()
    expect(settled.peers[c.runtime.peerId]!.status).toBe('timedOut')
    expect(progress.some((p) => p.peer === b.runtime.peerId && p.status === 'acked')).toBe(true)
    expect(progress.some((p) => p.peer === c.runtime.peerId && p.status === 'timedOut')).toBe(true)
    expect(progress.map((p) => p.phase).filter(Boolean)).toEqual(['satisfied', 'settled'])
    expect(
      a.replication
        .pendingRepairs()
        .filter((r) => r.peer === c.runtime.peerId)
        .map((r) => r.key)
        .sort(),
    ).toEqual(['x', 'y'])
  })

  it('quorum 2 of 2 fails cleanly with DeadlineExceeded when a peer does not answer before the deadline', async () => {
    const [a, b, c] = (await cluster(3, { silent: [2] })) as [Node, Node, Node]
    const keys = await seed(a, 'docs', { x: 1 })
    const cap = await grant(a, a, 'docs', ['replicate'])
    const startedAt = Date.now()
    const error = await a.replication
      .replicateToPeers('docs', keys, [b.runtime.peerId, c.runtime.peerId], { kind: 'quorum', k: 2 }, { capability: cap, timeoutMs: 1_000 })
      .catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AuraError)
    expect((error as AuraError).code).toBe('DEADLINE_EXCEEDED')
    expect((error as AuraError).details.acked).toBe(1)
    expect(Date.now() - startedAt).toBeLessThan(10_000)
    // the peer that did ack has the data; the silent one is remembered for repair
    expect(await read(b, 'docs', 'x')).toBe(1)
    await expect.poll(() => a.replication.pendingRepairs().map((r) => r.peer)).toEqual([c.runtime.peerId])
  })

  it('async: answers at once; the peers receive the keys in the background', async () => {
    const [a, b, c] = (await cluster()) as [Node, Node, Node]
    const keys = await seed(a, 'docs', { later: 'yes' })
    const cap = await grant(a, a, 'docs', ['replicate'])
    const settledPhase = firstValueFrom(a.replication.progress$.pipe(filter((p) => p.phase === 'settled')))
    const result = await a.replication.replicateToPeers('docs', keys, [b.runtime.peerId, c.runtime.peerId], { kind: 'async' }, { capability: cap })
    expect(result.required).toBe(0)
    await settledPhase
    expect((await result.settled).acked).toHaveLength(2)
    expect(await read(b, 'docs', 'later')).toBe('yes')
    expect(await read(c, 'docs', 'later')).toBe('yes')
  })

  it('a sender without replicate rights is refused by every receiver: PermissionDenied, counted, nothing written', async () => {
    const [a, b, c] = (await cluster()) as [Node, Node, Node]
    const keys = await seed(a, 'docs', { secret: 's' })
    const writeOnly = await grant(a, a, 'docs', ['read', 'write'])
    const error = await a.replication
      .replicateToPeers('docs', keys, [b.runtime.peerId, c.runtime.peerId], { kind: 'all' }, { capability: writeOnly })
      .catch((e: unknown) => e)
    expect((error as AuraError).code).toBe('PERMISSION_DENIED')
    // a token issued to b, presented by a: the authenticated sender is not its holder
    const bsToken = await grant(a, b, 'docs', ['replicate'])
    const error2 = await a.replication.replicateToPeers('docs', keys, [c.runtime.peerId], { kind: 'all' }, { capability: bsToken }).catch((e: unknown) => e)
    expect((error2 as AuraError).code).toBe('PERMISSION_DENIED')
    for (const node of [b, c]) {
      expect(await read(node, 'docs', 'secret')).toBeUndefined()
      expect(node.runtime.metrics().errors.PERMISSION_DENIED).toBeGreaterThanOrEqual(1)
    }
  })

  it('repair() delivers what a failed replication left behind, once the peer answers again', async () => {
    const [a, , c] = (await cluster(3, { silent: [2] })) as [Node, Node, Node]
    const keys = await seed(a, 'docs', { r: 'repaired', s: 'too' })
    const cap = await grant(a, a, 'docs', ['replicate'])
    await expect(a.replication.replicateToPeers('docs', keys, [c.runtime.peerId], { kind: 'all' }, { capability: cap, timeoutMs: 500 })).rejects.toMatchObject({
      code: 'DEADLINE_EXCEEDED',
    })
    await expect.poll(() => a.replication.pendingRepairs().length).toBe(2)
    expect(await a.replication.repair({ capability: cap, timeoutMs: 300 })).toEqual({ repaired: 0, remaining: 2 })
    await c.replication.attach() // c starts answering
    expect(await a.replication.repair({ capability: cap })).toEqual({ repaired: 2, remaining: 0 })
    expect(await read(c, 'docs', 'r')).toBe('repaired')
    expect(await read(c, 'docs', 's')).toBe('too')
  })

  it('concurrent LWW writes converge on every peer to the later hybrid timestamp', async () => {
    const [a, b, c] = (await cluster()) as [Node, Node, Node]
    await seed(a, 'docs', { k: 'from a' })
    await seed(b, 'docs', { k: 'from b' })
    const capA = await grant(a, a, 'docs', ['replicate'])
    const capB = await grant(a, b, 'docs', ['replicate'])
    const everyone = [a, b, c].map((n) => n.runtime.peerId)
    await a.replication.replicateToPeers(
      'docs',
      'k',
      everyone.filter((p) => p !== a.runtime.peerId),
      { kind: 'all' },
      { capability: capA },
    )
    await b.replication.replicateToPeers(
      'docs',
      'k',
      everyone.filter((p) => p !== b.runtime.peerId),
      { kind: 'all' },
      { capability: capB },
    )
    const values = await Promise.all([a, b, c].map((n) => read(n, 'docs', 'k')))
    expect(new Set(values).size).toBe(1)
    const stamps = [a, b].map((n) => n.storage.records('docs', ['k'])[0]![1])
    expect(stamps[0]).toEqual(stamps[1])
  })

  it('CRDT namespace: concurrent counter increments on two peers join to the sum everywhere', async () => {
    const [a, b, c] = (await cluster(3, { crdt: true })) as [Node, Node, Node]
    await seed(a, 'counters', { hits: gCounter.encode(gCounter.increment(gCounter.bottom(), 'a', 3)) })
    await seed(b, 'counters', { hits: gCounter.encode(gCounter.increment(gCounter.bottom(), 'b', 4)) })
    const everyone = [a, b, c].map((n) => n.runtime.peerId)
    for (const [node, cap] of [
      [a, await grant(a, a, 'counters', ['replicate'])],
      [b, await grant(a, b, 'counters', ['replicate'])],
    ] as const) {
      await node.replication.replicateToPeers(
        'counters',
        'hits',
        everyone.filter((p) => p !== node.runtime.peerId),
        { kind: 'all' },
        { capability: cap },
      )
    }
    for (const node of [a, b, c]) expect(gCounter.value(gCounter.decode(await read(node, 'counters', 'hits')))).toBe(7)
  })
})

describe('namespace reconciliation between replicas, without the writer', () => {
  /**
   * The writer (first node, owner of the namespace) gives B and C different versions of 'docs'
   * (k1 older on B and newer on C, k2 only on B, k3 only on C, k4 deleted only on B) on top of
   * 300 records both hold, then stops for good.
   */
  async function divergedReplicas(commonKeys = 300): Promise<{ b: Node; c: Node; capB: CapabilityToken; capC: CapabilityToken; readOnlyB: CapabilityToken }> {
    const [w, b, c] = (await cluster()) as [Node, Node, Node]
    const capW = await grant(w, w, 'docs', ['write', 'delete', 'replicate'])
    const to = async (peers: Node[], keys: string[]) => {
      await w.replication.replicateToPeers(
        'docs',
        keys,
        peers.map((p) => p.runtime.peerId),
        { kind: 'all' },
        { capability: capW },
      )
    }
    const common = Array.from({ length: commonKeys }, (_, i) => ({ key: `common-${i}`, data: { i } }))
    await w.storage.storeMany('docs', common, capW)
    await to(
      [b, c],
      common.map((e) => e.key),
    )
    await seed(w, 'docs', { k1: 'older', k2: 'only on b', k4: 'to be deleted' })
    await to([b], ['k1', 'k2', 'k4'])
    await to([c], ['k4'])
    await seed(w, 'docs', { k1: 'newer', k3: 'only on c' })
    await w.storage.delete('docs', 'k4', capW)
    await to([c], ['k1', 'k3'])
    await to([b], ['k4'])
    const tokens = {
      capB: await grant(w, b, 'docs', ['replicate']),
      capC: await grant(w, c, 'docs', ['replicate']),
      readOnlyB: await grant(w, b, 'docs', ['read']),
    }
    await w.runtime.stop()
    return { b, c, ...tokens }
  }

  const contents = (node: Node) => [...node.storage.entries('docs')]

  it('reconcile() leaves both replicas with identical records, moving only what differs', async () => {
    const { b, c, capB, capC } = await divergedReplicas()
    expect(contents(b)).not.toEqual(contents(c))
    expect(await b.replication.reconcile(c.runtime.peerId, 'docs', { capability: capB })).toEqual({ pulled: 3, pushed: 3 })
    expect(contents(b)).toEqual(contents(c))
    expect(contents(b)).toHaveLength(304)
    expect(await Promise.all(['k1', 'k2', 'k3', 'k4'].map((k) => read(c, 'docs', k)))).toEqual(['newer', 'only on b', 'only on c', undefined])
    // converged: an exchange from the other side finds nothing to move
    expect(await c.replication.reconcile(b.runtime.peerId, 'docs', { capability: capC })).toEqual({ pulled: 0, pushed: 0 })
  })

  it('costs follow the difference, not the namespace: ten times the records, the same four keys apart, far under twice the bytes', async () => {
    const bytesFor = async (commonKeys: number) => {
      const { b, c, capB } = await divergedReplicas(commonKeys)
      let bytes = 0
      const sub = b.runtime.events$.subscribe((e) => void (e.type === 'wire' && (bytes += e.bytes)))
      expect(await b.replication.reconcile(c.runtime.peerId, 'docs', { capability: capB })).toEqual({ pulled: 3, pushed: 3 })
      sub.unsubscribe()
      for (const r of runtimes.splice(0)) await r.stop()
      return bytes
    }
    const small = await bytesFor(300)
    const large = await bytesFor(3_000)
    expect(large).toBeLessThan(2 * small)
  })

  it('a CRDT namespace reconciles by join: counters incremented on two replicas hold the sum on both', async () => {
    const [owner, b, c] = (await cluster(3, { crdt: true })) as [Node, Node, Node]
    await seed(b, 'counters', { hits: gCounter.encode(gCounter.increment(gCounter.bottom(), 'b', 4)) })
    await seed(c, 'counters', { hits: gCounter.encode(gCounter.increment(gCounter.bottom(), 'c', 5)) })
    const result = await b.replication.reconcile(c.runtime.peerId, 'counters', { capability: await grant(owner, b, 'counters', ['replicate']) })
    expect(result).toEqual({ pulled: 1, pushed: 1 })
    for (const node of [b, c]) expect(gCounter.value(gCounter.decode(await read(node, 'counters', 'hits')))).toBe(9)
    expect([...b.storage.entries('counters')]).toEqual([...c.storage.entries('counters')])
  })

  it('a request without replicate on the namespace is denied with PermissionDenied and applies nothing', async () => {
    const { b, c, capB, readOnlyB } = await divergedReplicas()
    const [before] = [{ b: contents(b), c: contents(c) }]
    // shown a token without 'replicate', c answers neither digests nor pulls
    const error = await b.replication.reconcile(c.runtime.peerId, 'docs', { capability: readOnlyB, localCapability: capB }).catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'PERMISSION_DENIED' })
    const pull = componentsOf(b.runtime).router.request(
      c.runtime.peerId,
      'replication',
      { kind: 'pull', payload: { namespace: 'docs', capability: readOnlyB, keys: ['"k3"'] } },
      5_000,
    )
    await expect(pull).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
    expect(c.runtime.metrics().errors.PERMISSION_DENIED).toBeGreaterThanOrEqual(2)
    // and b may not merge what it would pull without the right here
    await expect(b.replication.reconcile(c.runtime.peerId, 'docs', { capability: capB, localCapability: readOnlyB })).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
    })
    expect({ b: contents(b), c: contents(c) }).toEqual(before)
  })

  it('reconcileOn(antiEntropy.progress$) reconciles with every peer a running anti-entropy round completes with', async () => {
    const { b, c, capB } = await divergedReplicas()
    const engines: AntiEntropy[] = []
    // the rounds need the peers to let each other into their collections first
    const crdts = await sharing(Promise.all([b, c].map((node) => CrdtCoordinator.attach(node.runtime))))
    for (const [i, node] of [b, c].entries()) {
      engines.push(await AntiEntropy.attach(node.runtime, crdts[i]!, { syncInterval: 100, peerSelection: { kind: 'random', k: 2 }, digest: 'merkle' }))
    }
    const subscription = b.replication.reconcileOn(engines[0]!.progress$, { namespaces: ['docs'], capability: capB })
    engines[0]!.start()
    await expect.poll(() => JSON.stringify(contents(b)) === JSON.stringify(contents(c)), { timeout: 15_000, interval: 50 }).toBe(true)
    subscription.unsubscribe()
    expect(await read(b, 'docs', 'k3')).toBe('only on c')
    expect(await read(c, 'docs', 'k2')).toBe('only on b')
  })
})

describe('conflict resolution (merge rules, no network)', () => {
  const T = 1_700_000_000_000
  let me: Ed25519Crypto
  let peers: [string, string]
  beforeAll(async () => {
    me = await Ed25519Crypto.fromSeed(new Uint8Array(32).fill(9))
    const x = await Ed25519Crypto.fromSeed(new Uint8Array(32).fill(10))
    const y = await Ed25519Crypto.fromSeed(new Uint8Array(32).fill(11))
    peers = [x.peerId, y.peerId].sort() as [string, string]
  })
  const clockAt = (t: number): Clock => ({ now: () => t, setTimeout: () => undefined, clearTimeout: () => undefined, sleep: async () => undefined })

  async function replica(namespaces = {}, storage: Storage = new MemoryStorage()) {
    const c = new StorageCoordinator(me.peerId, storage, { crypto: me, clock: clockAt(T), namespaces })
    const cap = await issueRoot(me, { audience: me.peerId, namespace: '*', rights: ['admin'], notBefore: T - HOUR, expiresAt: T + HOUR })
    const merge = (records: Array<[string, StoredRecord]>, resolver = c.resolverOf('docs')) =>
      c.mergeReplica(me.peerId, { namespace: 'docs', resolver, records, capability: cap })
    return { c, cap, merge }
  }

  it('a timestamp tie is broken by peer id, the same way whatever the arrival order', async () => {
    const low: StoredRecord = [T, 0, peers[0], 0, 'low peer']
    const high: StoredRecord = [T, 0, peers[1], 0, 'high peer']
    for (const order of [
      [low, high],
      [high, low],
    ]) {
      const { c, cap, merge } = await replica()
      for (const r of order) await merge([['k', r]])
      expect(await c.retrieve('docs', 'k', cap)).toBe('high peer')
    }
  })

  it('an older write arriving late loses, and is not dropped silently: the merge reports it unchanged', async () => {
    const { c, cap, merge } = await replica()
    expect(await merge([['k', [T + 10, 0, peers[0], 0, 'new']]])).toEqual({ applied: 1, unchanged: 0 })
    expect(await merge([['k', [T + 5, 7, peers[1], 0, 'old']]])).toEqual({ applied: 0, unchanged: 1 })
    expect(await c.retrieve('docs', 'k', cap)).toBe('new')
  })

  it('a delete is a tombstone: an older write arriving after it does not bring the key back', async () => {
    const { c, cap, merge } = await replica()
    await merge([['k', [T + 20, 0, peers[0], 1, null]]])
    await merge([['k', [T + 10, 0, peers[1], 0, 'resurrected?']]])
    expect(await c.retrieve('docs', 'k', cap)).toBeUndefined()
  })

  it('a write made after observing a replica from a clock running ahead (within the drift bound) still wins (HLC)', async () => {
    const { c, cap, merge } = await replica()
    await merge([['k', [T + 30_000, 3, peers[1], 0, 'from the future']]])
    const receipt = await c.storeInNamespace('docs', 'k', 'mine, later', cap)
    expect(compareHlc(receipt.stamp, { wall: T + 30_000, logical: 3, peer: peers[1] })).toBeGreaterThan(0)
    expect(await c.retrieve('docs', 'k', cap)).toBe('mine, later')
  })

  it.each(['memory', 'lmdb'])('a merge racing a local write keeps the later stamp, whichever commits first (%s)', async (kind) => {
    let storage: Storage = new MemoryStorage()
    if (kind === 'lmdb') {
      const path = mkdtempSync(join(tmpdir(), 'aura-race-'))
      dirs.push(path)
      storage = new LmdbStorage({ path })
    }
    const { c, cap, merge } = await replica({}, storage)
    // older replica arriving while a local write is still in flight: the local write stays
    const local = c.storeInNamespace('docs', 'k', 'local', cap)
    const older = merge([['k', [T - 10, 0, peers[0], 0, 'older replica']]])
    await Promise.all([local, older])
    expect(await c.retrieve('docs', 'k', cap)).toBe('local')
    // a newer replica racing a local write issued before it was observed wins
    const local2 = c.storeInNamespace('docs', 'j', 'local', cap)
    const newer = merge([['j', [T + 30_000, 0, peers[0], 0, 'newer replica']]])
    await Promise.all([local2, newer])
    expect(await c.retrieve('docs', 'j', cap)).toBe('newer replica')
    await storage.close()
  })

  it('records name their writer by a writer-table index on disk, yet compare and replicate by peer id, across a restart', async () => {
    const path = mkdtempSync(join(tmpdir(), 'aura-writers-'))
    dirs.push(path)
    const first = await replica({}, new LmdbStorage({ path }))
    await first.merge([['tie', [T, 0, peers[1], 0, 'high peer']]])
    await first.c.storeInNamespace('docs', 'own', 'mine', first.cap)
    await first.c.effect.close()
    const storage = new LmdbStorage({ path })
    // on disk: small integers, not peer ids
    const onDisk = [...storage.namespace('ns.docs').range<unknown[]>()].map((e) => e.value[2])
    expect(onDisk.every((w) => typeof w === 'number')).toBe(true)
    // a record from before the writer table, with the peer id inline, still reads back
    await storage.namespace('ns.docs').put('legacy', [T, 0, peers[0], 0, 'old form'])
    const again = await replica({}, storage)
    expect(again.c.records('docs', ['tie', 'own', 'legacy']).map(([, r]) => r[2])).toEqual([peers[1], me.peerId, peers[0]])
    expect(await again.merge([['tie', [T, 0, peers[0], 0, 'low peer']]])).toEqual({ applied: 0, unchanged: 1 })
    expect(await again.merge([['legacy', [T, 0, peers[1], 0, 'new form']]])).toEqual({ applied: 1, unchanged: 0 })
    expect(await again.c.retrieveMany('docs', ['tie', 'legacy'], again.cap)).toEqual(['high peer', 'new form'])
    await storage.close()
  })

  it('a batch that fails leaves its new writer pending: the next write records it, so nothing names a missing writer', async () => {
    const path = mkdtempSync(join(tmpdir(), 'aura-writers-'))
    dirs.push(path)
    const lmdb = new LmdbStorage({ path })
    let failNext = true
    const flaky: Storage = {
      namespace: (name) => lmdb.namespace(name),
      batch: (ops) => {
        if (!failNext) return lmdb.batch(ops)
        failNext = false
        return Promise.reject(new Error('disk full'))
      },
      close: () => lmdb.close(),
    }
    const { merge } = await replica({}, flaky)
    await expect(merge([['a', [T, 0, peers[0], 0, 'lost']]])).rejects.toThrow()
    await merge([['b', [T, 0, peers[0], 0, 'kept']]])
    await lmdb.close()
    const reopened = await replica({}, new LmdbStorage({ path }))
    expect(reopened.c.records('docs', ['a', 'b'])).toEqual([['b', [T, 0, peers[0], 0, 'kept']]])
    await reopened.c.effect.close()
  })

  it('malformed replicas and resolver mismatches are InvalidInput with nothing written', async () => {
    const { c, cap, merge } = await replica({ docs: { kind: 'crdt', type: 'g-counter' } })
    const bad = [
      () => merge([['k', [T, 0, peers[0], 0, { not: 'a counter' }]]]),
      () => merge([['k', [T, 0, peers[0], 1, null]]]),
      () => merge([['k', [-1, 0, peers[0], 0, {}] as unknown as StoredRecord]]),
      () => merge([['k', [T, 0, peers[0], 0, {}]]], { kind: 'lww' }),
    ]
    for (const attempt of bad) await expect(attempt()).rejects.toMatchObject({ code: 'INVALID_INPUT' })
    expect(await c.retrieve('docs', 'k', cap)).toBeUndefined()
  })

  it('HybridLogicalClock: monotonic under a clock going backwards, and after every observed stamp', () => {
    let t = 1000
    const hlc = new HybridLogicalClock({ now: () => t }, 'p')
    const a = hlc.now()
    t = 500
    const b = hlc.now()
    hlc.observe({ wall: 9_000, logical: 4 })
    const c2 = hlc.now()
    expect(compareHlc(b, a)).toBeGreaterThan(0)
    expect(c2).toEqual({ wall: 9_000, logical: 5, peer: 'p' })
  })
})
