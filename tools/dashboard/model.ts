// What the dashboard knows: peers, the actors they run (current state and recent history), recent
// wire messages and errors, and metrics per peer. Fed by `DashboardInput`s, from runtimes in this
// process (dashboard-feeds.ts `runtimeFeed`) or from peer processes over IPC (`ipcFeed`). Bounded
// everywhere: a long run keeps the most recent entries only.

import { Subject } from 'rxjs'
import { z } from 'zod'
import type { RuntimeEvent } from '../../runtime/core/events.js'
import { Metrics, type MetricsSnapshot } from '../../runtime/core/metrics.js'

export type DashboardInput =
  | { type: 'peer'; peer: string; label?: string; addresses?: string[]; connected?: string[] }
  | { type: 'event'; event: RuntimeEvent }
  /** a peer's own metrics snapshot (authoritative over what the dashboard derives from events) */
  | { type: 'metrics'; peer: string; metrics: MetricsSnapshot }

// Inputs can come from other processes, so they are checked before they touch the model.
const eventBase = { t: z.number(), peer: z.string().min(1).max(256) }
const runtimeEventSchema = z.discriminatedUnion('type', [
  z.object({
    ...eventBase,
    type: z.literal('transition'),
    actorId: z.string().min(1).max(256),
    machine: z.string().min(1).max(128),
    state: z.unknown(),
    event: z.string().max(256),
  }),
  z.object({
    ...eventBase,
    type: z.literal('wire'),
    direction: z.enum(['in', 'out']),
    kind: z.string().max(128),
    remote: z.string().max(256),
    bytes: z.number().nonnegative(),
    session: z.string().max(256).optional(),
  }),
  z.object({
    ...eventBase,
    type: z.literal('error'),
    code: z.string().max(128),
    where: z.string().max(256),
    message: z.string().max(4096),
    remote: z.string().max(256).optional(),
  }),
  z.object({ ...eventBase, type: z.literal('latency'), name: z.string().max(128), ms: z.number() }),
  z.object({ ...eventBase, type: z.literal('peer'), status: z.enum(['connect', 'disconnect']), remote: z.string().max(256) }),
])
export const dashboardInputSchema = z.discriminatedUnion('type', [
  z.object({
    type: z.literal('peer'),
    peer: z.string().min(1).max(256),
    label: z.string().max(64).optional(),
    addresses: z.array(z.string().max(512)).max(64).optional(),
    connected: z.array(z.string().max(256)).max(4096).optional(),
  }),
  z.object({ type: z.literal('event'), event: runtimeEventSchema }),
  z.object({ type: z.literal('metrics'), peer: z.string().min(1).max(256), metrics: z.custom<MetricsSnapshot>((v) => typeof v === 'object' && v !== null) }),
])

export interface PeerView {
  peer: string
  label: string
  addresses: string[]
  connected: string[]
  metrics: MetricsSnapshot
}

export interface ActorView {
  key: string
  peer: string
  actorId: string
  machine: string
  /** the XState state value */
  state: unknown
  /** the state value as text: `active.running.sending` */
  stateText: string
  event: string
  t: number
  /** state texts, oldest first */
  history: string[]
}

export type WireView = Extract<RuntimeEvent, { type: 'wire' }>
export type ErrorView = Extract<RuntimeEvent, { type: 'error' }>

export interface DashboardSnapshot {
  peers: PeerView[]
  actors: ActorView[]
  wire: WireView[]
  errors: ErrorView[]
  totals: { transitions: number; messagesSent: number; messagesReceived: number; errorCount: number; latency: MetricsSnapshot['latency'] }
}

export interface DashboardLimits {
  actors: number
  wire: number
  errors: number
  history: number
}

const DEFAULT_LIMITS: DashboardLimits = { actors: 200, wire: 100, errors: 50, history: 24 }

/** `{ active: { running: 'sending' } }` → `active.running.sending`; parallel regions joined by ', '. */
export function stateText(value: unknown): string {
  if (typeof value === 'string') return value
  if (value === null || typeof value !== 'object') return String(value)
  return Object.entries(value)
    .map(([key, child]) => {
      const inner = stateText(child)
      return inner === '' || (typeof child === 'object' && child !== null && Object.keys(child).length === 0) ? key : `${key}.${inner}`
    })
    .join(', ')
}

interface PeerRecord {
  label: string
  addresses: string[]
  connected: string[]
  events: Subject<RuntimeEvent>
  metrics: Metrics
  reported?: MetricsSnapshot
}

