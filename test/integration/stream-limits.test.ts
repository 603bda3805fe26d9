// The open-stream limit per peer is real on libp2p: streams a peer opens beyond
// limits.maxStreamsPerPeer are refused, and the peer's other streams keep working.
import { afterEach, describe, expect, it } from 'vitest'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import type { Stream } from '@libp2p/interface'
import { createRuntime } from '../../runtime/core/runtime.js'

const cleanups: Array<() => Promise<void> | void> = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

describe('open-stream limit per peer', () => {
  it('streams beyond maxStreamsPerPeer on a protocol are refused', async () => {
    const LIMIT = 8
    const runtime = await createRuntime({ limits: { maxStreamsPerPeer: LIMIT } })
    cleanups.push(() => runtime.stop())
    const node: Libp2p = await createLibp2p({
      addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
      transports: [tcp()],
      connectionEncrypters: [noise()],
      streamMuxers: [yamux()],
    })
    cleanups.push(() => node.stop())
    const address = multiaddr(runtime.addresses()[0]!)
    const opened: Stream[] = []
    let refused = 0
    for (let i = 0; i < LIMIT + 4; i++) {
      try {
        // ours may open as many as it likes; the runtime's side decides
        opened.push(await node.dialProtocol(address, '/aura/session/1.0.0', { maxOutboundStreams: 1_000 }))
      } catch {
        refused++
      }
    }
    const open = opened.filter((s) => s.status === 'open').length
    expect(open).toBeLessThanOrEqual(LIMIT)
    expect(refused + (opened.length - open)).toBeGreaterThanOrEqual(4)
  })
})
