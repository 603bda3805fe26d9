// A capability presented once per peer and collection, then named by id (ref): the ref is
// checked like the token itself (revocation still denies), works only for the peer that
// presented the token, and a responder that forgot it is sent the token again.
import { afterEach, describe, expect, it, vi } from 'vitest'
import { orSet, type ORSetState } from '../../../runtime/crdt/lattices/index.js'
import { CrdtCoordinator } from '../../../runtime/crdt/crdt-coordinator.js'
import { CollectionGate } from '../../../runtime/crdt/collection-gate.js'
import { PresentedTokens } from '../../../runtime/crdt/credential-sessions.js'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { componentsOf } from '../../../runtime/core/components.js'

const runtimes: Runtime[] = []
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.stop()
})

async function sharedPair() {
  const [owner, reader] = await Promise.all([createRuntime({ transport: 'memory' }), createRuntime({ transport: 'memory' })])
  runtimes.push(owner!, reader!)
  await reader!.connect(owner!.addresses()[0]!)
  const [o, r] = await Promise.all([CrdtCoordinator.attach(owner!), CrdtCoordinator.attach(reader!)])
  const granted = await o!.grantAccess(reader!.peerId)
  r!.addCapability(granted)
  o!.addCapability(await r!.grantAccess(owner!.peerId))
  o!.cv('tags', orSet)
  r!.cv('tags', orSet)
  return { owner: owner!, reader: reader!, o: o!, r: r!, granted }
}

const add = (c: CrdtCoordinator, tag: string) => c.mutate<ORSetState>('tags', (s, replica) => orSet.add(s, replica, tag))
const tags = (c: CrdtCoordinator) => orSet.values(c.state<ORSetState>('tags'))
type Sent = { kind: string; payload: { capability?: unknown; ref?: string; known?: string } }

describe('capabilities presented once per peer and collection', () => {
  it('the first sync carries the token, later ones name it by ref and get the responder’s by ref', async () => {
    const { owner, reader, o, r, granted } = await sharedPair()
    const request = vi.spyOn(componentsOf(reader).router, 'request')
    await add(o, 'one')
    await r.syncWithPeer(owner.peerId)
    await add(o, 'two')
    await r.syncWithPeer(owner.peerId)
    const sent = request.mock.calls.map((call) => call[2] as Sent)
    expect(sent[0]!.payload.capability).toEqual(granted)
    expect(sent[0]!.payload.ref).toBeUndefined()
    const last = sent[sent.length - 1]!
    expect(last.payload.capability).toBeUndefined()
    expect(last.payload.ref).toBe(granted.id)
    expect(last.payload.known).toBe((await o.credentialFor(reader.peerId)).id)
    expect(tags(r)).toEqual(['one', 'two'])
  })

  it('a token revoked after it was accepted is refused when named by ref, and nothing is applied', async () => {
    const { owner, reader, o, r, granted } = await sharedPair()
    await add(o, 'before')
    await r.syncWithPeer(owner.peerId)
    await owner.storage.revoke(granted.id)
    await add(o, 'after')
    await expect(r.syncWithPeer(owner.peerId)).rejects.toMatchObject({ code: 'PERMISSION_DENIED', details: { reason: 'revoked' } })
    expect(tags(r)).toEqual(['before'])
  })

  it('a ref names a token only for the peer that presented it', async () => {
    const { owner, reader, o, r, granted } = await sharedPair()
    await r.syncWithPeer(owner.peerId)
    const other = await createRuntime({ transport: 'memory' })
    runtimes.push(other)
    await other.connect(owner.addresses()[0]!)
    await add(o, 'secret')
    const payload = { collection: o.collection, ref: granted.id, body: { all: true, docs: [] } }
    await expect(componentsOf(other).router.request(owner.peerId, 'crdt', { kind: 'sync', payload }, 5_000)).rejects.toMatchObject({
      code: 'PERMISSION_DENIED',
      details: { reason: 'unknown-credential' },
    })
    // the peer that presented it still syncs by ref
    await r.syncWithPeer(owner.peerId)
    expect(tags(r)).toEqual(['secret'])
  })

  it('a responder that forgot the token (as after a restart) is sent it again, once', async () => {
    const { owner, reader, o, r, granted } = await sharedPair()
    await r.syncWithPeer(owner.peerId)
    const gate = CollectionGate.of(componentsOf(owner).router, async () => {}) as unknown as { presented: PresentedTokens }
    gate.presented = new PresentedTokens()
    const request = vi.spyOn(componentsOf(reader).router, 'request')
    await add(o, 'later')
    await r.syncWithPeer(owner.peerId)
    const sent = request.mock.calls.map((call) => call[2] as Sent)
    expect(sent.map((s) => [s.payload.ref, s.payload.capability === undefined ? undefined : 'token'])).toEqual([
      [granted.id, undefined],
      [undefined, 'token'],
    ])
    expect(tags(r)).toEqual(['later'])
  })
})
