// The runtime's observable event stream. Every actor transition, wire message, error and timed
// operation becomes one event here; metrics, the trace recorder, the inspector and the dashboard
// are all subscribers, so they can never disagree about what happened.
//
// Metrics sees every event of every message, so it is fed as a plain synchronous sink instead of
// through the Subject: an event nobody else watches then costs one function call, not a stamped
// copy plus rxjs dispatch. Sinks run before events$ subscribers, as metrics (always the first
// subscriber) did before, so a subscriber reading metrics sees its own event counted.

import { Subject, type Observable } from 'rxjs'

interface EventBase {
  /** time from the runtime's clock (virtual in simulation) */
  t: number
  /** peer id of the runtime that emitted the event */
  peer: string
}

export type RuntimeEvent =
  | (EventBase & { type: 'transition'; actorId: string; machine: string; state: unknown; event: string })
  | (EventBase & { type: 'wire'; direction: 'in' | 'out'; kind: string; remote: string; bytes: number; session?: string })
  | (EventBase & { type: 'error'; code: string; where: string; message: string; remote?: string })
  | (EventBase & { type: 'latency'; name: string; ms: number })
  | (EventBase & { type: 'peer'; status: 'connect' | 'disconnect'; remote: string })
  | (EventBase & { type: 'count'; name: string; by: number })

export type RuntimeEventType = RuntimeEvent['type']

/** Distributes the union over its members so each variant keeps its own fields. */
type WithoutStamp<E> = E extends unknown ? Omit<E, 't' | 'peer'> : never
export type RuntimeEventInput = WithoutStamp<RuntimeEvent>

/** Synchronous in-process consumer of unstamped events; must not throw. */
export type EventSink = (event: RuntimeEventInput) => void

// Lets a consumer handed only `bus.events$` (Metrics, built by the runtime) find the bus behind it.
const busOfStream = new WeakMap<Observable<RuntimeEvent>, EventBus>()

export class EventBus {
  private readonly subject = new Subject<RuntimeEvent>()
  readonly events$: Observable<RuntimeEvent> = this.subject.asObservable()
  private sinks: EventSink[] = []
  private closed = false

  constructor(
    private readonly peer: () => string,
    private readonly now: () => number,
  ) {
    busOfStream.set(this.events$, this)
  }

  /** The bus whose `events$` this is, if any. */
  static owning(events$: Observable<RuntimeEvent>): EventBus | undefined {
    return busOfStream.get(events$)
  }

  /** Feeds every later event to `sink` (before events$ subscribers); returns the detach function. */
  addSink(sink: EventSink): () => void {
    if (this.closed) return () => undefined
    this.sinks = [...this.sinks, sink]
    return () => {
      this.sinks = this.sinks.filter((s) => s !== sink)
    }
  }

  emit(event: RuntimeEventInput): void {
    // Copy-on-write array: a sink detaching during emit does not disturb this loop.
    const sinks = this.sinks
    for (let i = 0; i < sinks.length; i++) sinks[i]!(event)
    if (!this.subject.observed) return
    this.subject.next({ ...event, t: this.now(), peer: this.peer() } as RuntimeEvent)
  }

  get observed(): boolean {
    return this.sinks.length > 0 || this.subject.observed
  }

  complete(): void {
    this.closed = true
    this.sinks = []
    this.subject.complete()
  }
}
