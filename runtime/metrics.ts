// Metrics derived from the event stream: counters, errors by code, and latency histograms.
// Histograms keep a bounded window of recent samples so p50/p99 are exact over that window and
// memory stays flat on long runs.

import type { Observable, Subscription } from 'rxjs'
import type { RuntimeEvent } from './events.js'

const WINDOW = 10_000

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
  private readonly subscription: Subscription

  constructor(events$: Observable<RuntimeEvent>) {
    this.subscription = events$.subscribe((event) => this.observe(event))
  }

  private observe(event: RuntimeEvent): void {
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
        this.increment(`wire.${event.direction}.${event.kind}`)
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
    this.subscription.unsubscribe()
  }
}
