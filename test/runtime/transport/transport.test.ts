import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromString } from '@libp2p/peer-id'
import type { Libp2p } from 'libp2p'
import fc from 'fast-check'
import { afterEach, describe, expect, it } from 'vitest'
import { isAuraError } from '../../../effects/errors.js'
import type { Network } from '../../../effects/network/index.js'
import { Libp2pNetwork } from '../../../effects/network/libp2p.js'
import { SimulatedNetworkHub, type FaultConfig } from '../../../effects/network/simulated.js'
import { CryptoRandom, type Random } from '../../../effects/random/index.js'
import { SeededRandom } from '../../../effects/random/seeded.js'
import { SystemClock, type Clock } from '../../../effects/time/index.js'
import { VirtualClock } from '../../../effects/time/virtual.js'
import { EventBus, type RuntimeEvent } from '../../../runtime/core/events.js'
import { Metrics } from '../../../runtime/core/metrics.js'
import { Router, protocolFor } from '../../../runtime/core/router.js'
import { TransportCoordinator, type ChannelMessage, type TransportCoordinatorOptions } from '../../../runtime/transport/transport-coordinator.js'

/** A coordinator wired as createRuntime wires it: on a router and an event bus (with metrics) over the network. */
function transportOn(network: Network, clock: Clock, random: Random, options: Partial<TransportCoordinatorOptions> = {}) {
  const bus = new EventBus(
    () => network.peerId,
    () => clock.now(),
  )
  const metrics = new Metrics(bus.events$)
  const router = new Router({ network, bus, clock, random, maxFrameBytes: network.maxFrameBytes })
  const transport = new TransportCoordinator({ peerId: network.peerId, router, bus, network, clock, random, ...options })
  return { bus, metrics, router, transport }
}

// ---------------------------------------------------------------------------------------------
// Simulated network

const fast = { maxAttempts: 6, initialDelayMs: 20, maxDelayMs: 200, multiplier: 2, jitter: 'equal' as const }

function simulate(seed: number, faults: FaultConfig = {}, names = ['a', 'b'], options: Partial<TransportCoordinatorOptions> = {}) {
  const clock = new VirtualClock(1_000)
  const hub = new SimulatedNetworkHub({ clock, random: new SeededRandom(seed), faults })
  const nets = Object.fromEntries(names.map((n) => [n, hub.createNetwork(n)]))
  const wired = Object.fromEntries(
    names.map((n, i) => [
      n,
      transportOn(nets[n]!, clock, new SeededRandom(seed * 31 + i), {
        ackTimeoutMs: 100,
        handshakeTimeoutMs: 100,
        drainTimeoutMs: 1_000,
        reconnect: { maxAttempts: 4, initialDelayMs: 20, maxDelayMs: 200, multiplier: 2, jitter: 'equal' },
        sendPolicy: fast,
        ...options,
      }),
    ]),
  )
  const peers = Object.fromEntries(names.map((n) => [n, wired[n]!.transport]))
  const inbox = Object.fromEntries(names.map((n) => [n, [] as ChannelMessage[]]))
  for (const n of names) peers[n]!.onMessage((m) => inbox[n]!.push(m))
  /** drives the virtual clock until the promise settles */
  async function run<T>(promise: Promise<T>, maxMs = 60_000): Promise<T> {
    let done = false
    const watched = promise.finally(() => (done = true))
    watched.catch(() => undefined)
    for (let t = 0; !done && t < maxMs; t += 10) await clock.advance(10)
    if (!done) throw new Error('did not settle on the virtual clock')
    return watched
  }
  const settle = <T>(p: Promise<T>) =>
    run(
      p.then(
        (value) => ({ ok: true as const, value }),
        (error: unknown) => ({ ok: false as const, error }),
      ),
    )
  return { clock, hub, nets, wired, peers, inbox, run, settle }
}

const codeOf = async (p: Promise<unknown>) => {
  try {
    await p
    return 'ok'
  } catch (err) {
    return isAuraError(err) ? err.code : `untyped: ${String(err)}`
  }
}

