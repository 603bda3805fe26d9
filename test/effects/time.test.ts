import { describe, expect, it } from 'vitest'
import { createActor, createMachine } from 'xstate'
import { CrashableClock, SystemClock, VirtualClock } from '../../effects/time/index.js'

describe('VirtualClock', () => {
  it('fires timers in due order, same-instant timers in insertion order, setting now to each due time', async () => {
    const clock = new VirtualClock(1000)
    const fired: Array<[string, number]> = []
    const log = (name: string) => () => fired.push([name, clock.now()])
    clock.setTimeout(log('c@30'), 30)
    clock.setTimeout(log('a@10'), 10)
    clock.setTimeout(log('b1@20'), 20)
    clock.setTimeout(log('b2@20'), 20)
    clock.setTimeout(log('b3@20'), 20)
    clock.setTimeout(log('late@100'), 100)
    expect(clock.pendingTimers()).toBe(6)
    expect(clock.nextDueAt()).toBe(1010)

    await clock.advance(50)
    expect(fired).toEqual([
      ['a@10', 1010],
      ['b1@20', 1020],
      ['b2@20', 1020],
      ['b3@20', 1020],
      ['c@30', 1030],
    ])
    expect(clock.now()).toBe(1050)
    expect(clock.pendingTimers()).toBe(1)
    expect(clock.nextDueAt()).toBe(1100)
  })

  it('fires timers scheduled during advance when they fall inside the window, and not otherwise', async () => {
    const clock = new VirtualClock()
    const fired: Array<[string, number]> = []
    clock.setTimeout(() => {
      fired.push(['first', clock.now()])
      clock.setTimeout(() => fired.push(['inside', clock.now()]), 15)
      clock.setTimeout(() => fired.push(['outside', clock.now()]), 500)
      clock.setTimeout(() => fired.push(['zero', clock.now()]), 0)
    }, 10)
    await clock.advance(100)
    expect(fired).toEqual([
      ['first', 10],
      ['zero', 10],
      ['inside', 25],
    ])
    expect(clock.pendingTimers()).toBe(1)
    await clock.advanceTo(510)
    expect(fired.at(-1)).toEqual(['outside', 510])
  })

  it('settles promise chains started by a timer before firing the next one', async () => {
    const clock = new VirtualClock()
    const order: string[] = []
    clock.setTimeout(() => {
      void (async () => {
        for (let i = 0; i < 50; i++) await Promise.resolve()
        order.push('deep chain done')
      })()
    }, 5)
    clock.setTimeout(() => order.push('second timer'), 5)
    await clock.advance(5)
    expect(order).toEqual(['deep chain done', 'second timer'])
  })

  it('clearTimeout cancels, and cleared timers are not counted', async () => {
    const clock = new VirtualClock()
    let fired = 0
    const a = clock.setTimeout(() => fired++, 10)
    clock.setTimeout(() => fired++, 20)
    clock.clearTimeout(a)
    expect(clock.pendingTimers()).toBe(1)
    expect(clock.nextDueAt()).toBe(20)
    await clock.advance(30)
    expect(fired).toBe(1)
    expect(clock.nextDueAt()).toBeUndefined()
  })

  it('runUntilIdle drains one-shot timers and stops at the horizon for periodic ones', async () => {
    const clock = new VirtualClock()
    let n = 0
    clock.setTimeout(() => n++, 10)
    clock.setTimeout(() => n++, 5000)
    expect(await clock.runUntilIdle()).toBe(2)
    expect(clock.now()).toBe(5000)

    let ticks = 0
    const tick = (): void => {
      ticks++
      clock.setTimeout(tick, 100)
    }
    clock.setTimeout(tick, 100)
    await clock.runUntilIdle(1000)
    expect(ticks).toBe(10)
    expect(clock.now()).toBe(6000)
  })

  it('sleep resolves on advance and rejects with the abort reason', async () => {
    const clock = new VirtualClock()
    let woke = false
    const sleeping = clock.sleep(100).then(() => (woke = true))
    await clock.advance(99)
    expect(woke).toBe(false)
    await clock.advance(1)
    await sleeping
    expect(woke).toBe(true)

    const ac = new AbortController()
    const aborted = clock.sleep(100, ac.signal)
    ac.abort(new Error('stop'))
    await expect(aborted).rejects.toThrow('stop')
    expect(clock.pendingTimers()).toBe(0)
  })

  it("drives XState `after` transitions as the actor's clock", async () => {
    const machine = createMachine({
      id: 'door',
      initial: 'open',
      states: {
        open: { after: { 1000: 'closing' } },
        closing: { after: { 500: 'closed' } },
        closed: { type: 'final' },
      },
    })
    const clock = new VirtualClock()
    const actor = createActor(machine, { clock }).start()
    expect(actor.getSnapshot().value).toBe('open')
    await clock.advance(999)
    expect(actor.getSnapshot().value).toBe('open')
    await clock.advance(1)
    expect(actor.getSnapshot().value).toBe('closing')
    await clock.advance(499)
    expect(actor.getSnapshot().value).toBe('closing')
    await clock.advance(1)
    expect(actor.getSnapshot().status).toBe('done')
    expect(clock.pendingTimers()).toBe(0)
  })

  it('XState cancels its timer on the clock when the state is left early', async () => {
    const machine = createMachine({
      initial: 'waiting',
      states: {
        waiting: { after: { 1000: 'timedOut' }, on: { GO: 'done' } },
        timedOut: {},
        done: {},
      },
    })
    const clock = new VirtualClock()
    const actor = createActor(machine, { clock }).start()
    expect(clock.pendingTimers()).toBe(1)
    actor.send({ type: 'GO' })
    expect(clock.pendingTimers()).toBe(0)
    await clock.advance(2000)
    expect(actor.getSnapshot().value).toBe('done')
  })
})

describe('SystemClock', () => {
  it('reads wall-clock time and runs real timers', async () => {
    const clock = new SystemClock()
    const before = Date.now()
    expect(clock.now()).toBeGreaterThanOrEqual(before)
    await clock.sleep(1)
    let fired = false
    const handle = clock.setTimeout(() => (fired = true), 0)
    clock.clearTimeout(handle)
    await clock.sleep(5)
    expect(fired).toBe(false)
  })

  it('sleep rejects at once on an already aborted signal', async () => {
    const clock = new SystemClock({ unref: true })
    const ac = new AbortController()
    ac.abort()
    await expect(clock.sleep(10_000, ac.signal)).rejects.toBeDefined()
  })
})

describe('CrashableClock', () => {
  it("passes timers through until killed; kill clears its pending timers (not the base clock's others) and ignores new ones", async () => {
    const base = new VirtualClock(0)
    const view = new CrashableClock(base)
    const fired: string[] = []
    view.setTimeout(() => fired.push('view@10'), 10)
    const cleared = view.setTimeout(() => fired.push('cleared'), 15)
    view.clearTimeout(cleared)
    view.setTimeout(() => fired.push('view@30'), 30)
    base.setTimeout(() => fired.push('base@40'), 40)
    await base.advance(20)
    expect(fired).toEqual(['view@10'])
    expect(view.pendingTimers()).toBe(1)
    view.kill()
    expect(view.dead).toBe(true)
    expect(view.pendingTimers()).toBe(0)
    view.setTimeout(() => fired.push('after kill'), 1)
    const sleeping = view.sleep(5).then(() => fired.push('slept'))
    await base.advance(100)
    expect(fired).toEqual(['view@10', 'base@40'])
    expect(base.pendingTimers()).toBe(0)
    expect(view.now()).toBe(120)
    void sleeping
  })
})
