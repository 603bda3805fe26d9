import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createActor, fromCallback, fromPromise, toPromise } from 'xstate'
import { VirtualClock } from '../../effects/time/virtual.js'
import { retryInputSchema, retryMachine, type AttemptInput, type RetryEvent } from '../../machines/retry.js'
import {
  backoffDelay,
  backoffPolicySchema,
  defaultIsRetryable,
  type BackoffPolicy,
  type BackoffTimerInput,
  type DeadlineEvent,
  type DeadlineTimerInput,
} from '../../machines/kernel.js'

const START = 5_000_000

/** Stands in for SeededRandom: hands out the given uniforms in order, then repeats the last. */
function scriptedRandom(values: number[]) {
  let i = 0
  return { float: () => values[Math.min(i++, values.length - 1)]! }
}

function backoffTimerOn(clock: VirtualClock, random: { float(): number }, delays: number[]) {
  return fromCallback<RetryEvent, BackoffTimerInput>(({ input, sendBack }) => {
    const delay = backoffDelay(input.attempt, input.policy, random.float())
    delays.push(delay)
    if (input.deadlineAt !== undefined && clock.now() + delay > input.deadlineAt) {
      sendBack({ type: 'DEADLINE' })
      return
    }
    const handle = clock.setTimeout(() => sendBack({ type: 'RETRY' }), delay)
    return () => clock.clearTimeout(handle)
  })
}

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

const policy = (over: Partial<BackoffPolicy> = {}): BackoffPolicy => ({
  maxAttempts: 5,
  initialDelayMs: 100,
  maxDelayMs: 1000,
  multiplier: 2,
  jitter: 'none',
  ...over,
})

const retryable = (msg = 'flaky') => Object.assign(new Error(msg), { code: 'NETWORK' })
const flush = () => new Promise<void>((r) => setImmediate(r))

/** Alternates settling promises and firing due virtual timers until the machine finishes. */
async function drive(actor: { getSnapshot(): { status: string } }, clock: VirtualClock) {
  for (let i = 0; i < 100 && actor.getSnapshot().status === 'active'; i++) {
    await flush()
    await clock.runUntilIdle()
  }
}

/** Runs the retry machine with `operation` as the attempt, over a virtual clock. */
function run(
  p: BackoffPolicy,
  operation: (input: AttemptInput, signal: AbortSignal) => Promise<unknown>,
  opts: { deadlineIn?: number; uniforms?: number[] } = {},
) {
  const clock = new VirtualClock(START)
  const delays: number[] = []
  const startedAt: number[] = []
  const signals: AbortSignal[] = []
  const machine = retryMachine.provide({
    actors: {
      attempt: fromPromise<unknown, AttemptInput>(({ input, signal }) => {
        startedAt.push(clock.now())
        signals.push(signal)
        return operation(input, signal)
      }),
      backoffTimer: backoffTimerOn(clock, scriptedRandom(opts.uniforms ?? [0]), delays),
      deadlineTimer: deadlineTimerOn(clock),
    },
  })
  const input = opts.deadlineIn === undefined ? { policy: p } : { policy: p, deadlineAt: START + opts.deadlineIn }
  const actor = createActor(machine, { input, clock })
  return { clock, actor, delays, startedAt, signals }
}

describe('backoffDelay', () => {
  it('grows exponentially without jitter and stops at the cap', () => {
    const p = policy()
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffDelay(n, p, 0.9))).toEqual([100, 200, 400, 800, 1000, 1000])
  })

  it('full jitter scales the whole delay, equal jitter only its upper half', () => {
    expect(backoffDelay(2, policy({ jitter: 'full' }), 0.25)).toBe(50)
    expect(backoffDelay(2, policy({ jitter: 'equal' }), 0)).toBe(100)
    expect(backoffDelay(2, policy({ jitter: 'equal' }), 0.5)).toBe(150)
  })

  it('does not overflow into NaN for huge attempts or a zero initial delay', () => {
    expect(backoffDelay(10_000, policy(), 0.5)).toBe(1000)
    expect(backoffDelay(10_000, policy({ initialDelayMs: 0 }), 0.5)).toBe(0)
  })

  const policies = fc.record({
    maxAttempts: fc.integer({ min: 1, max: 20 }),
    initialDelayMs: fc.integer({ min: 0, max: 10_000 }),
    maxDelayMs: fc.integer({ min: 0, max: 100_000 }),
    multiplier: fc.double({ min: 1, max: 10, noNaN: true }),
    jitter: fc.constantFrom('none' as const, 'full' as const, 'equal' as const),
  })

  it('law: every delay lies within [0, maxDelayMs]', () => {
    fc.assert(
      fc.property(policies, fc.integer({ min: 1, max: 2000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (p, n, u) => {
        const d = backoffDelay(n, p, u)
        expect(d).toBeGreaterThanOrEqual(0)
        expect(d).toBeLessThanOrEqual(p.maxDelayMs)
      }),
    )
  })

  it('law: without jitter the delay is non-decreasing in the attempt number', () => {
    fc.assert(
      fc.property(policies, fc.integer({ min: 1, max: 2000 }), fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), (p, n, u) => {
        const none = { ...p, jitter: 'none' as const }
        expect(backoffDelay(n + 1, none, u)).toBeGreaterThanOrEqual(backoffDelay(n, none, u))
      }),
    )
  })
})