describe('TransportCoordinator on the simulated network', () => {
  it('opens a channel, delivers messages in order with their metadata, and closes both ends', async () => {
    const { peers, inbox, run } = simulate(1)
    const ch = await run(peers.a!.establishChannel('b', 'ctx', { addresses: ['/sim/b'] }))
    expect(ch.state).toBe('Open')
    expect(peers.a!.pool()).toMatchObject({ size: 1, channels: 1, peers: { b: 1 } })
    for (let i = 0; i < 3; i++) await run(peers.a!.sendWithRetry(ch, { payload: { i, blob: new Uint8Array([i]) }, kind: 'note' }))
    const got = inbox.b!.map((m) => m.payload as { i: number; blob: Uint8Array })
    expect(got.map((p) => p.i)).toEqual([0, 1, 2])
    expect(got.map((p) => [p.blob instanceof Uint8Array, ...p.blob])).toEqual([0, 1, 2].map((i) => [true, i]))
    expect(inbox.b![0]).toMatchObject({ from: 'a', channelId: ch.id, contextId: 'ctx', epoch: 0, kind: 'note' })
    const out = await run(peers.a!.closeChannel(ch))
    expect(out).toMatchObject({ state: 'Closed', closeReason: 'local', sent: 3, acked: 3 })
    expect(peers.a!.pool()).toMatchObject({ size: 0, channels: 0 })
    // the receiver closed its side too: a frame on that channel is refused
    expect(await codeOf(run(peers.a!.sendWithRetry(ch, { payload: 1 })))).toBe('CHANNEL_CLOSED')
    await run(Promise.resolve())
    expect(peers.b!.metrics().counters.messagesDelivered).toBe(3)
  })

  it('law: every send reaches the application exactly once or fails with a typed error (drops, delays, duplicates, reordering, partitions)', async () => {
    const seen = { retries: 0, duplicates: 0, acked: 0, failed: 0 }
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer({ min: 1, max: 1_000_000 }),
          dropRate: fc.double({ min: 0, max: 0.35, noNaN: true }),
          duplicateRate: fc.double({ min: 0, max: 0.4, noNaN: true }),
          maxDelayMs: fc.integer({ min: 0, max: 80 }),
          reorder: fc.boolean(),
          messages: fc.integer({ min: 1, max: 6 }),
          partitionMs: fc.option(fc.integer({ min: 0, max: 1_500 }), { nil: undefined }),
        }),
        async ({ seed, dropRate, duplicateRate, maxDelayMs, reorder, messages, partitionMs }) => {
          const { peers, inbox, settle, clock, hub } = simulate(seed, { dropRate, duplicateRate, maxDelayMs, reorder })
          const opened = await settle(peers.a!.establishChannel('b', 'ctx'))
          if (!opened.ok) {
            expect(isAuraError(opened.error)).toBe(true)
            return
          }
          if (partitionMs !== undefined) {
            hub.partition([['a'], ['b']])
            clock.setTimeout(() => hub.heal(), partitionMs)
          }
          const sends = Array.from({ length: messages }, (_, i) => peers.a!.sendWithRetry(opened.value, { payload: i }))
          const results = await settle(Promise.allSettled(sends))
          // late duplicates still in flight must not deliver anything twice either
          await clock.advance(1_000)
          const deliveries = new Map<string, number>()
          for (const m of inbox.b!) deliveries.set(m.key, (deliveries.get(m.key) ?? 0) + 1)
          for (const count of deliveries.values()) expect(count).toBe(1)
          for (const r of (results as { value: PromiseSettledResult<{ key: string }>[] }).value) {
            if (r.status === 'fulfilled') expect(deliveries.get(r.value.key)).toBe(1)
            else expect(isAuraError(r.reason)).toBe(true)
          }
          expect(inbox.b!.length).toBeLessThanOrEqual(messages)
          const counters = { ...peers.a!.metrics().counters, ...peers.b!.metrics().counters }
          seen.retries += counters.retries ?? 0
          seen.duplicates += counters.duplicatesSuppressed ?? 0
          seen.acked += counters.messagesAcked ?? 0
          seen.failed += counters.sendFailures ?? 0
        },
      ),
      { numRuns: 100 },
    )
    // the faults really happened: retries were needed and duplicates were suppressed
    expect(seen.retries).toBeGreaterThan(0)
    expect(seen.duplicates).toBeGreaterThan(0)
    expect(seen.acked).toBeGreaterThan(0)
    expect(seen.failed).toBeGreaterThan(0)
  })

  it('law: epochs only move forward, and once quiet no open channel (either end) is of an older epoch', async () => {
    type Op =
      | { op: 'open'; from: 'a' | 'b' }
      | { op: 'bump'; on: 'a' | 'b' }
      | { op: 'cleanup'; on: 'a' | 'b'; epoch: number }
      | { op: 'stale-open'; from: 'a' | 'b'; epoch: number }
    const side = fc.constantFrom<'a' | 'b'>('a', 'b')
    const op: fc.Arbitrary<Op> = fc.oneof(
      side.map((from) => ({ op: 'open' as const, from })),
      side.map((on) => ({ op: 'bump' as const, on })),
      fc.record({ on: side, epoch: fc.integer({ min: 0, max: 6 }) }).map((r) => ({ op: 'cleanup' as const, ...r })),
      fc.record({ from: side, epoch: fc.integer({ min: 0, max: 3 }) }).map((r) => ({ op: 'stale-open' as const, ...r })),
    )
    const checked = { open: 0, closed: 0 }
    await fc.assert(
      fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 10 }), async (ops) => {
        const { peers, settle } = simulate(99)
        const other = (p: 'a' | 'b') => (p === 'a' ? 'b' : 'a')
        const seen = { a: 0, b: 0 }
        const channels = []
        for (const o of ops) {
          if (o.op === 'open') {
            const r = await settle(peers[o.from]!.establishChannel(other(o.from), 'ctx'))
            if (r.ok) channels.push(r.value)
            else expect(isAuraError(r.error)).toBe(true)
          } else if (o.op === 'stale-open') {
            const r = await settle(peers[o.from]!.establishChannel(other(o.from), 'ctx', { epoch: o.epoch }))
            if (r.ok) channels.push(r.value)
            else expect((r.error as { code: string }).code).toBe('EPOCH_REGRESSION')
          } else if (o.op === 'bump') {
            await settle(peers[o.on]!.bumpEpoch('ctx'))
          } else {
            await settle(peers[o.on]!.cleanupStaleChannels({ currentEpoch: () => o.epoch }))
          }
          await settle(new Promise((resolve) => setTimeout(resolve, 0)))
          for (const p of ['a', 'b'] as const) {
            const now = peers[p]!.currentEpoch('ctx')
            expect(now).toBeGreaterThanOrEqual(seen[p])
            seen[p] = now
          }
        }
        for (const ch of channels) {
          if (ch.state !== 'Open') continue
          checked.open++
          const owner = ch.peerId === 'b' ? 'a' : 'b'
          expect(ch.epoch).toBe(peers[owner]!.currentEpoch('ctx'))
          expect(ch.epoch).toBe(peers[ch.peerId]!.currentEpoch('ctx'))
          expect(peers[ch.peerId]!.inboundChannels().find((r) => r.channelId === ch.id)?.open).toBe(true)
        }
        for (const p of ['a', 'b'] as const) {
          for (const r of peers[p]!.inboundChannels()) if (r.open) expect(r.epoch).toBe(peers[p]!.currentEpoch('ctx'))
        }
        checked.closed += channels.filter((ch) => ch.state === 'Closed' && ch.closeReason === 'epoch').length
      }),
      { numRuns: 40 },
    )
    // not vacuous: some channels survived to be checked, some were closed by an epoch move
    expect(checked.open).toBeGreaterThan(0)
    expect(checked.closed).toBeGreaterThan(0)
  })

  it('duplicated frames are delivered once and counted as suppressed', async () => {
    const { peers, inbox, run } = simulate(2, { duplicateRate: 1 })
    const ch = await run(peers.a!.establishChannel('b', 'ctx'))
    await run(peers.a!.sendWithRetry(ch, { payload: 'x' }))
    await run(peers.a!.sendWithRetry(ch, { payload: 'y', key: 'same' }))
    await run(peers.a!.sendWithRetry(ch, { payload: 'y', key: 'same' }))
    expect(inbox.b!.map((m) => m.payload)).toEqual(['x', 'y'])
    expect(peers.b!.metrics().counters.duplicatesSuppressed).toBeGreaterThanOrEqual(2)
  })

  it('a spent budget rejects with BudgetExhausted, drains, and closes both ends', async () => {
    const { peers, inbox, run } = simulate(3)
    const ch = await run(peers.a!.establishChannel('b', 'ctx', { budget: { maxMessages: 2, windowMs: 10_000 } }))
    const first = peers.a!.sendWithRetry(ch, { payload: 1 })
    const second = peers.a!.sendWithRetry(ch, { payload: 2 })
    await Promise.resolve()
    expect(await codeOf(peers.a!.sendWithRetry(ch, { payload: 3 }))).toBe('BUDGET_EXHAUSTED')
    expect(ch.state).toBe('Draining')
    // the two accepted sends still complete: nothing accepted is dropped
    await run(Promise.all([first, second]))
    await run(ch.closed)
    expect(ch.state).toBe('Closed')
    expect(inbox.b!.map((m) => m.payload)).toEqual([1, 2])
    expect(await codeOf(peers.a!.sendWithRetry(ch, { payload: 4 }))).toBe('BUDGET_EXHAUSTED')
    expect(peers.a!.pool().size).toBe(0)
    expect(peers.a!.metrics().counters.budgetExhausted).toBe(2)
    // the receiver heard the close: a forged frame on the channel is refused
    const probe = simulateProbe(peers.b!)
    expect(probe.inboundOpen(ch.id)).toBe(false)
  })

  it('best-effort kinds are shed alone when over budget; the channel stays open', async () => {
    const { peers, run } = simulate(4, {}, ['a', 'b'], { guardModes: { telemetry: 'best-effort' } })
    const ch = await run(peers.a!.establishChannel('b', 'ctx', { budget: { maxMessages: 1, windowMs: 10_000 } }))
    await run(peers.a!.sendWithRetry(ch, { payload: 1, kind: 'telemetry' }))
    expect(await codeOf(peers.a!.sendWithRetry(ch, { payload: 2, kind: 'telemetry' }))).toBe('BUDGET_EXHAUSTED')
    expect(ch.state).toBe('Open')
  })

  it('guard chain: a denied capability stops the send before the budget is charged', async () => {
    let allow = false
    let throws = false
    const check = () => {
      if (throws) throw new Error('capability store down')
      return allow
    }
    const { peers, inbox, run } = simulate(5, {}, ['a', 'b'], { capabilityCheck: check, guardModes: { gossip: 'best-effort' } })
    const ch = await run(peers.a!.establishChannel('b', 'ctx', { budget: { maxMessages: 1, windowMs: 10_000 } }))
    expect(await codeOf(peers.a!.sendWithRetry(ch, { payload: 1 }))).toBe('PERMISSION_DENIED')
    expect(ch.traffic.sent).toBe(0)
    throws = true
    expect(await codeOf(peers.a!.sendWithRetry(ch, { payload: 2 }))).toBe('PERMISSION_DENIED') // fail-closed
    await run(peers.a!.sendWithRetry(ch, { payload: 3, kind: 'gossip' })) // best-effort lets an undecidable check through
    throws = false
    expect(await codeOf(peers.a!.sendWithRetry(ch, { payload: 4, kind: 'gossip' }))).toBe('PERMISSION_DENIED') // a real deny still denies
    expect(inbox.b!.map((m) => m.payload)).toEqual([3])
    expect(peers.a!.metrics().counters).toMatchObject({ permissionDenied: 3, guardBypassed: 1 })
  })

  it('bumping an epoch closes every older channel on both ends and stale frames are rejected', async () => {
    const { peers, run } = simulate(6, {}, ['a', 'b', 'c'])
    const ab = await run(peers.a!.establishChannel('b', 'ctx'))
    const ba = await run(peers.b!.establishChannel('a', 'ctx'))
    const other = await run(peers.a!.establishChannel('b', 'other'))
    const result = await run(peers.a!.bumpEpoch('ctx'))
    expect(result).toEqual({ epoch: 1, notified: ['b'], unreachable: [] })
    await run(ab.closed)
    await run(ba.closed)
    expect([ab.state, ab.closeReason, ba.state, ba.closeReason]).toEqual(['Closed', 'epoch', 'Closed', 'epoch'])
    expect(peers.b!.currentEpoch('ctx')).toBe(1)
    expect(other.state).toBe('Open')
    expect(await codeOf(peers.b!.sendWithRetry(ba, { payload: 'late' }))).toBe('CHANNEL_CLOSED')
    // c never heard of the bump: its channel stamped epoch 0 is refused by a
    expect(await codeOf(run(peers.c!.establishChannel('a', 'ctx', { epoch: 0 })))).toBe('EPOCH_REGRESSION')
    expect(peers.a!.metrics().counters.epochRegressions).toBe(1)
    // a new channel in the new epoch works
    const fresh = await run(peers.b!.establishChannel('a', 'ctx'))
    expect(fresh.epoch).toBe(1)
    await run(peers.b!.sendWithRetry(fresh, { payload: 'new' }))
    expect(await codeOf(peers.a!.establishChannel('b', 'ctx', { epoch: 0 }))).toBe('EPOCH_REGRESSION')
  })

  it('a data message stamped with an old epoch is refused and counted; one on an unknown channel gets ChannelClosed; invalid ones are refused', async () => {
    const { peers, wired, nets, run } = simulate(7)
    const ch = await run(peers.a!.establishChannel('b', 'ctx'))
    const errorsAtB: string[] = []
    wired.b!.bus.events$.subscribe((e) => {
      if (e.type === 'error') errorsAtB.push(`${e.where}:${e.code}`)
    })
    await run(peers.b!.bumpEpoch('ctx').catch(() => undefined))
    // a's router stands in for a's coordinator, to send what the coordinator never would
    const data = (payload: Record<string, unknown>) => codeOf(run(wired.a!.router.request('b', 'transport', { kind: 'data', payload }, 1_000)))
    const body = new Uint8Array([0xc0])
    expect(await data({ channelId: ch.id, key: 'k', epoch: 0, kind: 'data', body })).toBe('EPOCH_REGRESSION')
    expect(await data({ channelId: 'nope', key: 'k', epoch: 5, kind: 'data', body })).toBe('CHANNEL_CLOSED')
    expect(await data({ channelId: ch.id, epoch: 5, kind: 'data', body })).toBe('MALFORMED_FRAME') // no key
    // bytes that are no envelope at all never reach the coordinator: the router refuses them
    await nets.a!.send('b', protocolFor('transport'), new Uint8Array([1, 2, 3]))
    await run(Promise.resolve())
    expect(peers.b!.metrics().counters).toMatchObject({ epochRegressions: 1, channelClosedRejections: 1, malformedFrames: 1 })
    expect(errorsAtB).toEqual(['transport/data:EPOCH_REGRESSION', 'transport/data:CHANNEL_CLOSED', 'transport/data:MALFORMED_FRAME', 'decode:MALFORMED_FRAME'])
  })

  it('transport traffic reaches events$ and metrics() like every pattern: wire messages, counters, send latency', async () => {
    const { peers, wired, run } = simulate(15)
    const seen: RuntimeEvent[] = []
    wired.a!.bus.events$.subscribe((e) => seen.push(e))
    const ch = await run(peers.a!.establishChannel('b', 'ctx'))
    for (let i = 0; i < 4; i++) await run(peers.a!.sendWithRetry(ch, { payload: i }))
    await run(peers.a!.closeChannel(ch))
    const a = wired.a!.metrics.snapshot()
    const b = wired.b!.metrics.snapshot()
    expect(a.counters).toMatchObject({
      'wire.out.open': 1,
      'wire.out.data': 4,
      'wire.in.reply': 5,
      'transport.channelsOpened': 1,
      'transport.messagesAcked': 4,
      'transport.channelsClosed': 1,
    })
    expect(b.counters).toMatchObject({ 'wire.in.open': 1, 'wire.in.data': 4, 'wire.out.reply': 5, 'transport.messagesDelivered': 4 })
    expect(a.latency['transport.send']?.count).toBe(4)
    // the coordinator's own metrics() agree with what went to the bus
    expect(peers.a!.metrics().counters.messagesAcked).toBe(a.counters['transport.messagesAcked'])
    const wire = seen.filter((e) => e.type === 'wire').map((e) => `${e.direction} ${e.kind}`)
    expect(wire.filter((w) => w === 'out data')).toHaveLength(4)
    expect(wire).toContain('out close')
  })

  it('the pool limit is checked atomically and the pool returns to its baseline after errors', async () => {
    const { peers, run, hub } = simulate(8, {}, ['a', 'b', 'c', 'd'], { poolLimit: 2 })
    const results = await run(
      Promise.allSettled([peers.a!.establishChannel('b', 'x'), peers.a!.establishChannel('c', 'x'), peers.a!.establishChannel('d', 'x')]),
    )
    expect(results.map((r) => (r.status === 'fulfilled' ? 'ok' : (r.reason as { code: string }).code))).toEqual(['ok', 'ok', 'LIMIT_EXCEEDED'])
    // more channels to a pooled peer do not need another slot
    const again = await run(peers.a!.establishChannel('b', 'y'))
    expect(peers.a!.pool()).toMatchObject({ size: 2, channels: 3, peers: { b: 2, c: 1 } })
    // a failed establishment gives its slot back
    await run(Promise.all(results.flatMap((r) => (r.status === 'fulfilled' ? [peers.a!.closeChannel(r.value)] : []))))
    await run(peers.a!.closeChannel(again))
    expect(peers.a!.pool()).toMatchObject({ size: 0, channels: 0 })
    hub.crash('d')
    expect(await codeOf(run(peers.a!.establishChannel('d', 'x')))).toMatch(/PEER_UNREACHABLE|NETWORK|CANCELLED|DEADLINE_EXCEEDED/) // no answer to open within the handshake timeout: the router's DeadlineExceeded
    expect(peers.a!.pool()).toMatchObject({ size: 0, channels: 0 })
  })

  it('fails over to the next address, and a wrong peer behind an address counts as unreachable', async () => {
    const { peers, run } = simulate(9, {}, ['a', 'b', 'c'])
    const ch = await run(peers.a!.establishChannel('b', 'ctx', { addresses: ['/sim/ghost', '/sim/c', '/sim/b'] }))
    expect(ch.state).toBe('Open')
    expect(peers.a!.metrics().counters).toMatchObject({ failovers: 2, connectFailures: 2 })
  })

  it('reconnects with backoff once a partition heals', async () => {
    const { peers, hub, run, clock } = simulate(10)
    hub.partition([['a'], ['b']])
    const pending = peers.a!.establishChannel('b', 'ctx', {
      reconnect: { maxAttempts: 10, initialDelayMs: 50, maxDelayMs: 400, multiplier: 2, jitter: 'none' },
    })
    await clock.advance(500)
    expect(peers.a!.metrics().counters.connectFailures).toBeGreaterThanOrEqual(2)
    hub.heal()
    const ch = await run(pending)
    expect(ch.state).toBe('Open')
  })

  it('a crashed peer makes sends fail with a typed error; after its restart the channel works again', async () => {
    const { peers, hub, run, inbox } = simulate(11)
    const ch = await run(peers.a!.establishChannel('b', 'ctx', { addresses: ['/sim/b'] }))
    hub.crash('b')
    const lost = await run(peers.a!.sendWithRetry(ch, { payload: 'lost' }).catch((err: unknown) => err))
    expect(lost).toMatchObject({ code: 'ATTEMPT_BUDGET_EXHAUSTED', details: { attempts: fast.maxAttempts } })
    hub.restart('b')
    await run(peers.a!.sendWithRetry(ch, { payload: 'after' }))
    expect(inbox.b!.map((m) => m.payload)).toEqual(['after'])
    expect(peers.a!.metrics().counters.sendFailures).toBe(1)
    await run(peers.a!.closeChannel(ch))
    expect(peers.a!.pool().size).toBe(0)
  })

  it('cleanupStaleChannels closes stale contexts and older epochs on both ends', async () => {
    const { peers, run } = simulate(12)
    const stale = await run(peers.a!.establishChannel('b', 'gone'))
    const old = await run(peers.a!.establishChannel('b', 'moved'))
    const keep = await run(peers.a!.establishChannel('b', 'kept'))
    const manager = { currentEpoch: (c: string) => (c === 'moved' ? 4 : 0), isStale: (c: string) => c === 'gone' }
    const { closed } = await run(peers.a!.cleanupStaleChannels(manager))
    expect(closed.sort()).toEqual([stale.id, old.id].sort())
    await run(Promise.all([stale.closed, old.closed]))
    expect([stale.closeReason, old.closeReason, keep.state]).toEqual(['stale', 'epoch', 'Open'])
    expect(peers.b!.currentEpoch('moved')).toBe(4)
    const probe = simulateProbe(peers.b!)
    expect(probe.inboundOpen(stale.id)).toBe(false)
    expect(probe.inboundOpen(old.id)).toBe(false)
    expect(probe.inboundOpen(keep.id)).toBe(true)
    expect(peers.a!.pool()).toMatchObject({ size: 1, channels: 1 })
  })

  it('a send still waiting for its ack fails with the reason its channel ended, without waiting out its retries', async () => {
    const { peers, run, hub, clock } = simulate(16, {}, ['a', 'b'], { ackTimeoutMs: 5_000, sendPolicy: { ...fast, maxAttempts: 2 } })
    const ch = await run(peers.a!.establishChannel('b', 'ctx', { drainTimeoutMs: 300 }))
    hub.partition([['a'], ['b']])
    const pending = peers.a!.sendWithRetry(ch, { payload: 'never acked' }).catch((err: unknown) => err)
    const closing = peers.a!.closeChannel(ch)
    const startedAt = clock.now()
    const error = await run(pending)
    // the drain timeout ended the channel, long before the ack timeout could
    expect(clock.now() - startedAt).toBeLessThan(5_000)
    expect(error).toMatchObject({ code: 'CHANNEL_CLOSED', details: { reason: 'drain-timeout' } })
    // the outcome is what the channel knew when it closed: the send was still in flight then
    expect(await run(closing)).toMatchObject({ state: 'Closed', closeReason: 'drain-timeout', sent: 1, acked: 0, failed: 0 })
    expect([ch.inflight, ch.traffic.failed]).toEqual([0, 1])
  })

  it('stop() fails in-flight sends and frees the pool', async () => {
    const { peers, run, hub } = simulate(13)
    const ch = await run(peers.a!.establishChannel('b', 'ctx'))
    hub.partition([['a'], ['b']])
    const pending = codeOf(peers.a!.sendWithRetry(ch, { payload: 1 }))
    await peers.a!.stop()
    expect(await pending).toMatch(/CHANNEL_CLOSED|CANCELLED/)
    expect(peers.a!.pool()).toMatchObject({ size: 0, channels: 0 })
  })

  it('bad input is a typed error', async () => {
    const { peers, run, nets } = simulate(14)
    expect(await codeOf(peers.a!.establishChannel('', 'ctx'))).toBe('INVALID_INPUT')
    expect(await codeOf(peers.a!.establishChannel('b', 'ctx', { budget: { windowMs: 10 } } as never))).toBe('INVALID_INPUT')
    expect(await codeOf(peers.a!.establishChannel('b', 'ctx', { epoch: -1 }))).toBe('INVALID_INPUT')
    expect(await codeOf(peers.a!.establishChannel('a', 'ctx'))).toBe('PEER_UNREACHABLE')
    expect(() => transportOn(nets.a!, new VirtualClock(0), new SeededRandom(1), { poolLimit: 0 })).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }))
    expect(() => new TransportCoordinator({ peerId: 'a', network: nets.a! } as never)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }))
    const ch = await run(peers.a!.establishChannel('b', 'ctx'))
    expect(await codeOf(peers.a!.sendWithRetry(ch, { payload: 1, key: 'k'.repeat(500) }))).toBe('INVALID_INPUT')
    expect(await codeOf(peers.a!.sendWithRetry({ id: 'fake' } as never, { payload: 1 }))).toBe('CHANNEL_CLOSED')
    expect(await codeOf(peers.a!.sendWithRetry(ch, { payload: 1 }, { ...fast, maxAttempts: 0 }))).toBe('INVALID_INPUT')
    expect(await codeOf(peers.a!.sendWithRetry(ch, { payload: 1 }, undefined, { deadlineAt: Number.NaN }))).toBe('INVALID_INPUT')
    expect(await codeOf(run(peers.a!.sendWithRetry(ch, { payload: 1 }, undefined, { deadlineAt: 0 })))).toBe('DEADLINE_EXCEEDED')
    expect(await codeOf(peers.a!.bumpEpoch(''))).toBe('INVALID_INPUT')
    expect(await codeOf(peers.a!.cleanupStaleChannels({} as never))).toBe('INVALID_INPUT')
    expect(peers.a!.pool()).toMatchObject({ size: 1, channels: 1 })
  })
})

