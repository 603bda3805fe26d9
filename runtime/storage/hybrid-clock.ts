// Hybrid logical clock (Kulkarni et al.) over the Clock effect: timestamps that follow wall time
// when clocks agree, never go backwards on one peer, and always sort after every timestamp the
// peer has observed, so a write made after receiving another is ordered after it even when the
// sender's wall clock runs ahead. Ties between peers are broken by peer id, making the order total.
//
// Drift bound. Observing a timestamp moves this clock to it, and the storage lease persists that,
// so one remote stamp near 2^53 would pin every later local stamp there for good (and make its
// sender's writes win every LWW comparison). A remote stamp more than `maxDriftMs` ahead of the
// local physical clock is therefore refused (ClockDrift) instead of observed.

import { ClockDrift } from '../../effects/errors.js'
import type { Clock } from '../../effects/time/index.js'

/** How far ahead of the local physical clock a remote timestamp may be, by default. */
export const DEFAULT_MAX_CLOCK_DRIFT_MS = 60_000

export interface HlcTimestamp {
  readonly wall: number
  readonly logical: number
  /** peer id of the writer; the tie-break */
  readonly peer: string
}

/** Total order: wall, then logical counter, then peer id. */
export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1
  if (a.logical !== b.logical) return a.logical < b.logical ? -1 : 1
  if (a.peer !== b.peer) return a.peer < b.peer ? -1 : 1
  return 0
}

export class HybridLogicalClock {
  readonly #clock: Pick<Clock, 'now'>
  readonly peer: string
  #wall: number
  #logical = 0
  readonly maxDriftMs: number

  /** `floor`: a wall time no timestamp of this clock may go below (e.g. a persisted lease). */
  constructor(clock: Pick<Clock, 'now'>, peer: string, floor = 0, maxDriftMs = DEFAULT_MAX_CLOCK_DRIFT_MS) {
    this.#clock = clock
    this.peer = peer
    this.#wall = floor
    this.maxDriftMs = maxDriftMs
  }

  /** Throws ClockDrift when `remote` lies further ahead of the physical clock than the bound. */
  checkDrift(remote: { wall: number }): void {
    const limit = this.#clock.now() + this.maxDriftMs
    if (remote.wall > limit) {
      throw new ClockDrift('remote timestamp is too far ahead of the local clock', {
        reason: 'clock-drift',
        wall: remote.wall,
        limit,
        maxClockDriftMs: this.maxDriftMs,
      })
    }
  }

  /** A new timestamp, later than every one issued or observed before. */
  now(): HlcTimestamp {
    const physical = this.#clock.now()
    if (physical > this.#wall) {
      this.#wall = physical
      this.#logical = 0
    } else {
      this.#logical++
    }
    return { wall: this.#wall, logical: this.#logical, peer: this.peer }
  }

  /** Moves past a timestamp received from another peer (ClockDrift, unmoved, beyond the bound). */
  observe(remote: { wall: number; logical: number }): void {
    this.checkDrift(remote)
    if (remote.wall > this.#wall) {
      this.#wall = remote.wall
      this.#logical = remote.logical
    } else if (remote.wall === this.#wall && remote.logical > this.#logical) {
      this.#logical = remote.logical
    }
  }

  /** The highest wall component issued or observed so far. */
  get wall(): number {
    return this.#wall
  }
}
