// The sessions service (pattern 4): a SessionManager on the runtime's router, storage, clock,
// random and crypto, serving the 'session' family. Its options are the runtime config's
// `sessions` section plus the choreographies it can run; `sessions(init)` validates them.

import { z } from 'zod'
import type { ServiceFactory } from '../core/components.js'
import { parseInit } from '../core/service-init.js'
import type { Choreography } from './choreography.js'
import { SessionManager } from './session-manager.js'

const DEFAULT_RETAIN_FINISHED_MS = 10 * 60_000
// Long next to a session's own timeout, short enough that a leader gone for good does not keep
// its participants waiting for ever.
const DEFAULT_VERDICT_GRACE_MS = 60_000
const WEEK_MS = 7 * 24 * 3600_000

export const sessionsOptionsSchema = z
  .object({
    defaultTimeoutMs: z.number().positive().max(WEEK_MS).default(30_000),
    /** join sessions we are invited to automatically, with the role the invite gives us */
    autoJoin: z.boolean().default(false),
    /** how long a finished (completed, failed, cancelled) session stays readable before it is
     * dropped from memory and storage; endSession drops it at once */
    retainFinishedMs: z
      .number()
      .int()
      .nonnegative()
      .max(30 * 24 * 3600_000)
      .default(DEFAULT_RETAIN_FINISHED_MS),
    /** how long past its deadline a participant keeps asking the session's leader for the
     * verdict before it times out on its own (the one way outcomes can differ: a leader gone
     * for good). Scaled by the timeout profile */
    verdictGraceMs: z.number().int().nonnegative().max(WEEK_MS).default(DEFAULT_VERDICT_GRACE_MS),
  })
  .strict()

export const choreographySchema = z.custom<Choreography>(
  (v) => typeof v === 'object' && v !== null && Array.isArray((v as Choreography).steps),
  'expected a choreography (defineChoreography)',
)

const sessionsInitSchema = sessionsOptionsSchema.extend({
  /** choreographies this peer can run (needed before restored sessions resume) */
  protocols: z.array(choreographySchema).default([]),
})

export type SessionsInit = z.input<typeof sessionsInitSchema>

/**
 * The sessions service. Limits and the timeout profile come from the runtime config.
 * @example
 * const runtime = await createRuntime({ services: { sessions: sessions({ autoJoin: true, protocols: [greeting] }) } })
 * const session = await runtime.sessions.createSession('greeting', [{ peerId: other, role: 'server' }], { protocol: 'greeting' })
 */
export function sessions(init: SessionsInit = {}): ServiceFactory<SessionManager> {
  const options = parseInit(sessionsInitSchema, init, 'sessions')
  return {
    kind: 'sessions',
    create: (c) => {
      const manager = new SessionManager({
        router: c.router,
        storage: c.storage,
        clock: c.clock,
        random: c.random,
        crypto: c.crypto,
        bus: c.bus,
        limits: c.config.limits,
        defaultTimeoutMs: options.defaultTimeoutMs,
        timeoutFactor: c.config.timeoutProfile.factor,
        autoJoin: options.autoJoin,
        retainFinishedMs: options.retainFinishedMs,
        verdictGraceMs: options.verdictGraceMs,
        ...(c.inspect ? { inspect: c.inspect } : {}),
      })
      return { api: manager, start: () => manager.start(options.protocols), stop: () => manager.stop() }
    },
  }
}
