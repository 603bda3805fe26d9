import type { Clock, TimerHandle } from './clock.js'

/**
 * Another clock read `offsetMs` ahead (or behind, if negative): a peer whose wall clock is skewed.
 * Timers are durations, so they run on the underlying clock unchanged; only `now()` differs.
 * Simulations give each peer one, to check that nothing depends on peers agreeing on the time.
 */
export class OffsetClock implements Clock {
  constructor(
    private readonly base: Clock,
    readonly offsetMs: number,
  ) {}

  now(): number {
    return this.base.now() + this.offsetMs
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.base.setTimeout(fn, ms)
  }

  clearTimeout(handle: TimerHandle): void {
    this.base.clearTimeout(handle)
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return this.base.sleep(ms, signal)
  }
}