function simulateProbe(coordinator: TransportCoordinator) {
  return {
    inboundOpen: (channelId: string) => coordinator.inboundChannels().some((r) => r.channelId === channelId && r.open),
  }
}

// ---------------------------------------------------------------------------------------------
// Real libp2p over TCP loopback (noise + yamux)

const running: { stop(): Promise<unknown> }[] = []

afterEach(async () => {
  // coordinators first (they close their channels), then the networks under them
  for (const item of running.splice(0).reverse()) await item.stop().catch(() => undefined)
})

const tcpOptions: Partial<TransportCoordinatorOptions> = {
  ackTimeoutMs: 1_000,
  handshakeTimeoutMs: 1_000,
  sendPolicy: { maxAttempts: 3, initialDelayMs: 50, maxDelayMs: 200, multiplier: 2, jitter: 'equal' },
  reconnect: { maxAttempts: 2, initialDelayMs: 50, maxDelayMs: 200, multiplier: 2, jitter: 'equal' },
}

async function tcpPeer(options: { privateKey?: Awaited<ReturnType<typeof generateKeyPair>>; listen?: string[] } = {}) {
  const network = await Libp2pNetwork.create({ transport: 'tcp', ...options })
  running.push(network)
  const { transport } = transportOn(network, new SystemClock(), new CryptoRandom(), tcpOptions)
  running.push(transport)
  await transport.start()
  const inbox: ChannelMessage[] = []
  transport.onMessage((m) => inbox.push(m))
  return { network, transport, inbox, address: network.addresses()[0]! }
}

