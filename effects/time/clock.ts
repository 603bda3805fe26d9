// Time effect. Protocol logic reads time and sets timers only through a Clock, so a simulated run
// on the VirtualClock replays exactly. A Clock is also a valid XState `clock` (setTimeout and
// clearTimeout), so `createActor(machine, { clock })` drives `after` and delayed sends from it.

export type TimerHandle = unknown

export interface Clock {
  /** Milliseconds since the Unix epoch (virtual clocks start wherever they are told). */
  now(): number
  setTimeout(fn: () => void, ms: number): TimerHandle
  clearTimeout(handle: TimerHandle): void
  /** Resolves after `ms`; rejects with the signal's reason if aborted first. */
  sleep(ms: number, signal?: AbortSignal): Promise<void>
}
