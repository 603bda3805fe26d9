import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createActor, fromCallback, fromPromise, toPromise } from 'xstate'
import { VirtualClock } from '../../effects/time/virtual.js'
import {
  coordinatedTimeoutInputSchema,
  coordinatedTimeoutMachine,
  opChildId,
  timeoutMachine,
  type CoordinatedOperationInput,
  type TimeoutOperationInput,
} from '../../machines/timeout.js'
import { childBudget, remaining, scaleTimeout, timeoutProfiles, type DeadlineEvent, type DeadlineTimerInput } from '../../machines/kernel.js'

const START = 1_000_000

function deadlineTimerOn(clock: VirtualClock) {
  return fromCallback<DeadlineEvent, DeadlineTimerInput>(({ input, sendBack }) => {
    const delay = input.deadlineAt - clock.now()
    if (delay <= 0) {
      sendBack({ type: 'DEADLINE' })
      return
    }
    const handle = clock.setTimeout(() => sendBack({ type: 'DEADLINE' }), delay)
    return () => clock.clearTimeout(handle)
  })
}

type Deferred = {
  resolve: (v: unknown) => void
  reject: (e: unknown) => void
  signal: AbortSignal
}

/** Operations whose completion the test controls; each remembers its abort signal. */
function controlledOps() {
  const ops = new Map<string, Deferred>()
  const logic = fromPromise<unknown, CoordinatedOperationInput>(
    ({ input, signal }) =>
      new Promise((resolve, reject) => {
        ops.set(input.opId, { resolve, reject, signal })
      }),
  )
  return { ops, logic }
}

const flush = () => new Promise<void>((r) => setImmediate(r))

describe('budgets', () => {
  it('remaining counts down to zero and never below', () => {
    const b = { startedAt: 0, deadlineAt: 100 }
    expect(remaining(b, 0)).toBe(100)
    expect(remaining(b, 60)).toBe(40)
    expect(remaining(b, 150)).toBe(0)
  })

  it('childBudget takes the requested time when the parent has more', () => {
    expect(childBudget({ startedAt: 0, deadlineAt: 1000 }, 200, 100)).toEqual({ startedAt: 100, deadlineAt: 300 })
  })

  it('childBudget is capped by what the parent has left', () => {
    expect(childBudget({ startedAt: 0, deadlineAt: 1000 }, 5000, 900)).toEqual({ startedAt: 900, deadlineAt: 1000 })
  })

  it('law: a child budget never ends after its parent and never exceeds the request', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 1e9 }),
        fc.integer({ min: 0, max: 1e7 }),
        fc.integer({ min: -1e6, max: 1e7 }),
        fc.integer({ min: -1e7, max: 1e7 }),
        (startedAt, length, requested, offset) => {
          const parent = { startedAt, deadlineAt: startedAt + length }
          const now = startedAt + offset
          const child = childBudget(parent, requested, now)
          expect(child.deadlineAt).toBeLessThanOrEqual(parent.deadlineAt)
          expect(remaining(child, now)).toBeLessThanOrEqual(Math.max(0, requested))
          expect(remaining(child, now)).toBe(Math.min(Math.max(0, requested), remaining(parent, now)))
        },
      ),
    )
  })

  it('scaleTimeout keeps production as is and shrinks test timeouts, never to zero', () => {
    expect(scaleTimeout(5000, timeoutProfiles.production)).toBe(5000)
    expect(scaleTimeout(5000, timeoutProfiles.test)).toBe(500)
    expect(scaleTimeout(5, timeoutProfiles.simulation)).toBe(1)
    expect(scaleTimeout(0, timeoutProfiles.test)).toBe(0)
  })
})