/** libp2p connections from one node to a peer, read from the node the network wraps */
const libp2pConnections = (network: Libp2pNetwork, peerId: string) =>
  (network as unknown as { node: Libp2p }).node.getConnections(peerIdFromString(peerId)).length

async function eventually(condition: () => boolean, what: string, ms = 5_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

describe('TransportCoordinator over libp2p TCP', () => {
  it('N channels to one peer share one connection', async () => {
    const a = await tcpPeer()
    const b = await tcpPeer()
    const channels = await Promise.all(
      Array.from({ length: 6 }, (_, i) => a.transport.establishChannel(b.network.peerId, `ctx-${i % 3}`, { addresses: [b.address] })),
    )
    await Promise.all(channels.map((ch, i) => a.transport.sendWithRetry(ch, { payload: i })))
    expect(b.inbox.map((m) => m.payload).sort()).toEqual([0, 1, 2, 3, 4, 5])
    expect(new Set(b.inbox.map((m) => m.channelId)).size).toBe(6)
    expect(libp2pConnections(a.network, b.network.peerId)).toBe(1)
    expect(libp2pConnections(b.network, a.network.peerId)).toBe(1)
    expect(a.transport.connectionCount(b.network.peerId)).toBe(1)
    expect(a.transport.pool()).toMatchObject({ size: 1, channels: 6 })
    await Promise.all(channels.map((ch) => a.transport.closeChannel(ch)))
    expect(a.transport.pool()).toMatchObject({ size: 0, channels: 0 })
    await eventually(() => b.transport.inboundChannels().every((r) => !r.open), 'the receiver to close its side')
  })

  it('an epoch bump closes both ends', async () => {
    const a = await tcpPeer()
    const b = await tcpPeer()
    const ab = await a.transport.establishChannel(b.network.peerId, 'room', { addresses: [b.address] })
    const ba = await b.transport.establishChannel(a.network.peerId, 'room')
    await a.transport.sendWithRetry(ab, { payload: 'before' })
    const bump = await a.transport.bumpEpoch('room')
    expect(bump).toEqual({ epoch: 1, notified: [b.network.peerId], unreachable: [] })
    await Promise.all([ab.closed, ba.closed])
    expect([ab.closeReason, ba.closeReason]).toEqual(['epoch', 'epoch'])
    expect(b.transport.currentEpoch('room')).toBe(1)
    expect(b.transport.inboundChannels().find((r) => r.channelId === ab.id)?.open).toBe(false)
    expect(await codeOf(b.transport.sendWithRetry(ba, { payload: 'after' }))).toBe('CHANNEL_CLOSED')
    const next = await b.transport.establishChannel(a.network.peerId, 'room')
    await b.transport.sendWithRetry(next, { payload: 'new epoch' })
    expect(a.inbox.map((m) => [m.payload, m.epoch])).toEqual([['new epoch', 1]])
  })

  it('budget exhaustion tears the channel down on both ends', async () => {
    const a = await tcpPeer()
    const b = await tcpPeer()
    const ch = await a.transport.establishChannel(b.network.peerId, 'ctx', { addresses: [b.address], budget: { maxBytes: 100, windowMs: 60_000 } })
    await a.transport.sendWithRetry(ch, { payload: new Uint8Array(60) })
    expect(await codeOf(a.transport.sendWithRetry(ch, { payload: new Uint8Array(60) }))).toBe('BUDGET_EXHAUSTED')
    await ch.closed
    expect(ch.closeReason).toBe('budget')
    expect(await codeOf(a.transport.sendWithRetry(ch, { payload: 1 }))).toBe('BUDGET_EXHAUSTED')
    expect(b.inbox).toHaveLength(1)
    await eventually(() => b.transport.inboundChannels().some((r) => r.channelId === ch.id && !r.open), 'the receiver to close its side')
    expect(a.transport.pool().size).toBe(0)
  })

  it('survives a peer restart: old channels fail with a typed error, new ones reconnect, the pool returns to baseline', async () => {
    const a = await tcpPeer()
    const privateKey = await generateKeyPair('Ed25519')
    const b = await tcpPeer({ privateKey })
    const old = await a.transport.establishChannel(b.network.peerId, 'ctx', { addresses: [b.address] })
    await a.transport.sendWithRetry(old, { payload: 1 })
    await b.transport.stop()
    await b.network.stop()
    expect(await codeOf(a.transport.sendWithRetry(old, { payload: 'while down' }))).toMatch(/ATTEMPT_BUDGET_EXHAUSTED|CHANNEL_CLOSED|DEADLINE_EXCEEDED/)

    // same identity, same address, fresh state
    const b2 = await tcpPeer({ privateKey, listen: [b.address.replace(/\/p2p\/.*/, '')] })
    expect(b2.network.peerId).toBe(b.network.peerId)
    // the restarted peer does not know the old channel, so it cannot promise exactly-once on it
    expect(await codeOf(a.transport.sendWithRetry(old, { payload: 'stale' }))).toBe('CHANNEL_CLOSED')
    await old.closed
    expect(old.closeReason).toBe('remote')
    const fresh = await a.transport.establishChannel(b2.network.peerId, 'ctx', { addresses: [b2.address] })
    await a.transport.sendWithRetry(fresh, { payload: 'again' })
    expect(b2.inbox.map((m) => m.payload)).toEqual(['again'])
    await a.transport.closeChannel(fresh)
    expect(a.transport.pool()).toMatchObject({ size: 0, channels: 0 })
    expect(a.transport.metrics().counters.sendFailures).toBe(2)
  })
})