describe('retry input and predicate', () => {
  it('rejects a policy with no attempts or a shrinking multiplier', () => {
    expect(backoffPolicySchema.safeParse(policy()).success).toBe(true)
    expect(backoffPolicySchema.safeParse(policy({ maxAttempts: 0 })).success).toBe(false)
    expect(backoffPolicySchema.safeParse(policy({ multiplier: 0.5 })).success).toBe(false)
    expect(retryInputSchema.safeParse({ policy: policy(), deadlineAt: 'soon' }).success).toBe(false)
  })

  it('treats invalid input, permission and cancellation errors, and retryable:false, as final', () => {
    expect(defaultIsRetryable(retryable())).toBe(true)
    expect(defaultIsRetryable('a string')).toBe(true)
    for (const code of ['INVALID_INPUT', 'PERMISSION_DENIED', 'CANCELLED']) {
      expect(defaultIsRetryable(Object.assign(new Error(code), { code }))).toBe(false)
    }
    expect(defaultIsRetryable(Object.assign(new Error('x'), { retryable: false }))).toBe(false)
  })
})

describe('retryMachine', () => {
  it('succeeds after k failures, waiting backoffDelay with the drawn jitter between attempts', async () => {
    const p = policy({ jitter: 'full' })
    const uniforms = [0.5, 0.25, 0.75]
    let calls = 0
    const { actor, clock, delays, startedAt } = run(
      p,
      async ({ attempt }) => {
        calls++
        if (attempt <= 3) throw retryable(`failure ${attempt}`)
        return `ok on ${attempt}`
      },
      { uniforms },
    )
    actor.start()
    await drive(actor, clock)
    const out = await toPromise(actor)
    expect(out).toEqual({ status: 'succeeded', value: 'ok on 4', attempts: 4 })
    expect(calls).toBe(4)
    const expected = uniforms.map((u, i) => backoffDelay(i + 1, p, u))
    expect(delays).toEqual(expected)
    expect(startedAt.slice(1).map((t, i) => t - startedAt[i]!)).toEqual(expected)
  })

  it('sits in backoff between attempts, where RETRY is the only way on', async () => {
    const { actor, clock } = run(policy(), async ({ attempt }) => {
      if (attempt === 1) throw retryable()
      return 'done'
    })
    actor.start()
    await flush()
    expect(actor.getSnapshot().value).toBe('backoff')
    expect(actor.getSnapshot().context.attempt).toBe(1)
    await clock.advance(99)
    expect(actor.getSnapshot().value).toBe('backoff')
    await clock.advance(1)
    await flush()
    expect(actor.getSnapshot().value).toBe('succeeded')
  })

  it('is exhausted after maxAttempts retryable failures, keeping the last error', async () => {
    const { actor, clock } = run(policy({ maxAttempts: 3 }), async ({ attempt }) => {
      throw retryable(`failure ${attempt}`)
    })
    actor.start()
    await drive(actor, clock)
    const out = await toPromise(actor)
    expect(actor.getSnapshot().value).toBe('exhausted')
    expect(out.status).toBe('exhausted')
    expect(out.attempts).toBe(3)
    expect(out.error?.code).toBe('ATTEMPT_BUDGET_EXHAUSTED')
    expect((out.error?.cause as Error).message).toBe('failure 3')
  })

  it('fails at once on a non-retryable error, with the error itself', async () => {
    const denied = Object.assign(new Error('no'), { code: 'PERMISSION_DENIED' })
    const { actor, clock } = run(policy(), async () => {
      throw denied
    })
    actor.start()
    await drive(actor, clock)
    const out = await toPromise(actor)
    expect(out).toEqual({ status: 'failed', attempts: 1, error: { code: 'PERMISSION_DENIED', message: 'no', cause: denied } })
  })

  it('uses the isRetryable guard the runtime provides', async () => {
    const clock = new VirtualClock(START)
    const machine = retryMachine.provide({
      actors: {
        attempt: fromPromise<unknown, AttemptInput>(async () => {
          throw retryable()
        }),
        backoffTimer: backoffTimerOn(clock, scriptedRandom([0]), []),
      },
      guards: { isRetryable: () => false },
    })
    const actor = createActor(machine, { input: { policy: policy() }, clock }).start()
    const out = await toPromise(actor)
    expect(out.status).toBe('failed')
    expect(out.attempts).toBe(1)
  })

  it('stops with DEADLINE_EXCEEDED when the next backoff would pass the deadline', async () => {
    // attempt 1 at t0, fails, waits 100; attempt 2 fails at t0+100, next wait 200 would end past t0+250.
    const { actor, clock, startedAt } = run(
      policy(),
      async () => {
        throw retryable('still down')
      },
      { deadlineIn: 250 },
    )
    actor.start()
    await drive(actor, clock)
    const out = await toPromise(actor)
    expect(actor.getSnapshot().value).toBe('deadlineExceeded')
    expect(out.status).toBe('deadlineExceeded')
    expect(out.attempts).toBe(2)
    expect(out.error?.code).toBe('DEADLINE_EXCEEDED')
    expect((out.error?.cause as Error).message).toBe('still down')
    expect(startedAt).toEqual([START, START + 100])
  })

  it('reaching the deadline during an attempt stops it and aborts its signal', async () => {
    const { actor, clock, signals } = run(policy(), () => new Promise(() => undefined), { deadlineIn: 300 })
    actor.start()
    await flush()
    expect(actor.getSnapshot().matches({ attempting: 'bounded' })).toBe(true)
    await clock.advance(300)
    expect(actor.getSnapshot().value).toBe('deadlineExceeded')
    expect(actor.getSnapshot().output?.error?.code).toBe('DEADLINE_EXCEEDED')
    expect(signals[0]!.aborted).toBe(true)
  })

  it('passes the deadline to each attempt, and arms no deadline timer without one', async () => {
    const inputs: AttemptInput[] = []
    const bounded = run(policy(), async (input) => inputs.push(input), { deadlineIn: 1000 })
    bounded.actor.start()
    await toPromise(bounded.actor)
    const unbounded = run(policy(), async (input) => inputs.push(input))
    unbounded.actor.start()
    expect(unbounded.actor.getSnapshot().children.deadline).toBeUndefined()
    await toPromise(unbounded.actor)
    expect(inputs).toEqual([{ attempt: 1, deadlineAt: START + 1000 }, { attempt: 1 }])
  })

  it('CANCEL during an attempt aborts it; during backoff clears the timer', async () => {
    const a = run(policy(), () => new Promise(() => undefined))
    a.actor.start()
    await flush()
    a.actor.send({ type: 'CANCEL', reason: 'user' })
    expect(a.actor.getSnapshot().value).toBe('cancelled')
    expect(a.actor.getSnapshot().output).toEqual({ status: 'cancelled', attempts: 1, error: { code: 'CANCELLED', message: 'user' } })
    expect(a.signals[0]!.aborted).toBe(true)

    let calls = 0
    const b = run(policy(), async () => {
      calls++
      throw retryable()
    })
    b.actor.start()
    await flush()
    expect(b.actor.getSnapshot().value).toBe('backoff')
    b.actor.send({ type: 'CANCEL' })
    expect(b.actor.getSnapshot().output?.status).toBe('cancelled')
    expect((b.actor.getSnapshot().output?.error?.cause as Error).message).toBe('flaky')
    await b.clock.runUntilIdle()
    expect(calls).toBe(1)
  })

  it('forbids RETRY while an attempt runs and every event once finished', async () => {
    const { actor, clock } = run(policy(), () => new Promise(() => undefined))
    actor.start()
    await flush()
    const before = actor.getSnapshot()
    expect(before.can({ type: 'RETRY' })).toBe(false)
    actor.send({ type: 'RETRY' })
    expect(actor.getSnapshot().value).toEqual(before.value)
    expect(actor.getSnapshot().context.attempt).toBe(1)
    actor.send({ type: 'CANCEL' })
    const done = actor.getSnapshot()
    expect(done.status).toBe('done')
    for (const type of ['RETRY', 'CANCEL', 'DEADLINE'] as const) expect(done.can({ type })).toBe(false)
    await clock.runUntilIdle()
    expect(actor.getSnapshot()).toBe(done)
  })
})
