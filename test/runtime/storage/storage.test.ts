// StorageCoordinator on LMDB and memory storage: capability enforcement on every operation,
// namespace isolation, atomic batches, ordering, large values, revocation that survives a
// restart, and remote operations over real libp2p TCP.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ed25519Crypto } from '../../../effects/crypto/ed25519.js'
import { delegate, issueRoot, type CapabilityToken } from '../../../runtime/core/capability.js'
import { AuraError } from '../../../effects/errors.js'
import { LmdbStorage, MemoryStorage, type Storage } from '../../../effects/storage/index.js'
import type { Clock } from '../../../effects/time/index.js'
import { gCounter } from '../../../runtime/crdt/lattices/g-counter.js'
import { StorageCoordinator, type StorageCoordinatorOptions } from '../../../runtime/storage/storage-coordinator.js'
import type { RuntimeEventInput } from '../../../runtime/core/events.js'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { componentsOf } from '../../../runtime/core/components.js'

const T0 = 1_700_000_000_000
const HOUR = 3_600_000

function manualClock(start = T0): Clock & { set(t: number): void } {
  let t = start
  return {
    now: () => t,
    set: (next) => {
      t = next
    },
    setTimeout: () => undefined,
    clearTimeout: () => undefined,
    sleep: async () => undefined,
  }
}

let owner: Ed25519Crypto
let alice: Ed25519Crypto
let mallory: Ed25519Crypto
beforeAll(async () => {
  owner = await Ed25519Crypto.fromSeed(new Uint8Array(32).fill(1))
  alice = await Ed25519Crypto.fromSeed(new Uint8Array(32).fill(2))
  mallory = await Ed25519Crypto.fromSeed(new Uint8Array(32).fill(3))
})

