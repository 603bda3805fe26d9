// The timeouts service (pattern 6): coordinated deadlines across peers on the 'timeout' family,
// scaled by the runtime's timeout profile. It takes no options of its own.

import { z } from 'zod'
import type { ServiceFactory } from '../core/components.js'
import { parseInit } from '../core/service-init.js'
import { TimeoutCoordinator } from './timeout-coordinator.js'

const timeoutsInitSchema = z.object({}).strict()
export type TimeoutsInit = z.input<typeof timeoutsInitSchema>

/**
 * The timeouts service.
 * @example
 * const runtime = await createRuntime({ services: { timeouts: timeouts() } })
 * const body = await runtime.timeouts.withTimeout(2_000, async (signal) => (await fetch(url, { signal })).text())
 */
export function timeouts(init: TimeoutsInit = {}): ServiceFactory<TimeoutCoordinator> {
  parseInit(timeoutsInitSchema, init, 'timeouts')
  return {
    kind: 'timeouts',
    create: (c) => {
      const coordinator = new TimeoutCoordinator({
        clock: c.clock,
        random: c.random,
        bus: c.bus,
        router: c.router,
        factor: c.config.timeoutProfile.factor,
        ...(c.inspect ? { inspect: c.inspect } : {}),
      })
      return { api: coordinator, start: () => coordinator.start() }
    },
  }
}
