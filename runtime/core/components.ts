// The service contract (after js-libp2p's components): everything a pattern's service may use is
// listed here, built once by createRuntime and handed to each service's factory. A service never
// reaches into the Runtime object for its router or effects; it names what it needs from
// `Components` and the services it depends on, and createRuntime starts them in that order.
//
//   const runtime = await createRuntime({ services: { notes: crdt({ namespace: 'notes' }) } })
//   runtime.services.notes.doc(...)

import type { Network } from '../../effects/network/index.js'
import type { Storage } from '../../effects/storage/index.js'
import type { Clock } from '../../effects/time/index.js'
import type { Random } from '../../effects/random/index.js'
import type { Crypto } from '../../effects/crypto/index.js'
import { InvalidInput } from '../../effects/errors.js'
import type { RuntimeConfig } from './config.js'
import type { EventBus } from './events.js'
import type { Router } from './router.js'

/** What a service may use: the runtime's effects, its router and event bus, and its config. */
export interface Components {
  readonly peerId: string
  /** request/reply and one-way messages per pattern family, with correlation and timeouts */
  readonly router: Router
  /** events$ and metrics(): `bus.emit(event)` */
  readonly bus: EventBus
  readonly clock: Clock
  readonly random: Random
  readonly crypto: Crypto
  readonly storage: Storage
  readonly network: Network
  /** the actor inspection sink, if any: pass it to every actor the service creates */
  readonly inspect: ((event: unknown) => void) | undefined
  /** the validated runtime config (limits, timeout profile) */
  readonly config: RuntimeConfig
  /** peers this runtime holds a connection to */
  connectedPeers(): string[]
}

/** A started piece of the runtime: `api` is what `runtime.services[name]` gives callers. */
export interface Service<API> {
  readonly api: API
  /** runs once, after every service it depends on has started */
  start?(): Promise<void> | void
  /** runs when the runtime stops, before the services it depends on stop */
  stop?(): Promise<void> | void
}

/**
 * How a pattern's service is made. Each pattern exports a function returning one of these
 * (`sessions(init)`, `crdt(init)`, ...): it validates its own `init` with zod when called, and
 * `create` builds the service from the components and the started services it depends on.
 */
export interface ServiceFactory<API = unknown> {
  /** what the service is ('crdt', 'sessions', ...): a default service may only be replaced by one of its kind */
  readonly kind: string
  /** names (keys of `services`) of services that must be started first; their APIs arrive in `deps` */
  readonly dependsOn?: readonly string[]
  create(components: Components, deps: Readonly<Record<string, unknown>>): Service<API> | Promise<Service<API>>
}

/** The API type a factory's service gives. */
export type ApiOf<F> = F extends ServiceFactory<infer A> ? A : never

export const isServiceFactory = (value: unknown): value is ServiceFactory =>
  typeof value === 'object' && value !== null && typeof (value as ServiceFactory).create === 'function' && typeof (value as ServiceFactory).kind === 'string'

const componentsByRuntime = new WeakMap<object, Components>()

/** Records the components a runtime built (createRuntime calls it). */
export function bindComponents(runtime: object, components: Components): void {
  componentsByRuntime.set(runtime, components)
}

/**
 * The components behind a runtime: for tests and tools that talk at the wire level (a raw router
 * request, the storage effect underneath). Services get theirs through their factory instead.
 * @example
 * const { router } = componentsOf(runtime)
 * await router.request(other.peerId, 'session', { kind: 'join', payload: { sessionId, role: 'intruder' } })
 */
export function componentsOf(runtime: object): Components {
  const components = componentsByRuntime.get(runtime)
  if (!components) throw new InvalidInput('not a runtime made by createRuntime')
  return components
}
