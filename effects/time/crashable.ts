import type { Clock, TimerHandle } from './clock.js'
import { sleepOn } from './system.js'

/**
 * One process's view of a shared clock, which a simulated crash can kill. The simulator runs every
 * peer on one VirtualClock; a peer that crashes must not act again, yet its timers sit in the
 * shared heap. This view remembers the timers set through it: kill() clears them, and timers set
 * afterwards are ignored (never scheduled), so nothing of the dead process ever runs again.
 * now() keeps answering: a dead process's leftover promise chains may still read it, harmlessly.
 * Until killed it adds nothing: the same calls reach the base clock in the same order, so a run
 * without crashes replays exactly as it did without this view.
 */
export class CrashableClock implements Clock {
  readonly #base: Clock
  /** timers set through this view and not yet fired or cleared */
  readonly #pending = new Set<TimerHandle>()
  #dead = false

  constructor(base: Clock) {
    this.#base = base
  }

  get dead(): boolean {
    return this.#dead
  }

  now(): number {
    return this.#base.now()
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    // A dead process schedules nothing; the handle is unique so clearTimeout on it is a no-op.
    if (this.#dead) return Symbol('dead timer')
    const handle = this.#base.setTimeout(() => {
      this.#pending.delete(handle)
      fn()
    }, ms)
    this.#pending.add(handle)
    return handle
  }

  clearTimeout(handle: TimerHandle): void {
    if (!this.#pending.delete(handle)) return
    this.#base.clearTimeout(handle)
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal)
  }

  /** The process died: its pending timers never fire, and new ones are never scheduled. */
  kill(): void {
    this.#dead = true
    for (const handle of this.#pending) this.#base.clearTimeout(handle)
    this.#pending.clear()
  }

  pendingTimers(): number {
    return this.#pending.size
  }
}
