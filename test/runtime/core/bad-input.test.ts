// Bad input reaching a runtime over real libp2p TCP: every case gets a typed error and a counter,
// the peer keeps serving, and stored session state is untouched.
import { afterEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { lpStream } from '@libp2p/utils'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { Packr } from 'msgpackr'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { thresholdCeremony } from '../../../runtime/sessions/protocols/threshold-ceremony.js'
import { encodeEnvelope } from '../../../runtime/core/wire.js'
import { ConfigInvalid, AuraError } from '../../../effects/errors.js'
import { componentsOf } from '../../../runtime/core/components.js'
import { decodeSessionRecord } from '../../../runtime/sessions/session-record.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function runtime(extra: Parameters<typeof createRuntime>[0] = {}): Promise<Runtime> {
  const dataDir = mkdtempSync(join(tmpdir(), 'aura-bad-'))
  const rt = await createRuntime({ dataDir, protocols: [thresholdCeremony(2)], sessions: { autoJoin: true }, maxFrameBytes: 64 * 1024, ...extra })
  cleanups.push(
    () => rm(dataDir),
    () => rt.stop(),
  )
  return rt
}
const rm = (dir: string) => rmSync(dir, { recursive: true, force: true })

async function rawNode(): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
  cleanups.push(() => node.stop())
  return node
}

/** Writes raw frames on a fresh stream of `protocol` to `target`. */
async function writeRaw(node: Libp2p, target: Runtime, protocol: string, frames: Uint8Array[]): Promise<void> {
  const stream = await node.dialProtocol(multiaddr(target.addresses()[0]!), protocol)
  const lp = lpStream(stream, { maxDataLength: 1024 * 1024 })
  for (const frame of frames) await lp.write(frame)
}

async function until(predicate: () => boolean, ms = 5_000): Promise<void> {
  const end = Date.now() + ms
  while (!predicate()) {
    if (Date.now() > end) throw new Error('condition not reached')
    await new Promise((r) => setTimeout(r, 10))
  }
}

const storedSessions = (rt: Runtime) =>
  JSON.stringify([...componentsOf(rt).storage.namespace('aura.sessions').range()].map(({ key, value }) => ({ key, record: decodeSessionRecord(value) })))

