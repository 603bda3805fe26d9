// The router's correlation layer: the one place that keeps waiters for answers (a timeout each,
// an optional AbortSignal, picked out and rejected by abortRequests), on the simulated network and
// a virtual clock.
import { describe, expect, it } from 'vitest'
import { Cancelled, isAuraError } from '../../../effects/errors.js'
import { SimulatedNetworkHub } from '../../../effects/network/simulated.js'
import { SeededRandom } from '../../../effects/random/seeded.js'
import { VirtualClock } from '../../../effects/time/virtual.js'
import { EventBus } from '../../../runtime/core/events.js'
import { Router } from '../../../runtime/core/router.js'

function pair() {
  const clock = new VirtualClock(0)
  const hub = new SimulatedNetworkHub({ clock, random: new SeededRandom(1) })
  const buses = new Map<string, EventBus>()
  const router = (name: string) => {
    const network = hub.createNetwork(name)
    const bus = new EventBus(
      () => name,
      () => clock.now(),
    )
    buses.set(name, bus)
    return new Router({ network, bus, clock, random: new SeededRandom(name.length), maxFrameBytes: network.maxFrameBytes })
  }
  const a = router('a')
  const b = router('b')
  return { clock, hub, a, b, busOf: (name: string) => buses.get(name)! }
}

const outcome = (p: Promise<unknown>) =>
  p.then(
    (value) => ({ value }),
    (error: unknown) => ({ code: isAuraError(error) ? error.code : String(error), error }),
  )

