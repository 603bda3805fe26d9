import type { Clock, TimerHandle } from './clock.js'
import { sleepOn } from './system.js'

interface Timer {
  readonly id: number
  readonly due: number
  /** insertion order: breaks ties between timers due at the same instant */
  readonly seq: number
  readonly fn: () => void
}

/** Bounds runUntilIdle so a periodic timer cannot spin it forever. */
const DEFAULT_IDLE_HORIZON_MS = 24 * 60 * 60 * 1000
const DEFAULT_IDLE_MAX_TIMERS = 1_000_000

/**
 * A clock that only moves when told to. Timers live in a binary min-heap ordered by
 * (due time, insertion sequence), so same-instant timers fire in the order they were set and a
 * run driven by a seed replays exactly. Also a valid XState `clock`.
 */
export class VirtualClock implements Clock {
  #now: number
  #seq = 0
  #nextId = 1
  readonly #heap: Timer[] = []
  /** live timers by id; a cleared timer stays in the heap until popped, but leaves this map */
  readonly #live = new Map<number, Timer>()

  constructor(startMs = 0) {
    this.#now = startMs
  }

  now(): number {
    return this.#now
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    // Hosts treat negative, NaN and missing delays as 0; so do we.
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0
    const timer: Timer = { id: this.#nextId++, due: this.#now + delay, seq: this.#seq++, fn }
    this.#live.set(timer.id, timer)
    this.#push(timer)
    return timer.id
  }

  clearTimeout(handle: TimerHandle): void {
    if (typeof handle === 'number') this.#live.delete(handle)
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal)
  }

  pendingTimers(): number {
    return this.#live.size
  }

  nextDueAt(): number | undefined {
    return this.#peekLive()?.due
  }

  /** Moves time forward by `ms`, firing every timer due on the way (including ones set meanwhile). */
  async advance(ms: number): Promise<void> {
    if (!(ms >= 0)) throw new RangeError(`advance needs a non-negative duration, got ${ms}`)
    await this.advanceTo(this.#now + ms)
  }

  /** Moves time forward to the absolute instant `t` (never backwards). */
  async advanceTo(t: number): Promise<void> {
    await this.#fireUntil(t, Number.POSITIVE_INFINITY)
    if (t > this.#now) this.#now = t
  }

  /**
   * Fires timers until none are left, the next one lies beyond `maxMs` from now, or `maxTimers`
   * have fired (a timer re-arming itself with delay 0 would otherwise never let time move).
   * Returns how many fired. If timers remain past the horizon, time stops at the horizon.
   */
  async runUntilIdle(maxMs = DEFAULT_IDLE_HORIZON_MS, maxTimers = DEFAULT_IDLE_MAX_TIMERS): Promise<number> {
    const horizon = this.#now + maxMs
    const fired = await this.#fireUntil(horizon, maxTimers)
    if (fired < maxTimers && this.#live.size > 0 && horizon > this.#now) this.#now = horizon
    return fired
  }

  async #fireUntil(limit: number, maxFirings: number): Promise<number> {
    let fired = 0
    await drainMicrotasks()
    for (;;) {
      const next = this.#peekLive()
      if (next === undefined || next.due > limit || fired >= maxFirings) return fired
      this.#pop()
      this.#live.delete(next.id)
      if (next.due > this.#now) this.#now = next.due
      fired++
      next.fn()
      // Let whatever the timer set in motion (promise chains, actor steps) settle before the
      // next timer fires, as it would on a real event loop.
      await drainMicrotasks()
    }
  }

  #peekLive(): Timer | undefined {
    while (this.#heap.length > 0 && !this.#live.has(this.#heap[0]!.id)) this.#pop()
    return this.#heap[0]
  }

  #push(timer: Timer): void {
    const heap = this.#heap
    heap.push(timer)
    let i = heap.length - 1
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (!before(heap[i]!, heap[parent]!)) break
      ;[heap[i], heap[parent]] = [heap[parent]!, heap[i]!]
      i = parent
    }
  }

  #pop(): void {
    const heap = this.#heap
    const last = heap.pop()!
    if (heap.length === 0) return
    heap[0] = last
    let i = 0
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let min = i
      if (l < heap.length && before(heap[l]!, heap[min]!)) min = l
      if (r < heap.length && before(heap[r]!, heap[min]!)) min = r
      if (min === i) return
      ;[heap[i], heap[min]] = [heap[min]!, heap[i]!]
      i = min
    }
  }
}

function before(a: Timer, b: Timer): boolean {
  return a.due < b.due || (a.due === b.due && a.seq < b.seq)
}

/**
 * Runs every queued microtask, however deep the promise chain, by waiting for one macrotask
 * turn: the host drains the whole microtask queue before any macrotask. That is deterministic
 * for code whose only asynchrony is promises and this clock (what simulations run); a fixed
 * count of `await Promise.resolve()` would silently stop short on long chains.
 */
function drainMicrotasks(): Promise<void> {
  const g = globalThis as { setImmediate?: (fn: () => void) => unknown }
  if (typeof g.setImmediate === 'function') return new Promise((resolve) => g.setImmediate!(resolve))
  return new Promise((resolve) => globalThis.setTimeout(resolve, 0))
}
