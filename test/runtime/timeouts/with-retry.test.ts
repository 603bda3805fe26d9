// withRetry: the first attempt runs directly, later ones under the retry machine, on one schedule.
import { describe, expect, it } from 'vitest'
import { VirtualClock } from '../../../effects/time/index.js'
import { SeededRandom } from '../../../effects/random/index.js'
import { InvalidInput, NetworkError } from '../../../effects/errors.js'
import { backoffDelay } from '../../../machines/kernel.js'
import { withRetry, type RetryPolicy } from '../../../runtime/timeouts/with-retry.js'

const policy: RetryPolicy = { maxAttempts: 4, initialDelayMs: 100, maxDelayMs: 1_000, multiplier: 2, jitter: 'none' }

async function settle<T>(clock: VirtualClock, promise: Promise<T>): Promise<{ value?: T; error?: unknown }> {
  let outcome: { value?: T; error?: unknown } | undefined
  promise.then(
    (value) => (outcome = { value }),
    (error) => (outcome = { error }),
  )
  for (let i = 0; i < 100 && !outcome; i++) await clock.advance(50)
  return outcome!
}

describe('withRetry', () => {
  it('attempts follow the policy schedule across the direct first attempt and the machine', async () => {
    const clock = new VirtualClock(0)
    const times: number[] = []
    const result = await settle(
      clock,
      withRetry(
        async (attempt) => {
          times.push(clock.now())
          if (attempt < 4) throw new NetworkError('flaky')
          return attempt
        },
        { policy, clock, random: new SeededRandom(1) },
      ),
    )
    expect(result.value).toBe(4)
    const gaps = times.slice(1).map((t, i) => t - times[i]!)
    expect(gaps).toEqual([1, 2, 3].map((attempt) => backoffDelay(attempt, policy, 0)))
  })

  it('counts every attempt when the budget runs out, and rethrows a permanent error unchanged', async () => {
    const clock = new VirtualClock(0)
    const exhausted = await settle(
      clock,
      withRetry(async () => Promise.reject(new NetworkError('down')), { policy, clock, random: new SeededRandom(2) }),
    )
    expect(exhausted.error).toMatchObject({ code: 'ATTEMPT_BUDGET_EXHAUSTED', details: { attempts: 4 } })
    const permanent = new InvalidInput('bad')
    const failed = await settle(
      clock,
      withRetry(async () => Promise.reject(permanent), { policy, clock, random: new SeededRandom(2) }),
    )
    expect(failed.error).toBe(permanent)
  })

  it('the deadline stops the first attempt (its signal aborts), and a cancel does too', async () => {
    const clock = new VirtualClock(0)
    let aborted = false
    const late = await settle(
      clock,
      withRetry((_a, signal) => new Promise((_resolve, reject) => signal.addEventListener('abort', () => ((aborted = true), reject(new Error('stopped'))))), {
        policy,
        clock,
        random: new SeededRandom(3),
        deadlineAt: 120,
      }),
    )
    expect(late.error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    expect(aborted).toBe(true)
    const controller = new AbortController()
    const pending = withRetry(() => new Promise(() => {}), { policy, clock, random: new SeededRandom(3), signal: controller.signal })
    controller.abort()
    expect((await settle(clock, pending)).error).toMatchObject({ code: 'CANCELLED' })
  })

  it('with attemptTimeoutMs, a first attempt that ends before the deadline gets no signal of its own', async () => {
    const clock = new VirtualClock(0)
    const signals: (AbortSignal | undefined)[] = []
    const record = (_a: number, signal: AbortSignal | undefined) => (signals.push(signal), Promise.resolve('ok'))
    await withRetry(record, { policy, clock, random: new SeededRandom(4), deadlineAt: 10_000, attemptTimeoutMs: 100 })
    const caller = new AbortController()
    await withRetry(record, { policy, clock, random: new SeededRandom(4), deadlineAt: 10_000, attemptTimeoutMs: 100, signal: caller.signal })
    expect(signals).toEqual([undefined, caller.signal])
    // a cancel still stops it at once, and a deadline nearer than the attempt's own end still aborts it
    const pending = withRetry(() => new Promise(() => {}), {
      policy,
      clock,
      random: new SeededRandom(4),
      deadlineAt: 10_000,
      attemptTimeoutMs: 100,
      signal: caller.signal,
    })
    caller.abort()
    expect((await settle(clock, pending)).error).toMatchObject({ code: 'CANCELLED', details: { attempts: 1 } })
    let aborted = false
    const late = await settle(
      clock,
      withRetry((_a, signal) => new Promise((_resolve, reject) => signal!.addEventListener('abort', () => ((aborted = true), reject(new Error('stopped'))))), {
        policy,
        clock,
        random: new SeededRandom(4),
        deadlineAt: clock.now() + 120,
        attemptTimeoutMs: 1_000,
      }),
    )
    expect(late.error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    expect(aborted).toBe(true)
  })
})