describe('Router requests', () => {
  it("a handler's afterAnswer runs once its answer is written, not while the write is pending", async () => {
    const clock = new VirtualClock(0)
    const hub = new SimulatedNetworkHub({ clock, random: new SeededRandom(1) })
    const router = (name: string, network = hub.createNetwork(name)) =>
      new Router({
        network,
        bus: new EventBus(
          () => name,
          () => clock.now(),
        ),
        clock,
        random: new SeededRandom(name.length),
        maxFrameBytes: network.maxFrameBytes,
      })
    const a = router('a')
    // b's network holds every write until `release`
    const bNetwork = hub.createNetwork('b')
    const send = bNetwork.send.bind(bNetwork)
    let release!: () => void
    const held = new Promise<void>((resolve) => (release = resolve))
    bNetwork.send = (...args) => held.then(() => send(...args))
    const b = router('b', bNetwork)
    const order: string[] = []
    await b.register('timeout', {
      run: (message) => {
        message.afterAnswer = () => order.push('after')
        return 'answer'
      },
    })
    await a.register('timeout', {})
    const answered = a.request('b', 'timeout', { kind: 'run', payload: null }).then((value) => order.push(`reply ${String(value)}`))
    await clock.advance(10)
    expect(order).toEqual([])
    release()
    await clock.advance(10)
    await answered
    expect(order).toEqual(['after', 'reply answer'])
  })

  it('onFrameBytes is told the request frame and the reply frame, as they went on the wire, before the caller sees the reply', async () => {
    const { clock, a, b, busOf } = pair()
    const wire: { direction: string; bytes: number }[] = []
    busOf('a').addSink((event) => {
      if (event.type === 'wire') wire.push({ direction: event.direction, bytes: event.bytes })
    })
    await b.register('timeout', { run: ({ envelope }) => 'x'.repeat(Number(envelope.payload)) })
    const told: Array<[number, number]> = []
    const reply = a.request('b', 'timeout', { kind: 'run', payload: 300 }, { onFrameBytes: (sent, received) => told.push([sent, received]) }).then((value) => {
      expect(told).toHaveLength(1) // counted by the time the caller reads the reply
      return value
    })
    await clock.advance(10)
    expect(await reply).toBe('x'.repeat(300))
    const out = wire.find((w) => w.direction === 'out')!
    const back = wire.find((w) => w.direction === 'in')!
    expect(told).toEqual([[out.bytes, back.bytes]])
    expect(back.bytes).toBeGreaterThan(300)
    // a request that fails is not counted
    await b.register('timeout', {
      fail: () => {
        throw new Cancelled('no')
      },
    })
    const failed = outcome(a.request('b', 'timeout', { kind: 'fail', payload: null }, { onFrameBytes: (sent, received) => told.push([sent, received]) }))
    await clock.advance(10)
    expect(await failed).toMatchObject({ code: 'CANCELLED' })
    expect(told).toHaveLength(1)
  })

  it('a per-call timeout rejects with DeadlineExceeded once it passes on the clock, not before', async () => {
    const { clock, a, b } = pair()
    await b.register('timeout', { run: () => new Promise(() => undefined) }) // never answers
    let settled = false
    const result = outcome(a.request('b', 'timeout', { kind: 'run', payload: null }, { timeoutMs: 500 })).finally(() => (settled = true))
    await clock.advance(499)
    expect(settled).toBe(false)
    await clock.advance(1)
    expect(await result).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
  })

  it('aborting the signal rejects at once: with the reason if it is a typed error, else Cancelled; the late answer is dropped', async () => {
    const { clock, a, b } = pair()
    let answer!: (value: string) => void
    await b.register('timeout', { run: () => new Promise<string>((resolve) => (answer = resolve)) })
    const typed = new AbortController()
    const first = outcome(a.request('b', 'timeout', { kind: 'run', payload: 1 }, { timeoutMs: 10_000, signal: typed.signal }))
    await clock.advance(1)
    typed.abort(new Cancelled('channel gone', { why: 'test' }))
    expect(await first).toMatchObject({ code: 'CANCELLED', error: { message: 'channel gone' } })
    answer('too late') // answered after all: nobody is waiting any more, nothing breaks
    await clock.advance(10)

    const plain = new AbortController()
    const second = outcome(a.request('b', 'timeout', { kind: 'run', payload: 2 }, { signal: plain.signal }))
    plain.abort()
    expect(await second).toMatchObject({ code: 'CANCELLED' })
    // an already aborted signal never sends
    expect(await outcome(a.request('b', 'timeout', { kind: 'run', payload: 3 }, { signal: plain.signal }))).toMatchObject({ code: 'CANCELLED' })
  })

  it('a request answered in time resolves, and its signal aborting later changes nothing', async () => {
    const { clock, a, b } = pair()
    await b.register('timeout', { run: ({ envelope }) => `echo ${String(envelope.payload)}` })
    const controller = new AbortController()
    const reply = outcome(a.request('b', 'timeout', { kind: 'run', payload: 'x' }, { timeoutMs: 100, signal: controller.signal }))
    await clock.advance(5)
    expect(await reply).toEqual({ value: 'echo x' })
    controller.abort()
    await clock.advance(200)
    expect(await reply).toEqual({ value: 'echo x' })
  })

  it('abortRequests rejects the outstanding requests it picks (by family, peer and envelope) and no others', async () => {
    const { clock, a, b } = pair()
    const never = () => new Promise(() => undefined)
    await b.register('timeout', { run: never })
    await b.register('transport', { data: never })
    const picked = outcome(a.request('b', 'transport', { kind: 'data', payload: { channelId: 'c1' } }))
    const other = outcome(a.request('b', 'transport', { kind: 'data', payload: { channelId: 'c2' } }, { timeoutMs: 50 }))
    const otherFamily = outcome(a.request('b', 'timeout', { kind: 'run', payload: { channelId: 'c1' } }, { timeoutMs: 50 }))
    await clock.advance(1)
    const reason = new Cancelled('channel c1 closed')
    const aborted = a.abortRequests('transport', (peer, envelope) => peer === 'b' && (envelope.payload as { channelId: string }).channelId === 'c1', reason)
    expect(aborted).toBe(1)
    expect(await picked).toMatchObject({ error: reason })
    await clock.advance(50)
    expect(await other).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    expect(await otherFamily).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
  })
})
