// The runtime's observable event stream. Every actor transition, wire message, error and timed
// operation becomes one event here; metrics, the trace recorder, the inspector and the dashboard
// are all subscribers, so they can never disagree about what happened.

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

export class EventBus {
  private readonly subject = new Subject<RuntimeEvent>()
  readonly events$: Observable<RuntimeEvent> = this.subject.asObservable()

  constructor(
    private readonly peer: () => string,
    private readonly now: () => number,
  ) {}

  emit(event: RuntimeEventInput): void {
    if (!this.subject.observed) return
    this.subject.next({ ...event, t: this.now(), peer: this.peer() } as RuntimeEvent)
  }

  get observed(): boolean {
    return this.subject.observed
  }

  complete(): void {
    this.subject.complete()
  }
}