describe('timeoutMachine', () => {
  function run(deadlineIn: number, op: (input: TimeoutOperationInput, signal: AbortSignal) => Promise<unknown>) {
    const clock = new VirtualClock(START)
    const signals: AbortSignal[] = []
    const machine = timeoutMachine.provide({
      actors: {
        deadlineTimer: deadlineTimerOn(clock),
        operation: fromPromise<unknown, TimeoutOperationInput>(({ input, signal }) => {
          signals.push(signal)
          return op(input, signal)
        }),
      },
    })
    const actor = createActor(machine, { input: { deadlineAt: START + deadlineIn }, clock })
    return { clock, actor, signals }
  }

  it('succeeds with the operation value before the deadline', async () => {
    const { actor } = run(1000, async (input) => ({ deadlineAt: input.deadlineAt }))
    actor.start()
    const out = await toPromise(actor)
    expect(actor.getSnapshot().value).toBe('succeeded')
    expect(out).toEqual({ status: 'succeeded', value: { deadlineAt: START + 1000 } })
  })

  it('fails with the operation error', async () => {
    const { actor } = run(1000, async () => {
      throw Object.assign(new Error('boom'), { code: 'NETWORK' })
    })
    actor.start()
    const out = await toPromise(actor)
    expect(actor.getSnapshot().value).toBe('failed')
    expect(out.status).toBe('failed')
    expect(out.error).toMatchObject({ code: 'NETWORK', message: 'boom' })
  })

  it('expiry ends with DEADLINE_EXCEEDED and aborts the operation signal', async () => {
    const { actor, clock, signals } = run(1000, () => new Promise(() => undefined))
    actor.start()
    await flush()
    expect(signals).toHaveLength(1)
    expect(signals[0]!.aborted).toBe(false)
    await clock.advance(999)
    expect(actor.getSnapshot().value).toBe('running')
    await clock.advance(1)
    expect(actor.getSnapshot().value).toBe('expired')
    expect(actor.getSnapshot().output).toEqual({
      status: 'expired',
      error: { code: 'DEADLINE_EXCEEDED', message: `deadline ${START + 1000} passed` },
    })
    expect(signals[0]!.aborted).toBe(true)
  })

  it('a deadline already past expires at once', async () => {
    const { actor } = run(-5, () => new Promise(() => undefined))
    actor.start()
    const out = await toPromise(actor)
    expect(out.status).toBe('expired')
  })

  it('CANCEL ends cancelled and aborts the operation signal', async () => {
    const { actor, signals } = run(1000, () => new Promise(() => undefined))
    actor.start()
    await flush()
    actor.send({ type: 'CANCEL', reason: 'user' })
    expect(actor.getSnapshot().value).toBe('cancelled')
    expect(actor.getSnapshot().output?.error).toEqual({ code: 'CANCELLED', message: 'user' })
    expect(signals[0]!.aborted).toBe(true)
  })

  it('forbids every event once finished', async () => {
    const { actor } = run(1000, async () => 'v')
    actor.start()
    await toPromise(actor)
    for (const type of ['DEADLINE', 'CANCEL'] as const) expect(actor.getSnapshot().can({ type })).toBe(false)
    expect(actor.getSnapshot().output?.status).toBe('succeeded')
  })

  it('a late result after expiry changes nothing', async () => {
    let finish!: (v: unknown) => void
    const { actor, clock } = run(10, () => new Promise((r) => (finish = r)))
    actor.start()
    await flush()
    await clock.advance(10)
    finish('late')
    await flush()
    expect(actor.getSnapshot().value).toBe('expired')
    expect(actor.getSnapshot().output?.value).toBeUndefined()
  })
})

