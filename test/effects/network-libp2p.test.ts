import { generateKeyPair } from '@libp2p/crypto/keys'
import { memory } from '@libp2p/memory'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { lpStream } from '@libp2p/utils'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { afterEach, describe, expect, it } from 'vitest'
import type { FrameError, IncomingFrame, PeerEvent } from '../../effects/network/index.js'
import { Libp2pNetwork, type Libp2pNetworkOptions } from '../../effects/network/libp2p.js'

const P = '/aura/test/1.0.0'
const running: { stop(): unknown }[] = []

afterEach(async () => {
  await Promise.allSettled(running.splice(0).map((n) => n.stop()))
})

async function network(options: Libp2pNetworkOptions): Promise<Libp2pNetwork> {
  const net = await Libp2pNetwork.create(options)
  running.push(net)
  return net
}

/** a bare libp2p node that can write whatever it likes on a stream */
async function rawNode(transport: 'tcp' | 'memory'): Promise<Libp2p> {
  const node = await createLibp2p({
    addresses: { listen: [transport === 'tcp' ? '/ip4/127.0.0.1/tcp/0' : `/memory/raw-${crypto.randomUUID()}`] },
    transports: [transport === 'tcp' ? tcp() : memory()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  })
  running.push(node)
  return node
}

/** waits (in real time: this is a real network) until the condition holds */
async function until(condition: () => boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((r) => setTimeout(r, 5))
  }
}

const encode = (n: number) => new TextEncoder().encode(`frame-${n}`)
const decode = (f: IncomingFrame) => new TextDecoder().decode(f.bytes)

function collect(net: Libp2pNetwork, protocol = P): IncomingFrame[] {
  const got: IncomingFrame[] = []
  void net.handle(protocol, (f) => got.push(f))
  return got
}

