// Who may touch a CRDT collection: a connected peer needs a capability for every sync, push,
// delta and digest, answers are joined only from peers trusted to replicate, and a collection is
// attached once (several side by side under their own namespaces).
import { afterEach, describe, expect, it } from 'vitest'
import { issueRoot } from '../../../runtime/core/capability.js'
import { Ed25519Crypto } from '../../../effects/crypto/index.js'
import { orSet, type ORSetState } from '../../../runtime/crdt/lattices/index.js'
import { AntiEntropy } from '../../../runtime/anti-entropy/anti-entropy.js'
import { CrdtCoordinator } from '../../../runtime/crdt/crdt-coordinator.js'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { sharing } from '../../fixtures/crdt-access.js'
import { componentsOf } from '../../../runtime/core/components.js'

const HOUR = 3_600_000
const runtimes: Runtime[] = []
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.stop()
})

async function pair(): Promise<{ victim: Runtime; intruder: Runtime; v: CrdtCoordinator; m: CrdtCoordinator }> {
  const [victim, intruder] = await Promise.all([createRuntime({ transport: 'memory' }), createRuntime({ transport: 'memory' })])
  runtimes.push(victim!, intruder!)
  await intruder!.connect(victim!.addresses()[0]!)
  const [v, m] = await Promise.all([CrdtCoordinator.attach(victim!), CrdtCoordinator.attach(intruder!)])
  v!.cv('tags', orSet)
  await v!.mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, 'owner'))
  m!.cv('tags', orSet)
  await m!.mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, 'injected'))
  return { victim: victim!, intruder: intruder!, v: v!, m: m! }
}

const tags = (c: CrdtCoordinator) => orSet.values(c.state<ORSetState>('tags'))

describe('CRDT collections are closed to peers without a capability', () => {
  it("a connected peer holding nothing cannot sync values into another peer's OR-Set", async () => {
    const { victim, v, m } = await pair()
    await expect(m.syncWithPeer(victim.peerId)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
    expect(tags(v)).toEqual(['owner'])
    expect(victim.metrics().errors.PERMISSION_DENIED).toBeGreaterThanOrEqual(1)
  })

  it('forged, expired, other-collection and missing capabilities are each denied, nothing applied', async () => {
    const { victim, intruder, v, m } = await pair()
    const now = Date.now()
    const push = {
      docs: [{ name: 'tags', kind: 'cv', type: 'or-set', version: m.document('tags')!.version().encode(), payload: orSet.encode(m.state('tags')) }],
    }
    const genuine = await v.grantAccess(intruder.peerId)
    const cases: Array<[string, unknown, string]> = [
      ['forged', { ...genuine, rights: ['read', 'replicate', 'admin'] }, 'bad-signature'],
      ['self-issued by an untrusted peer', await m.credentialFor(victim.peerId), 'untrusted-root'],
      [
        'expired',
        await victim.storage.grant({
          audience: intruder.peerId,
          namespace: 'crdt.default',
          rights: ['replicate'],
          notBefore: now - 2 * HOUR,
          expiresAt: now - HOUR,
        }),
        'expired',
      ],
      [
        'for another collection',
        await victim.storage.grant({ audience: intruder.peerId, namespace: 'crdt.other', rights: ['replicate'], expiresAt: now + HOUR }),
        'namespace-not-covered',
      ],
      ['read only', await v.grantAccess(intruder.peerId, { rights: ['read'] }), 'right-not-granted'],
      ['missing', undefined, 'malformed'],
    ]
    for (const [what, capability, reason] of cases) {
      const payload = { collection: 'crdt.default', capability, body: push }
      const outcome = componentsOf(intruder).router.request(victim.peerId, 'crdt', { kind: 'push', payload }, 5_000)
      await expect(outcome, what).rejects.toMatchObject({ code: 'PERMISSION_DENIED', details: { reason } })
    }
    expect(tags(v)).toEqual(['owner'])
  })

  it('a peer answering our sync is joined only if it may replicate here (a hostile responder injects nothing)', async () => {
    const { intruder, v, m } = await pair()
    // The intruder lets the victim read it, but the victim never trusted the intruder.
    v.addCapability(await m.grantAccess(v.peerId))
    await expect(v.syncWithPeer(intruder.peerId)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
    expect(tags(v)).toEqual(['owner'])
  })

  it('anti-entropy digests are answered only to peers holding read on the collection', async () => {
    const { victim, intruder, v, m } = await pair()
    await AntiEntropy.attach(victim, v, { syncInterval: HOUR, peerSelection: { kind: 'round-robin' } })
    const probe = await AntiEntropy.attach(intruder, m, {
      syncInterval: HOUR,
      peerSelection: { kind: 'round-robin' },
      retry: { maxAttempts: 1, initialDelayMs: 10, maxDelayMs: 10, multiplier: 1, jitter: 'none' },
    })
    const round = await probe.runRound()
    expect(round.failed).toBe(1)
    expect(tags(v)).toEqual(['owner'])
    // with a capability granted by the owner, the same round goes through and converges
    m.addCapability(await v.grantAccess(intruder.peerId))
    v.addCapability(await m.grantAccess(victim.peerId))
    const granted = await probe.runRound()
    expect(granted.failed).toBe(0)
    expect(tags(v)).toEqual(['injected', 'owner'])
    expect(tags(m)).toEqual(['injected', 'owner'])
  })

  it("the owner's local changes need no capability", async () => {
    const { v } = await pair()
    await v.mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, 'local'))
    expect(tags(v)).toEqual(['local', 'owner'])
  })
})

