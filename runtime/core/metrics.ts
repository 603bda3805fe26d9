// Metrics derived from the event stream: counters, errors by code, and latency histograms.
// Histograms keep a bounded window of recent samples so p50/p99 are exact over that window and
// memory stays flat on long runs.

import type { Observable } from 'rxjs'
import { EventBus, type RuntimeEvent, type RuntimeEventInput } from './events.js'

const WINDOW = 10_000
const WIRE_KEY_CACHE = 1024

export class LatencyWindow {
  private readonly samples: number[] = []
  private next = 0
  count = 0
  private sum = 0

  record(ms: number): void {
    this.count++
    this.sum += ms
    if (this.samples.length < WINDOW) this.samples.push(ms)
    else {
      this.samples[this.next] = ms
      this.next = (this.next + 1) % WINDOW
    }
  }

  quantile(q: number): number {
    if (this.samples.length === 0) return 0
    const sorted = [...this.samples].sort((a, b) => a - b)
    const index = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))
    return sorted[index]!
  }

  summary(): LatencySummary {
    return { count: this.count, mean: this.count ? this.sum / this.count : 0, p50: this.quantile(0.5), p99: this.quantile(0.99) }
  }
}

export interface LatencySummary {
  count: number
  mean: number
  p50: number
  p99: number
}

export interface MetricsSnapshot {
  transitions: number
  messagesSent: number
  messagesReceived: number
  bytesSent: number
  bytesReceived: number
  errorCount: number
  errors: Record<string, number>
  counters: Record<string, number>
  latency: Record<string, LatencySummary>
}

export class Metrics {
  private transitions = 0
  private messagesSent = 0
  private messagesReceived = 0
  private bytesSent = 0
  private bytesReceived = 0
  private errorCount = 0
  private readonly errors = new Map<string, number>()
  private readonly counters = new Map<string, number>()
  private readonly latencies = new Map<string, LatencyWindow>()
  // `wire.<direction>.<kind>` built once per kind: building it per message was a measurable share
  // of a routed message's cost.
  private readonly wireKeys = { in: new Map<string, string>(), out: new Map<string, string>() }
  private readonly detach: () => void

  constructor(events$: Observable<RuntimeEvent>) {
    // Straight from the bus when we can (no stamped copy, no rxjs per event); any other stream
    // (e.g. the dashboard's merged feeds) is subscribed to as before.
    const bus = EventBus.owning(events$)
    if (bus) this.detach = bus.addSink((event) => this.observe(event))
    else {
      const subscription = events$.subscribe((event) => this.observe(event))
      this.detach = () => subscription.unsubscribe()
    }
  }

  private observe(event: RuntimeEventInput): void {
    switch (event.type) {
      case 'transition':
        this.transitions++
        break
      case 'wire':
        if (event.direction === 'out') {
          this.messagesSent++
          this.bytesSent += event.bytes
        } else {
          this.messagesReceived++
          this.bytesReceived += event.bytes
        }
        this.increment(this.wireKey(event.direction, event.kind))
        break
      case 'error':
        this.errorCount++
        this.errors.set(event.code, (this.errors.get(event.code) ?? 0) + 1)
        break
      case 'latency':
        this.latency(event.name).record(event.ms)
        break
      case 'peer':
        this.increment(`peer.${event.status}`)
        break
      case 'count':
        this.increment(event.name, event.by)
        break
    }
  }

  private wireKey(direction: 'in' | 'out', kind: string): string {
    const keys = this.wireKeys[direction]
    let key = keys.get(kind)
    if (key !== undefined) return key
    // Kinds arrive from the network: a peer spraying made-up kinds must grow neither this cache
    // nor the counters, so past the first WIRE_KEY_CACHE kinds they share one counter.
    if (keys.size >= WIRE_KEY_CACHE) return `wire.${direction}.(other)`
    key = `wire.${direction}.${kind}`
    keys.set(kind, key)
    return key
  }

  increment(name: string, by = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by)
  }

  latency(name: string): LatencyWindow {
    let window = this.latencies.get(name)
    if (!window) this.latencies.set(name, (window = new LatencyWindow()))
    return window
  }

  snapshot(): MetricsSnapshot {
    return {
      transitions: this.transitions,
      messagesSent: this.messagesSent,
      messagesReceived: this.messagesReceived,
      bytesSent: this.bytesSent,
      bytesReceived: this.bytesReceived,
      errorCount: this.errorCount,
      errors: Object.fromEntries(this.errors),
      counters: Object.fromEntries(this.counters),
      latency: Object.fromEntries([...this.latencies].map(([name, w]) => [name, w.summary()])),
    }
  }

  stop(): void {
    this.detach()
  }
}
