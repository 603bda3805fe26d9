// The receiving side of channels: what peers opened to us, and the idempotency keys delivered on
// each, so that a retry of a delivered message is acknowledged again but never delivered twice.
//
// Delivered keys are remembered per channel for `dedupWindow.ttlMs` (and at most `maxEntries`
// of them; the oldest go first, counted as `dedupEvicted` when that is before their time). The
// sender stops retrying before the window ends, so a retry never outlives the memory of its
// original. A closed channel keeps its keys for the same window, so a retry of a delivered
// message is acked even after the channel closed; then the record is forgotten.
import type { Clock } from '../../effects/time/index.js'

export interface InboundChannel {
  from: string
  channelId: string
  contextId: string
  epoch: number
  open: boolean
  closedAt: number
  /** delivered idempotency keys → delivery time */
  delivered: Map<string, number>
  /**
   * The same keys in delivery order, from `head` on (a queue). Trimming the Map itself from its
   * front instead leaves holes that every later iteration walks over again: with the window full,
   * that made each delivery cost in proportion to the keys evicted so far.
   */
  order: string[]
  head: number
}

export interface InboundChannelView {
  from: string
  channelId: string
  contextId: string
  epoch: number
  open: boolean
}

export interface DedupWindow {
  ttlMs: number
  maxEntries: number
}

const recordKey = (from: string, channelId: string) => `${from}\n${channelId}`

export class InboundChannels {
  private readonly records = new Map<string, InboundChannel>()
  private lastSweep: number

  constructor(
    private readonly clock: Clock,
    private readonly dedup: DedupWindow,
    private readonly count: (name: string) => void,
  ) {
    this.lastSweep = clock.now()
  }

  get size(): number {
    return this.records.size
  }

  get(from: string, channelId: string): InboundChannel | undefined {
    return this.records.get(recordKey(from, channelId))
  }

  values(): IterableIterator<InboundChannel> {
    return this.records.values()
  }

  /** Open channels `from` holds here. */
  openFrom(from: string): number {
    let n = 0
    for (const rec of this.records.values()) if (rec.from === from && rec.open) n++
    return n
  }

  add(from: string, channelId: string, contextId: string, epoch: number): InboundChannel {
    const rec: InboundChannel = { from, channelId, contextId, epoch, open: true, closedAt: 0, delivered: new Map(), order: [], head: 0 }
    this.records.set(recordKey(from, channelId), rec)
    return rec
  }

  close(rec: InboundChannel): void {
    rec.open = false
    rec.closedAt = this.clock.now()
  }

  /** Remembers a delivered key (and forgets those past the window). */
  delivered(rec: InboundChannel, key: string): void {
    const now = this.clock.now()
    rec.delivered.set(key, now)
    rec.order.push(key)
    this.trim(rec, now)
  }

  /** Forget delivered keys past the dedup window (and the oldest ones past the size bound). */
  private trim(rec: InboundChannel, now: number): void {
    const horizon = now - this.dedup.ttlMs
    while (rec.head < rec.order.length) {
      const key = rec.order[rec.head]!
      const at = rec.delivered.get(key)!
      if (at > horizon && rec.delivered.size <= this.dedup.maxEntries) break
      if (at > horizon) this.count('dedupEvicted')
      rec.delivered.delete(key)
      rec.head++
    }
    // drop the consumed front once it is most of the array (amortised O(1) per key)
    if (rec.head > 1024 && rec.head * 2 > rec.order.length) {
      rec.order = rec.order.slice(rec.head)
      rec.head = 0
    }
  }

  /** Drops closed records once no retry can still reach them; without `force`, at most every half window. */
  sweep(force: boolean): void {
    const now = this.clock.now()
    const ttl = this.dedup.ttlMs
    if (!force && now - this.lastSweep < ttl / 2) return
    this.lastSweep = now
    for (const [key, rec] of this.records) {
      if (!rec.open && now - rec.closedAt >= ttl) this.records.delete(key)
      else this.trim(rec, now)
    }
  }

  views(): InboundChannelView[] {
    return [...this.records.values()].map((r) => ({ from: r.from, channelId: r.channelId, contextId: r.contextId, epoch: r.epoch, open: r.open }))
  }
}
