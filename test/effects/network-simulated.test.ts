import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isAuraError } from '../../effects/errors.js'
import type { IncomingFrame, PeerEvent } from '../../effects/network/index.js'
import { SimulatedNetworkHub, type FaultConfig } from '../../effects/network/simulated.js'
import type { Random } from '../../effects/random/index.js'
import type { Clock, TimerHandle } from '../../effects/time/index.js'

// Stand-ins until effects/time/virtual.ts and effects/random/seeded.ts land: a clock that only
// moves when told (timers at equal times fire in the order they were set) and a mulberry32 PRNG.
class TestClock implements Clock {
  private t = 1_000
  private seq = 0
  private timers: { at: number; seq: number; fn: () => void }[] = []
  now(): number {
    return this.t
  }
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const timer = { at: this.t + Math.max(0, ms), seq: this.seq++, fn }
    this.timers.push(timer)
    return timer
  }
  clearTimeout(handle: TimerHandle): void {
    this.timers = this.timers.filter((t) => t !== handle)
  }
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms))
  }
  pending(): number {
    return this.timers.length
  }
  /** fires every timer due up to now + ms, in time order */
  advance(ms: number): void {
    const until = this.t + ms
    for (;;) {
      this.timers.sort((a, b) => a.at - b.at || a.seq - b.seq)
      const next = this.timers[0]
      if (next === undefined || next.at > until) break
      this.timers.shift()
      this.t = next.at
      next.fn()
    }
    this.t = until
  }
  runAll(): void {
    while (this.timers.length > 0) this.advance(Math.max(0, ...this.timers.map((t) => t.at - this.t)))
  }
}

class TestRandom implements Random {
  private state: number
  constructor(seed: number) {
    this.state = seed >>> 0
  }
  float(): number {
    this.state = (this.state + 0x6d2b79f5) >>> 0
    let x = this.state
    x = Math.imul(x ^ (x >>> 15), x | 1)
    x ^= x + Math.imul(x ^ (x >>> 7), x | 61)
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
  int(maxExclusive: number): number {
    return Math.floor(this.float() * maxExclusive)
  }
  bytes(n: number): Uint8Array {
    return Uint8Array.from({ length: n }, () => this.int(256))
  }
  choice<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!
  }
  shuffle<T>(items: readonly T[]): T[] {
    const out = [...items]
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[out[i], out[j]] = [out[j]!, out[i]!]
    }
    return out
  }
  id(bytes = 8): string {
    return [...this.bytes(bytes)].map((b) => b.toString(16).padStart(2, '0')).join('')
  }
}

const P = '/test/1.0.0'
const frame = (n: number) => Uint8Array.of(n >> 8, n & 0xff)
const seqOf = (f: IncomingFrame) => (f.bytes[0]! << 8) | f.bytes[1]!

function setup(seed: number, faults: FaultConfig = {}, peers = ['a', 'b', 'c']) {
  const clock = new TestClock()
  const random = new TestRandom(seed)
  const hub = new SimulatedNetworkHub({ clock, random, faults })
  const nets = Object.fromEntries(peers.map((p) => [p, hub.createNetwork(p)]))
  const received: Record<string, IncomingFrame[]> = Object.fromEntries(peers.map((p) => [p, []]))
  for (const p of peers) void nets[p]!.handle(P, (f) => received[p]!.push(f))
  return { clock, random, hub, nets, received }
}

async function chatter(seed: number) {
  const { clock, hub, nets } = setup(seed, { dropRate: 0.1, duplicateRate: 0.1, minDelayMs: 0, maxDelayMs: 50, reorder: true })
  const peers = ['a', 'b', 'c']
  const pick = new TestRandom(7) // the workload is fixed; only the hub's randomness varies
  for (let i = 0; i < 150; i++) {
    const from = pick.choice(peers)
    const to = pick.choice(peers.filter((p) => p !== from))
    await nets[from]!.send(to, P, frame(i))
    if (i % 10 === 0) clock.advance(7)
  }
  clock.runAll()
  return hub.trace.map((e) => ({ ...e }))
}

