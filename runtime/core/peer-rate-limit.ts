// Per-peer inbound rate limit: a token bucket per peer, refilled from the clock effect (no timers,
// so a simulation replays it exactly). A peer may burst a second's worth of messages, then keeps
// to `perSecond`; one flooding peer runs dry alone, the others keep their own buckets.

import type { Clock } from '../../effects/time/index.js'

/** Buckets kept before idle (full) ones are dropped, so many short-lived peers cannot grow the map. */
const MAX_TRACKED_PEERS = 4096

interface Bucket {
  tokens: number
  /** clock time of the last refill */
  at: number
}

export class PeerRateLimiter {
  readonly #buckets = new Map<string, Bucket>()

  constructor(
    private readonly clock: Clock,
    readonly perSecond: number,
    private readonly burst: number = perSecond,
  ) {}

  /** Takes one message's token from `peer`'s bucket; false when it is empty (the message is over the limit). */
  take(peer: string): boolean {
    const now = this.clock.now()
    let bucket = this.#buckets.get(peer)
    if (bucket === undefined) {
      if (this.#buckets.size >= MAX_TRACKED_PEERS) this.#dropIdle(now)
      bucket = { tokens: this.burst, at: now }
      this.#buckets.set(peer, bucket)
    } else {
      bucket.tokens = this.#refilled(bucket, now)
      bucket.at = now
    }
    if (bucket.tokens < 1) return false
    bucket.tokens -= 1
    return true
  }

  // a clock stepped backwards refills nothing rather than draining the bucket
  #refilled(bucket: Bucket, now: number): number {
    return Math.min(this.burst, bucket.tokens + (Math.max(0, now - bucket.at) * this.perSecond) / 1000)
  }

  #dropIdle(now: number): void {
    for (const [peer, bucket] of this.#buckets) if (this.#refilled(bucket, now) >= this.burst) this.#buckets.delete(peer)
  }
}
