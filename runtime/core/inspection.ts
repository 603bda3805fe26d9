// Live inspection with Stately's inspector (@statelyai/inspect). In Node the actors' inspection
// events go over a WebSocket to a small relay server, which serves a page embedding the Stately
// inspector UI and forwards the events to it:
//
//   const inspector = createInspector()               // relay on ws://127.0.0.1:8080, page at http://127.0.0.1:8080
//   const runtime = await createRuntime({ inspect: inspector.inspect })
//
// Peers in other processes connect to one relay: start it once (`server: true`, the default) and
// give the others `{ server: false, url }`. The relay (inspector-relay.ts) listens on loopback
// only and admits no other web page, since the events carry every actor's context. The page loads
// the inspector UI from stately.ai, so viewing needs a browser with network access; the runtime
// itself never needs it.

import { createWebSocketInspector } from '@statelyai/inspect'
import type { InspectionEvent } from 'xstate'
import { z } from 'zod'
import { InvalidInput } from '../../effects/errors.js'
import { startInspectorRelay } from './inspector-relay.js'

export const inspectorOptionsSchema = z
  .object({
    /** port of the relay (WebSocket and page); used for `url` when that is not given */
    port: z.number().int().min(1).max(65535).default(8080),
    /** WebSocket URL the actors' events are sent to */
    url: z
      .string()
      .regex(/^wss?:\/\//, 'a ws:// or wss:// URL')
      .optional(),
    /** start the relay server in this process (one per cluster) */
    server: z.boolean().default(true),
    /** open the inspector page in the default browser */
    autoOpen: z.boolean().default(false),
  })
  .strict()
export type InspectorOptions = z.input<typeof inspectorOptionsSchema>

export interface RuntimeInspector {
  /** pass as the runtime's `inspect` option (or to `createActor(..., { inspect })`) */
  readonly inspect: (event: unknown) => void
  /** where the actors' events go */
  readonly url: string
  /** the page showing them, when this process runs the relay */
  readonly pageUrl: string | undefined
  stop(): void
}

/**
 * @example
 * const inspector = createInspector()            // a WebSocket relay for the Stately inspector
 * const runtime = await createRuntime({ inspect: inspector.inspect })
 */
export function createInspector(options: InspectorOptions = {}): RuntimeInspector {
  const parsed = inspectorOptionsSchema.safeParse(options)
  if (!parsed.success) throw new InvalidInput(`invalid inspector options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  const { port, server, autoOpen } = parsed.data
  const url = parsed.data.url ?? `ws://127.0.0.1:${port}`
  const relay = server ? startInspectorRelay({ port, autoOpen }) : undefined
  const inspector = createWebSocketInspector({ url })
  let stopped = false
  return {
    url,
    pageUrl: relay ? `http://127.0.0.1:${port}/` : undefined,
    inspect: (event) => {
      if (!stopped) inspector.inspect.next?.(event as InspectionEvent)
    },
    stop() {
      if (stopped) return
      stopped = true
      inspector.stop()
      void relay?.stop()
    },
  }
}
