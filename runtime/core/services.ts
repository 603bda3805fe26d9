// Starts a runtime's services in dependency order and stops them in reverse. The order is a
// topological sort of `dependsOn` (ties keep the order the services were given in), so a
// service's dependencies are started, and their APIs in hand, before its own factory runs.
// A missing dependency or a cycle is a config error before anything starts.

import { ConfigInvalid, Conflict } from '../../effects/errors.js'
import type { Components, Service, ServiceFactory } from './components.js'

export const SERVICE_NAME = /^[A-Za-z][A-Za-z0-9_.:-]{0,63}$/

/** The names in `factories`, each after the names it depends on. */
export function startOrder(factories: Readonly<Record<string, ServiceFactory>>, started: ReadonlySet<string> = new Set()): string[] {
  const order: string[] = []
  const state = new Map<string, 'visiting' | 'done'>()
  const visit = (name: string, path: string[]) => {
    if (started.has(name) || state.get(name) === 'done') return
    if (state.get(name) === 'visiting')
      throw new ConfigInvalid(`services depend on each other in a cycle: ${[...path, name].join(' → ')}`, { cycle: [...path, name] })
    const factory = factories[name]
    if (!factory) throw new ConfigInvalid(`service '${path.at(-1)}' depends on '${name}', which is not configured`, { service: path.at(-1), missing: name })
    state.set(name, 'visiting')
    for (const dependency of factory.dependsOn ?? []) visit(dependency, [...path, name])
    state.set(name, 'done')
    order.push(name)
  }
  for (const name of Object.keys(factories)) visit(name, [])
  return order
}

/** The running services of one runtime. */
export class ServiceSet {
  /** name → API, in start order */
  readonly apis: Record<string, unknown> = {}
  private readonly running: Array<{ name: string; service: Service<unknown> }> = []

  constructor(private readonly components: Components) {}

  /** Creates and starts `factories` (and only those) in dependency order. */
  async start(factories: Readonly<Record<string, ServiceFactory>>): Promise<void> {
    for (const name of Object.keys(factories)) {
      if (!SERVICE_NAME.test(name)) throw new ConfigInvalid(`bad service name '${name}'`, { name })
      if (name in this.apis) throw new Conflict(`a service named '${name}' is already running`, { name })
    }
    // running services count as started: dependencies on them are met, they are not made again
    for (const name of startOrder(factories, new Set(Object.keys(this.apis)))) {
      const factory = factories[name]!
      const deps: Record<string, unknown> = {}
      for (const dependency of factory.dependsOn ?? []) deps[dependency] = this.apis[dependency]
      const service = await factory.create(this.components, deps)
      await service.start?.()
      this.running.push({ name, service })
      this.apis[name] = service.api
    }
  }

  /** Stops every service, dependants first; a failing stop is reported and the rest still stop. */
  async stop(onError: (name: string, error: unknown) => void): Promise<void> {
    for (const { name, service } of this.running.splice(0).reverse()) {
      try {
        await service.stop?.()
      } catch (error) {
        onError(name, error)
      }
    }
  }
}