export class DashboardModel {
  private readonly peers = new Map<string, PeerRecord>()
  private readonly actors = new Map<string, ActorView>()
  private readonly wire: WireView[] = []
  private readonly errors: ErrorView[] = []
  private readonly limits: DashboardLimits
  private version = 0

  constructor(limits: Partial<DashboardLimits> = {}) {
    this.limits = { ...DEFAULT_LIMITS, ...limits }
  }

  /** Increases on every change; the server sends a snapshot when it moved. */
  get revision(): number {
    return this.version
  }

  /** Applies one input; returns false (and changes nothing) when it is malformed. */
  apply(raw: unknown): boolean {
    const parsed = dashboardInputSchema.safeParse(raw)
    if (!parsed.success) return false
    const input = parsed.data as DashboardInput
    this.version++
    if (input.type === 'peer') {
      const record = this.peer(input.peer)
      if (input.label !== undefined) record.label = input.label
      if (input.addresses) record.addresses = [...input.addresses]
      if (input.connected) record.connected = [...input.connected].sort()
      return true
    }
    if (input.type === 'metrics') {
      this.peer(input.peer).reported = input.metrics
      return true
    }
    const event = input.event
    const record = this.peer(event.peer)
    record.events.next(event)
    switch (event.type) {
      case 'transition':
        this.transition(event)
        break
      case 'wire':
        push(this.wire, event, this.limits.wire)
        break
      case 'error':
        push(this.errors, event, this.limits.errors)
        break
      case 'peer': {
        const connected = new Set(record.connected)
        if (event.status === 'connect') connected.add(event.remote)
        else connected.delete(event.remote)
        record.connected = [...connected].sort()
        break
      }
    }
    return true
  }

  actor(peer: string, actorId: string): ActorView | undefined {
    return this.actors.get(`${peer}/${actorId}`)
  }

  snapshot(): DashboardSnapshot {
    const peers: PeerView[] = [...this.peers].map(([peer, r]) => ({
      peer,
      label: r.label,
      addresses: r.addresses,
      connected: r.connected,
      metrics: r.reported ?? r.metrics.snapshot(),
    }))
    const totals: DashboardSnapshot['totals'] = { transitions: 0, messagesSent: 0, messagesReceived: 0, errorCount: 0, latency: {} }
    for (const { metrics } of peers) {
      totals.transitions += metrics.transitions
      totals.messagesSent += metrics.messagesSent
      totals.messagesReceived += metrics.messagesReceived
      totals.errorCount += metrics.errorCount
      // p50/p99 of a union are not derivable from per-peer ones; the worst peer's is shown.
      for (const [name, summary] of Object.entries(metrics.latency)) {
        const seen = totals.latency[name]
        totals.latency[name] = seen
          ? {
              count: seen.count + summary.count,
              mean: (seen.mean * seen.count + summary.mean * summary.count) / Math.max(1, seen.count + summary.count),
              p50: Math.max(seen.p50, summary.p50),
              p99: Math.max(seen.p99, summary.p99),
            }
          : { ...summary }
      }
    }
    return { peers, actors: [...this.actors.values()], wire: [...this.wire], errors: [...this.errors], totals }
  }

  close(): void {
    for (const record of this.peers.values()) {
      record.metrics.stop()
      record.events.complete()
    }
  }

  private peer(peer: string): PeerRecord {
    let record = this.peers.get(peer)
    if (!record) {
      const events = new Subject<RuntimeEvent>()
      record = { label: `p${this.peers.size + 1}`, addresses: [], connected: [], events, metrics: new Metrics(events) }
      this.peers.set(peer, record)
    }
    return record
  }

  private transition(event: Extract<RuntimeEvent, { type: 'transition' }>): void {
    const key = `${event.peer}/${event.actorId}`
    const text = stateText(event.state)
    const existing = this.actors.get(key)
    const history = existing ? [...existing.history] : []
    if (history[history.length - 1] !== text) history.push(text)
    if (history.length > this.limits.history) history.splice(0, history.length - this.limits.history)
    // Re-inserted so the map's order is least recently updated first, which is what gets evicted.
    this.actors.delete(key)
    this.actors.set(key, {
      key,
      peer: event.peer,
      actorId: event.actorId,
      machine: event.machine,
      state: event.state,
      stateText: text,
      event: event.event,
      t: event.t,
      history,
    })
    while (this.actors.size > this.limits.actors) this.actors.delete(this.actors.keys().next().value!)
  }
}

function push<T>(list: T[], item: T, limit: number): void {
  list.push(item)
  if (list.length > limit) list.splice(0, list.length - limit)
}