describe('coordinatedTimeoutMachine', () => {
  function run(policy: 'fail-fast' | 'best-effort', opIds: string[], deadlineIn = 1000) {
    const clock = new VirtualClock(START)
    const { ops, logic } = controlledOps()
    const machine = coordinatedTimeoutMachine.provide({
      actors: { deadlineTimer: deadlineTimerOn(clock), operation: logic },
    })
    const actor = createActor(machine, { input: { deadlineAt: START + deadlineIn, policy, opIds }, clock })
    return { clock, actor, ops }
  }

  it('rejects duplicate op ids in its input schema', () => {
    const base = { deadlineAt: 1, policy: 'fail-fast' }
    expect(coordinatedTimeoutInputSchema.safeParse({ ...base, opIds: ['a', 'a'] }).success).toBe(false)
    expect(coordinatedTimeoutInputSchema.safeParse({ ...base, opIds: ['a', 'b'] }).success).toBe(true)
    expect(coordinatedTimeoutInputSchema.safeParse({ ...base, policy: 'sometimes', opIds: [] }).success).toBe(false)
  })

  it('spawns one child per op, each with the shared deadline', async () => {
    const { actor, ops } = run('fail-fast', ['a', 'b'])
    actor.start()
    await flush()
    expect(Object.keys(actor.getSnapshot().children).sort()).toEqual(['deadline', opChildId('a'), opChildId('b')])
    expect([...ops.keys()].sort()).toEqual(['a', 'b'])
  })

  it('succeeds with every result once all ops are done', async () => {
    const { actor, ops } = run('fail-fast', ['a', 'b', 'c'])
    actor.start()
    await flush()
    ops.get('b')!.resolve(2)
    ops.get('a')!.resolve(1)
    await flush()
    expect(actor.getSnapshot().value).toBe('running')
    ops.get('c')!.resolve(3)
    const out = await toPromise(actor)
    expect(out).toEqual({
      status: 'succeeded',
      policy: 'fail-fast',
      results: { a: 1, b: 2, c: 3 },
      errors: {},
      unfinished: [],
    })
  })

  it('with no ops succeeds at once', async () => {
    const { actor } = run('best-effort', [])
    actor.start()
    expect((await toPromise(actor)).status).toBe('succeeded')
  })

  it('fail-fast: the first error fails the group and stops every sibling', async () => {
    const { actor, ops } = run('fail-fast', ['a', 'b', 'c'])
    actor.start()
    await flush()
    ops.get('a')!.resolve('A')
    await flush()
    ops.get('b')!.reject(Object.assign(new Error('b broke'), { code: 'NETWORK' }))
    const out = await toPromise(actor)
    expect(actor.getSnapshot().value).toBe('failed')
    expect(out.status).toBe('failed')
    expect(out.failedOp).toBe('b')
    expect(out.error).toMatchObject({ code: 'NETWORK', message: 'b broke' })
    expect(out.results).toEqual({ a: 'A' })
    expect(out.unfinished).toEqual(['c'])
    expect(ops.get('c')!.signal.aborted).toBe(true)
  })

  it('fail-fast: the deadline fails the group with DEADLINE_EXCEEDED and stops the rest', async () => {
    const { actor, ops, clock } = run('fail-fast', ['a', 'b'], 500)
    actor.start()
    await flush()
    ops.get('a')!.resolve('A')
    await flush()
    await clock.advance(500)
    const out = actor.getSnapshot().output!
    expect(out.status).toBe('failed')
    expect(out.error?.code).toBe('DEADLINE_EXCEEDED')
    expect(out.failedOp).toBeUndefined()
    expect(out.results).toEqual({ a: 'A' })
    expect(out.unfinished).toEqual(['b'])
    expect(ops.get('b')!.signal.aborted).toBe(true)
    expect(ops.get('a')!.signal.aborted).toBe(false)
  })

  it('best-effort: errors are recorded, and the deadline returns what completed', async () => {
    const { actor, ops, clock } = run('best-effort', ['a', 'b', 'c'], 500)
    actor.start()
    await flush()
    ops.get('a')!.reject(Object.assign(new Error('a broke'), { code: 'NETWORK' }))
    ops.get('b')!.resolve('B')
    await flush()
    expect(actor.getSnapshot().value).toBe('running')
    await clock.advance(500)
    const out = actor.getSnapshot().output!
    expect(actor.getSnapshot().value).toBe('partial')
    expect(out.status).toBe('partial')
    expect(out.results).toEqual({ b: 'B' })
    expect(out.errors.a).toMatchObject({ code: 'NETWORK', message: 'a broke' })
    expect(out.unfinished).toEqual(['c'])
    expect(out.error?.code).toBe('DEADLINE_EXCEEDED')
    expect(ops.get('c')!.signal.aborted).toBe(true)
  })

  it('best-effort: when every op has finished, succeeds with results and errors', async () => {
    const { actor, ops } = run('best-effort', ['a', 'b'])
    actor.start()
    await flush()
    ops.get('a')!.reject(new Error('nope'))
    ops.get('b')!.resolve('B')
    const out = await toPromise(actor)
    expect(out.status).toBe('succeeded')
    expect(out.results).toEqual({ b: 'B' })
    expect(out.errors.a).toMatchObject({ code: 'UNKNOWN', message: 'nope' })
    expect(out.unfinished).toEqual([])
  })

  it('CANCEL stops every child and ends cancelled', async () => {
    const { actor, ops } = run('best-effort', ['a', 'b'])
    actor.start()
    await flush()
    ops.get('a')!.resolve('A')
    await flush()
    actor.send({ type: 'CANCEL', reason: 'shutdown' })
    const out = actor.getSnapshot().output!
    expect(out.status).toBe('cancelled')
    expect(out.error).toEqual({ code: 'CANCELLED', message: 'shutdown' })
    expect(out.results).toEqual({ a: 'A' })
    expect(out.unfinished).toEqual(['b'])
    expect(ops.get('b')!.signal.aborted).toBe(true)
  })

  it('forbids every event once finished', async () => {
    const { actor } = run('fail-fast', [])
    actor.start()
    await toPromise(actor)
    for (const type of ['DEADLINE', 'CANCEL'] as const) expect(actor.getSnapshot().can({ type })).toBe(false)
  })

  it('a result arriving after the group ended is not recorded', async () => {
    const { actor, ops, clock } = run('best-effort', ['a', 'b'], 100)
    actor.start()
    await flush()
    await clock.advance(100)
    ops.get('a')!.resolve('late')
    await flush()
    expect(actor.getSnapshot().output!.results).toEqual({})
    expect(actor.getSnapshot().status).toBe('done')
  })
})