const dirs: string[] = []
const closers: Array<() => Promise<void>> = []
afterEach(async () => {
  for (const close of closers.splice(0)) await close()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function lmdb(dir?: string): { storage: LmdbStorage; dir: string } {
  const path = dir ?? mkdtempSync(join(tmpdir(), 'aura-storage-'))
  if (!dir) dirs.push(path)
  const storage = new LmdbStorage({ path })
  closers.push(() => storage.close())
  return { storage, dir: path }
}

function coordinator(storage: Storage, extra: Partial<StorageCoordinatorOptions> = {}, clock = manualClock()) {
  const events: RuntimeEventInput[] = []
  const c = new StorageCoordinator(owner.peerId, storage, { crypto: owner, clock, emit: (e) => events.push(e), ...extra })
  return { c, clock, events }
}

const rootFor = (audience: string, namespace: string, rights: CapabilityToken['rights'], clock: Clock = manualClock()) =>
  issueRoot(owner, { audience, namespace, rights, notBefore: clock.now() - HOUR, expiresAt: clock.now() + HOUR })

async function rejects(promise: Promise<unknown>, code: string, reason?: string): Promise<AuraError> {
  const error = await promise.then(
    () => {
      throw new Error(`expected ${code}`)
    },
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(AuraError)
  expect((error as AuraError).code).toBe(code)
  if (reason) expect((error as AuraError).details.reason).toBe(reason)
  return error as AuraError
}

describe('StorageCoordinator', () => {
  it('stores, retrieves, lists in key order and deletes under a capability (LMDB)', async () => {
    const { c } = coordinator(lmdb().storage)
    const cap = await rootFor(owner.peerId, 'docs', ['read', 'write', 'delete'])
    for (const key of ['b', 'a', 'c', 'ab', 'x:1']) await c.storeInNamespace('docs', key, { key }, cap)
    expect(await c.retrieve('docs', 'ab', cap)).toEqual({ key: 'ab' })
    expect((await c.list('docs', '', cap)).map((e) => e.key)).toEqual(['a', 'ab', 'b', 'c', 'x:1'])
    expect((await c.list('docs', 'a', cap)).map((e) => e.key)).toEqual(['a', 'ab'])
    expect((await c.list('docs', '', cap, { limit: 2 })).map((e) => e.key)).toEqual(['a', 'ab'])
    expect(await c.delete('docs', 'ab', cap)).toBe(true)
    expect(await c.delete('docs', 'ab', cap)).toBe(false)
    expect(await c.retrieve('docs', 'ab', cap)).toBeUndefined()
    expect((await c.list('docs', 'a', cap)).map((e) => e.key)).toEqual(['a'])
    expect(c.counts().store.done).toBe(5)
  })

  it('store(key, data) writes to its own default namespace without a capability from anyone', async () => {
    const { c } = coordinator(new MemoryStorage())
    const receipt = await c.store('greeting', 'hello')
    expect(receipt.namespace).toBe('default')
    expect(await c.load('greeting')).toBe('hello')
    expect(receipt.stamp.peer).toBe(owner.peerId)
  })

  it("namespaces are isolated, and cannot reach the runtime's own aura.* namespaces", async () => {
    const { storage } = lmdb()
    const { c } = coordinator(storage)
    const cap = await rootFor(owner.peerId, '*', ['read', 'write'])
    await c.storeInNamespace('one', 'k', 1, cap)
    await c.storeInNamespace('two', 'k', 2, cap)
    expect(await c.retrieve('one', 'k', cap)).toBe(1)
    expect(await c.retrieve('two', 'k', cap)).toBe(2)
    // 'aura.identity' as a user namespace is stored as ns.aura.identity, apart from the runtime's.
    await storage.namespace('aura.identity').put('ed25519', 'secret')
    await c.storeInNamespace('aura.identity', 'ed25519', 'overwritten?', cap)
    expect(storage.namespace('aura.identity').get('ed25519')).toBe('secret')
    for (const bad of ['', '.hidden', 'a b', 'x'.repeat(61), 'star*', '../etc']) {
      await rejects(c.storeInNamespace(bad, 'k', 1, cap), 'INVALID_INPUT')
    }
  })

  it('a 1 MiB value round-trips intact; a value over the configured maximum is refused and not written', async () => {
    const { c, events } = coordinator(lmdb().storage, { maxValueBytes: 2 * 1024 * 1024 })
    const cap = await rootFor(owner.peerId, 'blobs', ['read', 'write'])
    const big = new Uint8Array(1024 * 1024).map((_, i) => (i * 31) % 251)
    await c.storeInNamespace('blobs', 'big', big, cap)
    const back = (await c.retrieve('blobs', 'big', cap)) as Uint8Array
    expect(back.byteLength).toBe(big.byteLength)
    expect(Buffer.compare(Buffer.from(back), Buffer.from(big))).toBe(0)
    await rejects(c.storeInNamespace('blobs', 'huge', new Uint8Array(3 * 1024 * 1024), cap), 'INVALID_INPUT')
    expect(await c.retrieve('blobs', 'huge', cap)).toBeUndefined()
    expect(events.some((e) => e.type === 'error' && e.code === 'INVALID_INPUT' && e.where === 'storage.store')).toBe(true)
  })

  it('storeMany is atomic: one bad entry and nothing of the batch is written', async () => {
    const { c } = coordinator(lmdb().storage, { maxValueBytes: 1024 })
    const cap = await rootFor(owner.peerId, 'batch', ['read', 'write'])
    expect(
      await c.storeMany(
        'batch',
        [
          { key: 'a', data: 1 },
          { key: 'b', data: 2 },
        ],
        cap,
      ),
    ).toBe(2)
    await rejects(
      c.storeMany(
        'batch',
        [
          { key: 'c', data: 3 },
          { key: 'd', data: 'x'.repeat(5000) },
        ],
        cap,
      ),
      'INVALID_INPUT',
    )
    expect(await c.retrieveMany('batch', ['a', 'b', 'c', 'd'], cap)).toEqual([1, 2, undefined, undefined])
    // malformed batches: a typed error, and still nothing written
    for (const entries of [[{ key: 'e', data: 1 }, null], 'not an array', [{ key: { nested: true }, data: 1 }], [{ key: 'f' }]]) {
      await rejects(c.storeMany('batch', entries as never, cap), 'INVALID_INPUT')
    }
    expect(await c.retrieveMany('batch', ['e', 'f'], cap)).toEqual([undefined, undefined])
  })

  it('storeMany is one write: a key given twice keeps its last entry, and a later write still wins', async () => {
    const clock = manualClock()
    const { c } = coordinator(lmdb().storage, {}, clock)
    const cap = await rootFor(owner.peerId, 'batch', ['read', 'write'], clock)
    await c.storeMany(
      'batch',
      [
        { key: 'k', data: 'first' },
        { key: 'j', data: 'other' },
        { key: 'k', data: 'last' },
      ],
      cap,
    )
    expect(await c.retrieveMany('batch', ['k', 'j'], cap)).toEqual(['last', 'other'])
    const [[, k], [, j]] = c.records('batch', ['k', 'j'])
    expect(k!.slice(0, 3)).toEqual(j!.slice(0, 3))
    await c.storeInNamespace('batch', 'k', 'after', cap)
    expect(await c.retrieve('batch', 'k', cap)).toBe('after')
  })

  describe('bad capabilities: typed error, counted, nothing written', () => {
    it('missing, forged, expired, wrong holder, wrong namespace, missing right, over-attenuated', async () => {
      const clock = manualClock()
      const { c, events } = coordinator(new MemoryStorage(), {}, clock)
      const good = await rootFor(owner.peerId, 'docs', ['read', 'write'], clock)
      const cases: Array<[string, unknown, string]> = [
        ['missing', undefined, 'malformed'],
        ['forged signature', { ...good, signature: 'ab'.repeat(64) }, 'bad-signature'],
        ['tampered rights', { ...good, rights: ['read', 'write', 'delete'] }, 'bad-signature'],
        [
          'untrusted issuer',
          await issueRoot(mallory, { audience: owner.peerId, namespace: 'docs', rights: ['write'], notBefore: T0 - 1, expiresAt: T0 + HOUR }),
          'untrusted-root',
        ],
        ['issued to another peer', await rootFor(alice.peerId, 'docs', ['write'], clock), 'audience-mismatch'],
        ['other namespace', await rootFor(owner.peerId, 'other', ['write'], clock), 'namespace-not-covered'],
        ['read only', await rootFor(owner.peerId, 'docs', ['read'], clock), 'right-not-granted'],
      ]
      for (const [, token, reason] of cases) await rejects(c.storeInNamespace('docs', 'k', 'v', token), 'PERMISSION_DENIED', reason)
      // over-attenuated: a child claiming more than its parent, signed by the parent's audience
      const parent = await rootFor(alice.peerId, 'docs', ['read'], clock)
      const wider = { ...(await delegate(alice, parent, { audience: owner.peerId })), rights: ['read', 'write'] as CapabilityToken['rights'] }
      await rejects(c.storeInNamespace('docs', 'k', 'v', wider), 'PERMISSION_DENIED')
      clock.set(T0 + 2 * HOUR)
      await rejects(c.storeInNamespace('docs', 'k', 'v', good), 'PERMISSION_DENIED', 'expired')
      clock.set(T0)
      expect(await c.retrieve('docs', 'k', good)).toBeUndefined()
      expect(c.counts().store.denied).toBe(cases.length + 2)
      expect(events.filter((e) => e.type === 'error' && e.code === 'PERMISSION_DENIED')).toHaveLength(cases.length + 2)
    })

    it('a delegated, attenuated capability works for exactly what it grants', async () => {
      const { c } = coordinator(new MemoryStorage())
      const toAlice = await rootFor(alice.peerId, 'shared*', ['read', 'write', 'delete'])
      const toOwner = await delegate(alice, toAlice, { audience: owner.peerId, namespace: 'shared.docs', rights: ['read'] })
      const writer = await rootFor(owner.peerId, 'shared.docs', ['write'])
      await c.storeInNamespace('shared.docs', 'k', 'v', writer)
      expect(await c.retrieve('shared.docs', 'k', toOwner)).toBe('v')
      await rejects(c.storeInNamespace('shared.docs', 'k', 'w', toOwner), 'PERMISSION_DENIED', 'right-not-granted')
      await rejects(c.retrieve('shared.other', 'k', toOwner), 'PERMISSION_DENIED', 'namespace-not-covered')
    })

    it('namespace owners: a trusted root that does not own the namespace is refused', async () => {
      const { c } = coordinator(new MemoryStorage(), { trustedRoots: [alice.peerId], owners: { payroll: [owner.peerId] } })
      const fromAlice = await issueRoot(alice, { audience: owner.peerId, namespace: '*', rights: ['write'], notBefore: T0 - 1, expiresAt: T0 + HOUR })
      await c.storeInNamespace('notes', 'k', 1, fromAlice)
      await rejects(c.storeInNamespace('payroll', 'k', 1, fromAlice), 'PERMISSION_DENIED', 'untrusted-root')
    })

    it('revocation takes effect at once, even for a cached capability, and survives a restart', async () => {
      const first = lmdb()
      const { c } = coordinator(first.storage)
      const cap = await rootFor(owner.peerId, 'docs', ['read', 'write'])
      await c.storeInNamespace('docs', 'k', 1, cap)
      expect(c.verifierStats.hits + c.verifierStats.misses).toBeGreaterThan(0)
      await c.revoke(cap.id)
      await rejects(c.retrieve('docs', 'k', cap), 'PERMISSION_DENIED', 'revoked')
      await first.storage.close()
      const reopened = lmdb(first.dir)
      const { c: again } = coordinator(reopened.storage)
      expect(again.isRevoked(cap.id)).toBe(true)
      await rejects(again.retrieve('docs', 'k', cap), 'PERMISSION_DENIED', 'revoked')
      const fresh = await rootFor(owner.peerId, 'docs', ['read'])
      expect(await again.retrieve('docs', 'k', fresh)).toBe(1)
    })
  })

  it('the capability check is cached: repeated operations verify signatures once', async () => {
    const { c } = coordinator(new MemoryStorage())
    const cap = await rootFor(owner.peerId, 'hot', ['read', 'write'])
    for (let i = 0; i < 20; i++) await c.storeInNamespace('hot', i, i, cap)
    expect(c.verifierStats.misses).toBe(1)
    expect(c.verifierStats.hits).toBe(19)
  })

  it('a CRDT namespace joins concurrent states instead of overwriting, and refuses deletes', async () => {
    const { c } = coordinator(new MemoryStorage(), { namespaces: { counters: { kind: 'crdt', type: 'g-counter' } } })
    const cap = await rootFor(owner.peerId, 'counters', ['read', 'write', 'delete'])
    const a = gCounter.increment(gCounter.bottom(), 'a', 3)
    const b = gCounter.increment(gCounter.bottom(), 'b', 4)
    await c.storeInNamespace('counters', 'hits', gCounter.encode(a), cap)
    await c.storeInNamespace('counters', 'hits', gCounter.encode(b), cap)
    expect(gCounter.value(gCounter.decode(await c.retrieve('counters', 'hits', cap)))).toBe(7)
    await rejects(c.storeInNamespace('counters', 'bad', { not: 'a counter' }, cap), 'INVALID_INPUT')
    await rejects(c.delete('counters', 'hits', cap), 'INVALID_INPUT')
  })

  it('declaring a namespace needs admin, and a resolver never changes once set', async () => {
    const { c } = coordinator(new MemoryStorage())
    const admin = await rootFor(owner.peerId, 'sets', ['admin'])
    const writer = await rootFor(owner.peerId, 'sets', ['write'])
    await rejects(c.declareNamespace('sets', { kind: 'crdt', type: 'or-set' }, writer), 'PERMISSION_DENIED')
    await c.declareNamespace('sets', { kind: 'crdt', type: 'or-set' }, admin)
    expect(c.resolverOf('sets')).toEqual({ kind: 'crdt', type: 'or-set' })
    await rejects(c.declareNamespace('sets', { kind: 'lww' }, admin), 'INVALID_INPUT')
    await rejects(c.declareNamespace('other', { kind: 'crdt', type: 'no-such-type' }, admin), 'INVALID_INPUT')
  })

  it('later local writes win (hybrid logical clock), even when the wall clock steps back', async () => {
    const clock = manualClock()
    const { c } = coordinator(new MemoryStorage(), {}, clock)
    const cap = await rootFor(owner.peerId, 'docs', ['read', 'write'], clock)
    const first = await c.storeInNamespace('docs', 'k', 'first', cap)
    clock.set(T0 - 5_000)
    const second = await c.storeInNamespace('docs', 'k', 'second', cap)
    expect(second.stamp.wall > first.stamp.wall || second.stamp.logical > first.stamp.logical).toBe(true)
    expect(await c.retrieve('docs', 'k', cap)).toBe('second')
  })
})

describe('StorageCoordinator served over libp2p TCP', () => {
  const runtimes: Runtime[] = []
  afterEach(async () => {
    for (const r of runtimes.splice(0)) await r.stop()
  })

  it('a remote peer operates with a capability issued to it; the router authenticates the holder', async () => {
    const made: Array<{ runtime: Runtime; storage: StorageCoordinator }> = []
    for (let i = 0; i < 2; i++) {
      const dataDir = mkdtempSync(join(tmpdir(), 'aura-storage-tcp-'))
      dirs.push(dataDir)
      const runtime = await createRuntime({ dataDir })
      runtimes.push(runtime)
      const storage = new StorageCoordinator(runtime.peerId, componentsOf(runtime).storage, {
        crypto: componentsOf(runtime).crypto,
        clock: componentsOf(runtime).clock,
      })
      await storage.attach(componentsOf(runtime))
      made.push({ runtime, storage })
    }
    const [server, client] = made as [(typeof made)[0], (typeof made)[0]]
    await client.runtime.connect(server.runtime.addresses()[0]!)
    const now = Date.now()
    const cap = await server.storage.grant({ audience: client.runtime.peerId, namespace: 'inbox', rights: ['read', 'write'], expiresAt: now + HOUR })
    const remote = client.storage.remote(server.runtime.peerId)
    await remote.storeInNamespace('inbox', 'm1', new Uint8Array([1, 2, 3]), cap)
    expect(new Uint8Array((await remote.retrieve('inbox', 'm1', cap)) as Uint8Array)).toEqual(new Uint8Array([1, 2, 3]))
    expect((await remote.list('inbox', 'm', cap)).map((e) => e.key)).toEqual(['m1'])
    // the same token presented by the server itself is someone else's: denied
    await rejects(server.storage.retrieve('inbox', 'm1', cap), 'PERMISSION_DENIED', 'audience-mismatch')
    const error = await rejects(remote.delete('inbox', 'm1', cap), 'PERMISSION_DENIED')
    expect(error.details.reason).toBe('right-not-granted')
    expect(server.runtime.metrics().errors.PERMISSION_DENIED).toBeGreaterThanOrEqual(1)
    expect(
      await server.storage.retrieve(
        'inbox',
        'm1',
        await server.storage.grant({ audience: server.runtime.peerId, namespace: 'inbox', rights: ['read'], expiresAt: now + HOUR }),
      ),
    ).toBeDefined()
  })
})