describe('SimulatedNetworkHub', () => {
  it('replays: the same seed gives an identical trace, another seed a different one', async () => {
    const first = await chatter(42)
    const again = await chatter(42)
    const other = await chatter(43)
    expect(first.length).toBeGreaterThan(150)
    expect(again).toEqual(first)
    expect(other).not.toEqual(first)
  })

  it('delivers nothing until the clock fires, even with zero delay', async () => {
    const { clock, nets, received, hub } = setup(1)
    await nets.a!.send('b', P, frame(1))
    expect(received.b).toHaveLength(0)
    expect(clock.pending()).toBe(1)
    clock.advance(0)
    expect(received.b!.map(seqOf)).toEqual([1])
    expect(received.b![0]!.from).toBe('a')
    expect(hub.trace.map((e) => e.type)).toEqual(['send', 'deliver'])
  })

  it('honours drop and duplicate rates roughly', async () => {
    const n = 2000
    const { clock, nets, received, hub } = setup(9, { dropRate: 0.2, duplicateRate: 0.1 })
    for (let i = 0; i < n; i++) await nets.a!.send('b', P, frame(i))
    clock.runAll()
    const drops = hub.trace.filter((e) => e.type === 'drop' && e.reason === 'loss').length
    const dups = hub.trace.filter((e) => e.type === 'duplicate').length
    expect(drops / n).toBeGreaterThan(0.16)
    expect(drops / n).toBeLessThan(0.24)
    // duplication is drawn only for frames that survived the loss draw
    expect(dups / (n - drops)).toBeGreaterThan(0.07)
    expect(dups / (n - drops)).toBeLessThan(0.13)
    expect(received.b).toHaveLength(n - drops + dups)
  })

  it('keeps the order of one flow under random delays when reorder is off', async () => {
    const { clock, nets, received } = setup(5, { minDelayMs: 0, maxDelayMs: 100 })
    for (let i = 0; i < 200; i++) {
      await nets.a!.send('b', P, frame(i))
      if (i % 3 === 0) clock.advance(1)
    }
    clock.runAll()
    expect(received.b!.map(seqOf)).toEqual(Array.from({ length: 200 }, (_, i) => i))
  })

  it('lets frames overtake when reorder is on', async () => {
    const { clock, nets, received } = setup(5, { minDelayMs: 0, maxDelayMs: 100, reorder: true })
    for (let i = 0; i < 200; i++) await nets.a!.send('b', P, frame(i))
    clock.runAll()
    const order = received.b!.map(seqOf)
    expect([...order].sort((x, y) => x - y)).toEqual(Array.from({ length: 200 }, (_, i) => i))
    expect(order).not.toEqual([...order].sort((x, y) => x - y))
  })

  it('law: without reorder, every flow is delivered as a subsequence of what was sent', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.integer(),
        fc.record({
          dropRate: fc.double({ min: 0, max: 0.5, noNaN: true }),
          duplicateRate: fc.double({ min: 0, max: 0.5, noNaN: true }),
          maxDelayMs: fc.integer({ min: 0, max: 40 }),
        }),
        fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c'), fc.constantFrom('a', 'b', 'c'), fc.nat(5)), { maxLength: 60 }),
        async (seed, faults, plan) => {
          const { clock, nets, received } = setup(seed, faults)
          const sent: Record<string, number[]> = {}
          let n = 0
          for (const [from, to, pause] of plan) {
            if (from === to) continue
            const i = n++
            ;(sent[`${from}>${to}`] ??= []).push(i)
            await nets[from]!.send(to, P, frame(i))
            clock.advance(pause)
          }
          clock.runAll()
          for (const to of ['a', 'b', 'c']) {
            for (const from of ['a', 'b', 'c']) {
              const got = received[to]!.filter((f) => f.from === from).map(seqOf)
              // non-decreasing (a duplicate sits right after its original) and only sent frames
              for (let k = 1; k < got.length; k++) expect(got[k]!).toBeGreaterThanOrEqual(got[k - 1]!)
              for (const s of got) expect(sent[`${from}>${to}`]).toContain(s)
            }
          }
        },
      ),
      { numRuns: 40 },
    )
  })

  it('partitions: frames across the cut are dropped, including those in flight, until heal', async () => {
    const { clock, nets, received, hub } = setup(3, { minDelayMs: 10, maxDelayMs: 10 })
    await nets.a!.send('b', P, frame(1)) // in flight when the cut happens
    clock.advance(5)
    hub.partition([['a'], ['b', 'c']])
    await expect(nets.a!.send('b', P, frame(2))).resolves.toBeUndefined()
    await nets.b!.send('c', P, frame(3)) // same side: fine
    await expect(nets.a!.connect('/sim/b')).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' })
    clock.runAll()
    expect(received.b).toHaveLength(0)
    expect(received.c!.map(seqOf)).toEqual([3])
    expect(hub.trace.filter((e) => e.type === 'drop').map((e) => e.reason)).toEqual(['partition', 'partition'])

    hub.heal()
    await nets.a!.send('b', P, frame(4))
    clock.runAll()
    expect(received.b!.map(seqOf)).toEqual([4])
  })

  it('crash: others see the peer leave, its frames are lost, restart brings it back', async () => {
    const { clock, nets, received, hub } = setup(3, { minDelayMs: 10, maxDelayMs: 10 })
    const seenByA: PeerEvent[] = []
    nets.a!.peerEvents.subscribe((e) => seenByA.push(e))
    await expect(nets.a!.connect('/sim/b')).resolves.toBe('b')
    expect(nets.a!.connectedPeers()).toEqual(['b'])
    await nets.a!.send('b', P, frame(1)) // in flight to b
    await nets.b!.send('a', P, frame(2)) // in flight from b
    hub.crash('b')
    await expect(nets.a!.send('b', P, frame(3))).resolves.toBeUndefined()
    await expect(nets.b!.send('c', P, frame(4))).resolves.toBeUndefined()
    clock.runAll()
    expect(received.a).toHaveLength(0)
    expect(received.b).toHaveLength(0)
    expect(received.c).toHaveLength(0)
    expect(seenByA).toEqual([
      { type: 'peer:connect', peerId: 'b' },
      { type: 'peer:disconnect', peerId: 'b' },
    ])
    expect(nets.a!.connectedPeers()).toEqual([])
    expect(hub.trace.filter((e) => e.type === 'deliver')).toHaveLength(0)

    hub.restart('b')
    await nets.a!.send('b', P, frame(5))
    clock.runAll()
    expect(received.b!.map(seqOf)).toEqual([5])
    expect(seenByA.at(-1)).toEqual({ type: 'peer:connect', peerId: 'b' })
  })

  it('reincarnate: a crashed peer gets a new network under the same id; the old one stays dead, frames of the old life are lost', async () => {
    const { clock, nets, received, hub } = setup(4, { minDelayMs: 10, maxDelayMs: 10 })
    expect(() => hub.reincarnate('b')).toThrow(/has not crashed/)
    await nets.a!.send('b', P, frame(1)) // in flight to b's old life
    hub.crash('b')
    const reborn = hub.reincarnate('b')
    expect(reborn).not.toBe(nets.b)
    expect(reborn.peerId).toBe('b')
    expect(reborn.connectedPeers()).toEqual([])
    const newLife: IncomingFrame[] = []
    await reborn.handle(P, (f) => newLife.push(f))
    await nets.b!.send('c', P, frame(2)) // the old process, still running, reaches no one
    await expect(nets.b!.connect('/sim/c')).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' })
    clock.runAll()
    expect(newLife).toHaveLength(0)
    expect(received.b).toHaveLength(0)
    expect(received.c).toHaveLength(0)
    await expect(reborn.connect('/sim/a')).resolves.toBe('a')
    await nets.a!.send('b', P, frame(3))
    clock.runAll()
    expect(newLife.map(seqOf)).toEqual([3])
    expect(received.b).toHaveLength(0)
  })

  it('rejects unknown peers and oversized frames, and reports frames too large for the receiver', async () => {
    const clock = new TestClock()
    const hub = new SimulatedNetworkHub({ clock, random: new TestRandom(1), maxFrameBytes: 100 })
    const a = hub.createNetwork('a')
    const small = hub.createNetwork('small', { maxFrameBytes: 10 })
    const errors: unknown[] = []
    small.frameErrors.subscribe((e) => errors.push(e))
    await small.handle(P, () => undefined)
    await expect(a.send('nobody', P, frame(1))).rejects.toMatchObject({ code: 'PEER_UNREACHABLE' })
    await expect(a.send('small', P, new Uint8Array(101))).rejects.toMatchObject({ code: 'FRAME_TOO_LARGE' })
    await a.send('small', P, new Uint8Array(50))
    clock.runAll()
    expect(errors).toHaveLength(1)
    expect(errors[0]).toMatchObject({ from: 'a', protocol: P, error: { code: 'FRAME_TOO_LARGE' } })
    expect(hub.trace.at(-1)).toMatchObject({ type: 'drop', reason: 'oversized', bytes: 50 })
    expect(() => hub.createNetwork('a')).toThrow(/already exists/)
    expect(() => hub.setFaults({ dropRate: 2 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }))
    expect(() => hub.setFaults({ minDelayMs: 5, maxDelayMs: 1 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }))
  })

  it('copies bytes at send time and survives a throwing handler', async () => {
    const { clock, nets, received } = setup(1)
    const got: number[] = []
    let calls = 0
    await nets.c!.handle(P, (f) => {
      calls++
      if (calls === 1) throw new Error('handler bug')
      got.push(seqOf(f))
    })
    const buf = frame(7)
    await nets.a!.send('b', P, buf)
    buf[1] = 99
    await nets.a!.send('c', P, frame(1))
    await nets.a!.send('c', P, frame(2))
    clock.runAll()
    expect(received.b!.map(seqOf)).toEqual([7])
    expect(got).toEqual([2])
  })

  it('a stopped network refuses to send; peers see it leave; frames to it are dropped', async () => {
    const { clock, nets, received, hub } = setup(1)
    const seenByB: PeerEvent[] = []
    nets.b!.peerEvents.subscribe((e) => seenByB.push(e))
    await nets.a!.connect('/sim/b')
    await nets.a!.stop()
    await nets.a!.stop()
    await expect(nets.a!.send('b', P, frame(1))).rejects.toSatisfy((e: unknown) => isAuraError(e) && e.code === 'NETWORK')
    await nets.b!.send('a', P, frame(2))
    clock.runAll()
    expect(received.a).toHaveLength(0)
    expect(hub.trace.at(-1)).toMatchObject({ type: 'drop', reason: 'stopped' })
    expect(seenByB).toEqual([
      { type: 'peer:connect', peerId: 'a' },
      { type: 'peer:disconnect', peerId: 'a' },
    ])
    await nets.a!.start()
    await nets.b!.send('a', P, frame(3))
    clock.runAll()
    expect(received.a!.map(seqOf)).toEqual([3])
  })
})
