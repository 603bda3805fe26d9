// The transport service (pattern 5): channels per (peer, context) over pooled connections, with
// budgets, epochs and ordered, deduplicated delivery. Every TransportCoordinator option but the
// effects is an init option (pool limit, dedup window, timeouts, reconnect and send policies,
// capability check); the coordinator validates them with zod.

import type { ServiceFactory } from '../core/components.js'
import { TransportCoordinator, type TransportCoordinatorOptions } from './transport-coordinator.js'

export type TransportInit = Omit<TransportCoordinatorOptions, 'clock' | 'random'>

/**
 * The transport service.
 * @example
 * const runtime = await createRuntime({ services: { transport: transport({ poolLimit: 16, ackTimeoutMs: 500 }) } })
 * const channel = await runtime.transport.establishChannel(other, 'chat')
 * await runtime.transport.sendWithRetry(channel, { payload: 'hello' })
 */
export function transport(init: TransportInit = {}): ServiceFactory<TransportCoordinator> {
  return {
    kind: 'transport',
    create: (c) => {
      const coordinator = new TransportCoordinator(c.peerId, c.network, { ...init, clock: c.clock, random: c.random })
      return { api: coordinator, start: () => coordinator.start(), stop: () => coordinator.stop() }
    },
  }
}
