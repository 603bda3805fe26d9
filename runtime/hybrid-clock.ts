// Hybrid logical clock (Kulkarni et al.) over the Clock effect: timestamps that follow wall time
// when clocks agree, never go backwards on one peer, and always sort after every timestamp the
// peer has observed, so a write made after receiving another is ordered after it even when the
// sender's wall clock runs ahead. Ties between peers are broken by peer id, making the order total.

import type { Clock } from '../effects/time/index.js'

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

  /** `floor`: a wall time no timestamp of this clock may go below (e.g. a persisted lease). */
  constructor(clock: Pick<Clock, 'now'>, peer: string, floor = 0) {
    this.#clock = clock
    this.peer = peer
    this.#wall = floor
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

  /** Moves past a timestamp received from another peer. */
  observe(remote: { wall: number; logical: number }): void {
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