describe.each(['tcp', 'memory'] as const)('Libp2pNetwork over %s', (transport) => {
  it('connects and carries frames both ways, in order, with the authenticated sender', async () => {
    const a = await network({ transport })
    const b = await network({ transport })
    const atA = collect(a)
    const atB = collect(b)
    expect(a.addresses().every((ad) => ad.endsWith(`/p2p/${a.peerId}`))).toBe(true)
    await expect(b.connect(a.addresses()[0]!)).resolves.toBe(a.peerId)
    for (let i = 0; i < 20; i++) await b.send(a.peerId, P, encode(i))
    for (let i = 0; i < 20; i++) await a.send(b.peerId, P, encode(100 + i))
    await until(() => atA.length === 20 && atB.length === 20, 'frames')
    expect(atA.map(decode)).toEqual(Array.from({ length: 20 }, (_, i) => `frame-${i}`))
    expect(atB.map(decode)).toEqual(Array.from({ length: 20 }, (_, i) => `frame-${100 + i}`))
    expect(atA.every((f) => f.from === b.peerId && f.protocol === P)).toBe(true)
    expect(atB.every((f) => f.from === a.peerId)).toBe(true)
    expect(a.connectedPeers()).toEqual([b.peerId])
  })

  it('keeps the order of 200 concurrent sends and carries frames of exactly maxFrameBytes and of zero bytes', async () => {
    const a = await network({ transport, maxFrameBytes: 64 * 1024 })
    const b = await network({ transport, maxFrameBytes: 64 * 1024 })
    const atA = collect(a)
    await b.connect(a.addresses()[0]!)
    await Promise.all(Array.from({ length: 200 }, (_, i) => b.send(a.peerId, P, encode(i))))
    const big = new Uint8Array(64 * 1024).fill(7)
    await b.send(a.peerId, P, big)
    await b.send(a.peerId, P, new Uint8Array(0))
    await until(() => atA.length === 202, '202 frames')
    expect(atA.slice(0, 200).map(decode)).toEqual(Array.from({ length: 200 }, (_, i) => `frame-${i}`))
    expect(atA[200]!.bytes).toEqual(big)
    expect(atA[201]!.bytes.byteLength).toBe(0)
  })

  it('coalescing writes: concurrent sends keep their order, and a send cancelled before its turn is never sent', async () => {
    const a = await network({ transport, coalesceWrites: true })
    const b = await network({ transport, coalesceWrites: true })
    const atA = collect(a)
    await b.connect(a.addresses()[0]!)
    const cancel = new AbortController()
    const sends = [
      ...Array.from({ length: 100 }, (_, i) => b.send(a.peerId, P, encode(i))),
      b.send(a.peerId, P, encode(-1), { signal: cancel.signal }),
      ...Array.from({ length: 100 }, (_, i) => b.send(a.peerId, P, encode(100 + i))),
    ]
    cancel.abort()
    const settled = await Promise.allSettled(sends)
    expect(settled.filter((r) => r.status === 'rejected')).toEqual([expect.objectContaining({ reason: expect.objectContaining({ code: 'CANCELLED' }) })])
    await b.send(a.peerId, P, encode(200))
    await until(() => atA.length === 201, '201 frames')
    expect(atA.map(decode)).toEqual(Array.from({ length: 201 }, (_, i) => `frame-${i}`))
  })

  it('rejects an oversized send without sending it', async () => {
    const a = await network({ transport, maxFrameBytes: 1024 })
    const b = await network({ transport, maxFrameBytes: 1024 })
    const atA = collect(a)
    await b.connect(a.addresses()[0]!)
    await expect(b.send(a.peerId, P, new Uint8Array(1025))).rejects.toMatchObject({ code: 'FRAME_TOO_LARGE' })
    await b.send(a.peerId, P, encode(1))
    await until(() => atA.length === 1, 'the small frame')
    expect(atA.map(decode)).toEqual(['frame-1'])
  })

  it('reports an oversized or truncated incoming frame on frameErrors and keeps serving', async () => {
    const a = await network({ transport, maxFrameBytes: 1024 })
    const atA = collect(a)
    const errors: FrameError[] = []
    a.frameErrors.subscribe((e) => errors.push(e))
    const raw = await rawNode(transport)
    const target = multiaddr(a.addresses()[0]!)

    const oversized = await raw.dialProtocol(target, P)
    await lpStream(oversized).write(new Uint8Array(4096))
    await until(() => errors.length === 1, 'the oversized frame error')
    expect(errors[0]).toMatchObject({ from: raw.peerId.toString(), protocol: P, error: { code: 'FRAME_TOO_LARGE' } })
    await until(() => oversized.status !== 'open', 'the oversized stream to be closed')

    const truncated = await raw.dialProtocol(target, P)
    truncated.send(Uint8Array.of(100, 1, 2, 3)) // promises 100 bytes, delivers 3
    await truncated.close()
    await until(() => errors.length === 2, 'the truncated frame error')
    expect(errors[1]).toMatchObject({ from: raw.peerId.toString(), protocol: P, error: { code: 'MALFORMED_FRAME' } })

    const fine = await raw.dialProtocol(target, P)
    await lpStream(fine).write(encode(1))
    const b = await network({ transport })
    await b.connect(a.addresses()[0]!)
    await b.send(a.peerId, P, encode(2))
    await until(() => atA.length === 2, 'later frames')
    expect(atA.map((f) => [f.from, decode(f)]).sort()).toEqual(
      [
        [raw.peerId.toString(), 'frame-1'],
        [b.peerId, 'frame-2'],
      ].sort(),
    )
    expect(errors).toHaveLength(2)
  })

  it('rejects a send on a protocol the peer does not handle, and a send to an unknown peer', async () => {
    const a = await network({ transport })
    const b = await network({ transport })
    const stranger = await network({ transport })
    await b.connect(a.addresses()[0]!)
    await expect(b.send(a.peerId, '/aura/nobody/1.0.0', encode(1))).rejects.toMatchObject({ code: 'UNKNOWN_PROTOCOL' })
    await expect(b.send(stranger.peerId, P, encode(1))).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' })
  })

  it('recovers when the receiver drops its end of the long-lived stream', async () => {
    const a = await network({ transport })
    const b = await network({ transport })
    const first = collect(a)
    await b.connect(a.addresses()[0]!)
    await b.send(a.peerId, P, encode(0))
    await until(() => first.length === 1, 'the first frame')
    await a.unhandle(P) // resets the inbound stream under b's open channel
    const again = collect(a)
    // b learns of the reset asynchronously; frames written before that are lost (at-most-once),
    // so keep sending until one arrives on a fresh stream
    const deadline = Date.now() + 10_000
    for (let i = 1; again.length === 0 && Date.now() < deadline; i++) {
      await b.send(a.peerId, P, encode(i)).catch(() => undefined)
      await new Promise((r) => setTimeout(r, 10))
    }
    expect(again.length).toBeGreaterThan(0)
    expect(again.every((f) => f.from === b.peerId)).toBe(true)
  })

  it('survives a throwing handler and delivers the next frames', async () => {
    const a = await network({ transport })
    const b = await network({ transport })
    const got: string[] = []
    await a.handle(P, (f) => {
      if (decode(f) === 'frame-0') throw new Error('handler bug')
      got.push(decode(f))
    })
    await b.connect(a.addresses()[0]!)
    for (let i = 0; i < 3; i++) await b.send(a.peerId, P, encode(i))
    await until(() => got.length === 2, 'frames after the throw')
    expect(got).toEqual(['frame-1', 'frame-2'])
  })

  it('emits peer events on connect and when the remote stops; stop is idempotent', async () => {
    const a = await network({ transport })
    const b = await network({ transport })
    const seen: PeerEvent[] = []
    a.peerEvents.subscribe((e) => seen.push(e))
    await b.connect(a.addresses()[0]!)
    await until(() => seen.length === 1, 'peer:connect')
    expect(seen[0]).toEqual({ type: 'peer:connect', peerId: b.peerId })
    await Promise.all([b.stop(), b.stop()])
    await b.stop()
    await until(() => seen.length === 2, 'peer:disconnect')
    expect(seen[1]).toEqual({ type: 'peer:disconnect', peerId: b.peerId })
    await expect(b.send(a.peerId, P, encode(1))).rejects.toMatchObject({ code: 'NETWORK' })
    await expect(a.send(b.peerId, P, encode(1))).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' })
  })

  it('redials a restarted peer on demand, which keeps its peer id from its key', async () => {
    const privateKey = await generateKeyPair('Ed25519')
    const a1 = await network({ transport, privateKey })
    const b = await network({ transport })
    const seen: PeerEvent[] = []
    b.peerEvents.subscribe((e) => seen.push(e))
    const at1 = collect(a1)
    const address = a1.addresses()[0]!
    await b.connect(address)
    await b.send(a1.peerId, P, encode(1))
    await until(() => at1.length === 1, 'the first frame')
    await a1.stop()
    await until(() => seen.some((e) => e.type === 'peer:disconnect'), 'b to notice')

    // same key, same listen address: b's stream is dead, so send must open a new one by peer id
    const a2 = await network({ transport, privateKey, listen: [address.replace(/\/p2p\/.*$/, '')] })
    expect(a2.peerId).toBe(a1.peerId)
    const at2 = collect(a2)
    await b.send(a2.peerId, P, encode(2))
    await until(() => at2.length === 1, 'the frame after restart')
    expect(at2.map(decode)).toEqual(['frame-2'])
  })
})

