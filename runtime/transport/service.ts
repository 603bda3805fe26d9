// The transport service (pattern 5): channels per (peer, context) over pooled connections, with
// budgets, epochs and ordered, deduplicated delivery, on the router's 'transport' family. Every
// TransportCoordinator option but its components is an init option (pool limit, dedup window,
// timeouts, reconnect and send policies, capability check, guard modes).

import type { z } from 'zod'
import type { ServiceFactory } from '../core/components.js'
import { parseInit } from '../core/service-init.js'
import { TransportCoordinator, transportOptionsSchema } from './transport-coordinator.js'

const transportInitSchema = transportOptionsSchema.omit({ peerId: true, router: true, bus: true, network: true, clock: true, random: true })
export type TransportInit = z.input<typeof transportInitSchema>

/**
 * The transport service.
 * @example
 * const runtime = await createRuntime({ services: { transport: transport({ poolLimit: 16, ackTimeoutMs: 500 }) } })
 * const channel = await runtime.transport.establishChannel(other, 'chat')
 * await runtime.transport.sendWithRetry(channel, { payload: 'hello' })
 */
export function transport(init: TransportInit = {}): ServiceFactory<TransportCoordinator> {
  const options = parseInit(transportInitSchema, init, 'transport')
  return {
    kind: 'transport',
    create: (c) => {
      const coordinator = new TransportCoordinator({
        ...options,
        peerId: c.peerId,
        router: c.router,
        bus: c.bus,
        network: c.network,
        clock: c.clock,
        random: c.random,
      })
      return { api: coordinator, start: () => coordinator.start(), stop: () => coordinator.stop() }
    },
  }
}