describe('bad input', () => {
  it('a config that fails zod is ConfigInvalid, listing the issue', async () => {
    await expect(createRuntime({ transport: 'carrier-pigeon' } as never)).rejects.toBeInstanceOf(ConfigInvalid)
    await expect(createRuntime({ maxFrameBytes: -1 })).rejects.toThrow(/maxFrameBytes/)
    await expect(createRuntime({ unknownOption: 1 } as never)).rejects.toBeInstanceOf(ConfigInvalid)
    await expect(createRuntime({ coalesceWrites: 'yes' } as never)).rejects.toThrow(/coalesceWrites/)
  })

  it('malformed, oversized, spoofed and unknown frames are counted, answered, and the peer keeps serving', async () => {
    const alice = await runtime()
    const bob = await runtime()
    await alice.connect(bob.addresses()[0]!)
    const evil = await rawNode()
    const protocol = '/aura/session/1.0.0'
    const packr = new Packr({ useRecords: false })
    const versioned = (value: unknown) => {
      const body = packr.pack(value)
      const frame = new Uint8Array(body.length + 1)
      frame[0] = 1
      frame.set(body, 1)
      return frame
    }
    const before = storedSessions(bob)
    await writeRaw(evil, bob, protocol, [
      new Uint8Array([1, 0xc1, 0xff, 0x00]), // not msgpack
      new Uint8Array([7, 1, 2, 3]), // unknown wire version
      versioned({ v: 1, kind: 'step' }), // envelope fails the schema
      encodeEnvelope({ v: 1, kind: 'step', from: alice.peerId, to: 'session', payload: {} }, 1 << 20), // claims to be alice
      encodeEnvelope({ v: 1, kind: 'no-such-kind', from: evil.peerId.toString(), to: 'session', payload: {} }, 1 << 20),
    ])
    await until(
      () =>
        (bob.metrics().errors['MALFORMED_FRAME'] ?? 0) >= 3 &&
        (bob.metrics().errors['PERMISSION_DENIED'] ?? 0) >= 1 &&
        (bob.metrics().errors['UNKNOWN_PROTOCOL'] ?? 0) >= 1,
    )
    // an oversized frame: rejected by the network layer before decoding
    await writeRaw(evil, bob, protocol, [new Uint8Array(200 * 1024)]).catch(() => undefined)
    await until(() => (bob.metrics().errors['FRAME_TOO_LARGE'] ?? 0) >= 1)
    expect(storedSessions(bob)).toBe(before)

    // bob still serves: a session between alice and bob completes
    const ceremony = thresholdCeremony(2)
    bob.sessions.invitations$.subscribe((invite) => void bob.sessions.executeProtocol(invite.sessionId, invite.protocol))
    const session = await alice.sessions.createSession(
      'ceremony',
      [
        { peerId: alice.peerId, role: 'p1' },
        { peerId: bob.peerId, role: 'p2' },
      ],
      { timeoutMs: 10_000, protocol: ceremony.name },
    )
    expect((await session.executeProtocol()).status).toBe('completed')
  })

  it('a message for an unknown session, a peer outside the roster and a wrong role get typed errors and change nothing', async () => {
    const alice = await runtime()
    const bob = await runtime()
    const mallory = await runtime()
    for (const [a, b] of [
      [alice, bob],
      [mallory, bob],
      [mallory, alice],
    ] as const)
      await a.connect(b.addresses()[0]!)
    const ceremony = thresholdCeremony(2)
    // bob joins but does not execute yet, so the session stays open while we poke at it
    const session = await alice.sessions.createSession(
      'ceremony',
      [
        { peerId: alice.peerId, role: 'p1' },
        { peerId: bob.peerId, role: 'p2' },
      ],
      { timeoutMs: 20_000, protocol: ceremony.name },
    )
    await until(() => bob.sessions.get(session.id)?.state().joined.length === 2)
    await until(() => storedSessions(bob).includes(alice.peerId)) // persisted (writes are asynchronous)
    await new Promise((r) => setTimeout(r, 100))
    const before = storedSessions(bob)

    const unknown = componentsOf(mallory).router.request(bob.peerId, 'session', {
      kind: 'step',
      payload: { sessionId: 'no-such-session', protocol: ceremony.name, step: 0, payload: {} },
    })
    await expect(unknown).rejects.toMatchObject({ code: 'UNKNOWN_SESSION' })
    const outsider = componentsOf(mallory).router.request(bob.peerId, 'session', { kind: 'join', payload: { sessionId: session.id, role: 'p1' } })
    await expect(outsider).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
    const wrongRole = componentsOf(alice).router.request(bob.peerId, 'session', { kind: 'join', payload: { sessionId: session.id, role: 'p2' } })
    await expect(wrongRole).rejects.toMatchObject({ code: 'UNKNOWN_ROLE' })
    const forgedStep = componentsOf(mallory).router.request(bob.peerId, 'session', {
      kind: 'step',
      payload: { sessionId: session.id, protocol: ceremony.name, step: 0, payload: { commitment: 'a'.repeat(64) } },
    })
    await expect(forgedStep).rejects.toMatchObject({ code: 'PERMISSION_DENIED' })
    const badPayload = componentsOf(alice).router.request(bob.peerId, 'session', {
      kind: 'step',
      payload: { sessionId: session.id, protocol: ceremony.name, step: 0, payload: { commitment: 42 } },
    })
    await expect(badPayload).rejects.toMatchObject({ code: 'INVALID_INPUT' })
    const notAnInvite = componentsOf(mallory).router.request(bob.peerId, 'session', { kind: 'invite', payload: { input: { nonsense: true } } })
    await expect(notAnInvite).rejects.toBeInstanceOf(AuraError)

    const errors = bob.metrics().errors
    expect(errors['UNKNOWN_SESSION']).toBe(1)
    expect(errors['PERMISSION_DENIED']).toBe(2)
    expect(errors['UNKNOWN_ROLE']).toBe(1)
    expect(errors['INVALID_INPUT']).toBe(2)
    expect(storedSessions(bob)).toBe(before)

    // local API misuse is typed too
    await expect(alice.sessions.joinSession('no-such-session', 'p1')).rejects.toMatchObject({ code: 'UNKNOWN_SESSION' })
    await expect(
      alice.sessions.createSession('x', [
        { peerId: alice.peerId, role: 'a' },
        { peerId: alice.peerId, role: 'b' },
      ]),
    ).rejects.toMatchObject({ code: 'INVALID_INPUT' })
    await expect(alice.timeouts.withTimeout(Number.NaN, async () => 1)).rejects.toMatchObject({ code: 'INVALID_INPUT' })
    await expect(alice.timeouts.withTimeout(-5, async () => 1)).rejects.toMatchObject({ code: 'INVALID_INPUT' })

    // and the session still completes; running it again, while it runs or once it is done, is a
    // transition it cannot take: typed, and nothing changes
    const result = bob.sessions.executeProtocol(session.id, ceremony.name)
    const running = session.executeProtocol()
    await expect(session.executeProtocol()).rejects.toMatchObject({ code: 'INVALID_TRANSITION' })
    expect((await running).status).toBe('completed')
    expect((await result).status).toBe('completed')
    await expect(session.executeProtocol()).rejects.toMatchObject({ code: 'INVALID_TRANSITION' })
    expect(session.state().status).toBe('completed')
  })
})