describe('Libp2pNetwork options', () => {
  it('rejects invalid options with ConfigInvalid and bad send arguments with InvalidInput', async () => {
    await expect(Libp2pNetwork.create({ transport: 'udp' } as never)).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    await expect(Libp2pNetwork.create({ transport: 'tcp', maxFrameBytes: 0 })).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    await expect(Libp2pNetwork.create({ transport: 'tcp', listen: ['not an address'] })).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    await expect(Libp2pNetwork.create({ transport: 'memory', privateKey: {} as never })).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    const a = await network({ transport: 'memory' })
    expect(a.maxFrameBytes).toBe(4 * 1024 * 1024)
    await expect(a.send('not-a-peer-id', P, encode(1))).rejects.toMatchObject({ code: 'INVALID_INPUT' })
    await expect(a.send(a.peerId, 'no-slash', encode(1))).rejects.toMatchObject({ code: 'INVALID_INPUT' })
    await expect(a.connect('garbage')).rejects.toMatchObject({ code: 'INVALID_INPUT' })
    const b = await network({ transport: 'memory' })
    await expect(a.send(b.peerId, P, encode(1), { signal: AbortSignal.abort() })).rejects.toMatchObject({ code: 'CANCELLED' })
  })

  it('serves again after stop then start, with its handlers kept', async () => {
    const a = await network({ transport: 'memory' })
    const b = await network({ transport: 'memory' })
    const atA = collect(a)
    await a.stop()
    await a.start()
    await a.start()
    await b.connect(a.addresses()[0]!)
    await b.send(a.peerId, P, encode(1))
    await until(() => atA.length === 1, 'a frame after restart')
    expect(atA.map(decode)).toEqual(['frame-1'])
  })
})