describe('a cluster administrator', () => {
  it('peers that trust one root (storage.trustedRoots) sync with the single token it gave each, no pairwise grants; a peer that does not trust it is refused', async () => {
    const admin = await Ed25519Crypto.generate()
    const config = { transport: 'memory' as const, storage: { trustedRoots: [admin.peerId] } }
    const [a, b, outsider] = await Promise.all([createRuntime(config), createRuntime(config), createRuntime({ transport: 'memory' })])
    runtimes.push(a!, b!, outsider!)
    for (const other of [b!, outsider!]) await a!.connect(other.addresses()[0]!)
    const now = Date.now()
    const member = (peer: string) =>
      issueRoot(admin, { audience: peer, namespace: 'crdt.*', rights: ['read', 'replicate'], notBefore: now, expiresAt: now + HOUR })
    const [ca, cb, co] = await Promise.all([a!, b!, outsider!].map((r) => CrdtCoordinator.attach(r)))
    for (const [c, r] of [
      [ca!, a!],
      [cb!, b!],
      [co!, outsider!],
    ] as const)
      c.addCapability(await member(r.peerId))
    cb!.cv('tags', orSet)
    await cb!.mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, 'member'))
    await ca!.syncWithPeer(b!.peerId)
    expect(tags(ca!)).toEqual(['member'])
    // the outsider holds the same kind of token, but does not trust the administrator
    await expect(ca!.syncWithPeer(outsider!.peerId)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
  })

  it('trusted roots and owners are validated config', async () => {
    await expect(createRuntime({ transport: 'memory', storage: { trustedRoots: [''] } })).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    await expect(createRuntime({ transport: 'memory', storage: { owners: { docs: [] } } })).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
  })
})

describe('collections on one runtime', () => {
  it('a second attach of the same collection fails loudly and leaves the first serving', async () => {
    const [a, b] = await Promise.all([createRuntime({ transport: 'memory' }), createRuntime({ transport: 'memory' })])
    runtimes.push(a!, b!)
    await a!.connect(b!.addresses()[0]!)
    const [ca, cb] = await sharing(Promise.all([CrdtCoordinator.attach(a!), CrdtCoordinator.attach(b!)]))
    await expect(CrdtCoordinator.attach(b!)).rejects.toMatchObject({ code: 'CONFLICT' })
    cb!.cv('tags', orSet)
    await cb!.mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, 'x'))
    await ca!.syncWithPeer(b!.peerId)
    expect(tags(ca!)).toEqual(['x'])
  })

  it('named collections work side by side, each synced and authorized on its own', async () => {
    const [a, b] = await Promise.all([createRuntime({ transport: 'memory' }), createRuntime({ transport: 'memory' })])
    runtimes.push(a!, b!)
    await a!.connect(b!.addresses()[0]!)
    const [aPublic, bPublic] = await sharing(
      Promise.all([CrdtCoordinator.attach(a!, { namespace: 'crdt.public' }), CrdtCoordinator.attach(b!, { namespace: 'crdt.public' })]),
    )
    const [aPrivate, bPrivate] = await Promise.all([
      CrdtCoordinator.attach(a!, { namespace: 'crdt.private' }),
      CrdtCoordinator.attach(b!, { namespace: 'crdt.private' }),
    ])
    for (const [c, value] of [
      [bPublic!, 'shared'],
      [bPrivate!, 'secret'],
    ] as const) {
      c.cv('tags', orSet)
      await c.mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, value))
    }
    await aPublic!.syncWithPeer(b!.peerId)
    expect(tags(aPublic!)).toEqual(['shared'])
    // a's grant covers crdt.public only
    await expect(aPrivate!.syncWithPeer(b!.peerId)).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
    expect(aPrivate!.documents()).toEqual([])
    await sharing([aPrivate!, bPrivate!])
    await aPrivate!.syncWithPeer(b!.peerId)
    expect(tags(aPrivate!)).toEqual(['secret'])
    expect(tags(aPublic!)).toEqual(['shared'])
  })
})
