// One peer as an OS process, driven by a parent over IPC (the CLI and the crash tests use it).
// It runs a real runtime: libp2p TCP on 127.0.0.1 and LMDB in --data. Invitations are joined and
// executed automatically; sessions restored after a restart are resumed and reported.
//
// Parent → child: { type: 'connect', addresses } | { type: 'create', participants, timeoutMs, protocol }
//                 | { type: 'stop' }
// Child → parent: { type: 'ready', peerId, addresses, resumed } | { type: 'progress', ... }
//                 | { type: 'result', sessionId, result, metrics } | { type: 'failure', message }

import '../effects/network/polyfill.js'
import { parseArgs } from 'node:util'
import { z } from 'zod'
import { createRuntime } from '../runtime/core/runtime.js'
import { createInspector } from '../runtime/core/inspection.js'
import { thresholdCeremony } from '../runtime/sessions/protocols/threshold-ceremony.js'
import { defineChoreography, type Choreography } from '../runtime/sessions/choreography.js'
import type { SessionParticipant } from '../runtime/sessions/session-manager.js'

const { values } = parseArgs({
  options: {
    data: { type: 'string' },
    parties: { type: 'string', default: '3' },
    'step-delay-ms': { type: 'string', default: '0' },
    port: { type: 'string', default: '0' },
    /** send a metrics snapshot to the parent every N ms (the dashboard's live metrics) */
    'metrics-every-ms': { type: 'string', default: '0' },
    /** connect this peer's actors to a Stately inspector relay at this WebSocket URL */
    'inspect-url': { type: 'string' },
  },
})

const send = (message: unknown) => process.send?.(message)

/** Application work between steps (e.g. a slow signer); lets tests kill a peer mid-session. */
function withStepDelay(choreography: Choreography, delayMs: number): Choreography {
  if (delayMs <= 0) return choreography
  const pause = () => new Promise((resolve) => setTimeout(resolve, delayMs))
  return defineChoreography({
    name: choreography.name,
    roles: choreography.roles,
    steps: choreography.steps.map((step) => ({ ...step, produce: async (context) => (await pause(), step.produce(context)) })),
  })
}

const parentMessage = z.discriminatedUnion('type', [
  z.object({ type: z.literal('connect'), addresses: z.array(z.string()) }),
  z.object({
    type: z.literal('create'),
    participants: z.array(z.object({ peerId: z.string(), role: z.string() })),
    timeoutMs: z.number().positive(),
    protocol: z.string(),
  }),
  z.object({ type: z.literal('stop') }),
])

async function main(): Promise<void> {
  const parties = Number(values.parties)
  const protocol = withStepDelay(thresholdCeremony(parties), Number(values['step-delay-ms']))
  const runtime = await createRuntime({
    ...(values.data ? { dataDir: values.data } : {}),
    listen: [`/ip4/127.0.0.1/tcp/${Number(values.port)}`],
    protocols: [protocol],
    sessions: { autoJoin: true, defaultTimeoutMs: 30_000 },
    ...(values['inspect-url'] ? { inspect: createInspector({ server: false, url: values['inspect-url'] }).inspect } : {}),
  })
  const metricsEvery = Number(values['metrics-every-ms'])
  if (metricsEvery > 0) setInterval(() => send({ type: 'metrics', metrics: runtime.metrics() }), metricsEvery).unref()

  const report = (sessionId: string) =>
    runtime.sessions
      .result(sessionId)
      .then((result) => send({ type: 'result', sessionId, result, metrics: runtime.metrics() }))
      .catch((error) => send({ type: 'failure', message: String(error) }))

  runtime.events$.subscribe((event) => {
    if (event.type === 'transition') {
      const view = runtime.sessions.get(event.actorId)?.state()
      send({
        type: 'progress',
        what: 'transition',
        sessionId: event.actorId,
        machine: event.machine,
        event: event.event,
        state: event.state,
        step: view?.step,
        t: event.t,
      })
    } else if (event.type === 'wire' && event.kind === 'step' && event.direction === 'out')
      send({ type: 'progress', what: 'step-sent', to: event.remote, sessionId: event.session, t: event.t })
    else if (event.type === 'error') send({ type: 'progress', what: 'error', code: event.code, where: event.where, message: event.message })
  })

  runtime.sessions.invitations$.subscribe((invitation) => {
    // autoJoin has already joined us; run the choreography the invite names.
    void runtime.sessions
      .executeProtocol(invitation.sessionId, invitation.protocol ?? protocol.name)
      .catch((error) => send({ type: 'failure', message: String(error) }))
    void report(invitation.sessionId)
  })

  // Sessions restored from storage: finish them (and start them if the crash came before execute).
  const resumed = runtime.sessions.list().filter((s) => !['completed', 'failed', 'cancelled'].includes(s.status))
  for (const session of resumed) {
    if (session.cursor === 0 && session.status === 'created') void runtime.sessions.executeProtocol(session.sessionId, protocol.name).catch(() => undefined)
    void report(session.sessionId)
  }

  process.on('message', (raw) => {
    const parsed = parentMessage.safeParse(raw)
    if (!parsed.success) return send({ type: 'failure', message: `bad parent message: ${parsed.error.message}` })
    const message = parsed.data
    void (async () => {
      try {
        if (message.type === 'connect') {
          for (const address of message.addresses) if (!runtime.addresses().includes(address)) await runtime.connect(address).catch(() => undefined)
          send({ type: 'connected', peers: runtime.connectedPeers() })
        } else if (message.type === 'create') {
          const session = await runtime.sessions.createSession('threshold-ceremony', message.participants as SessionParticipant[], {
            timeoutMs: message.timeoutMs,
            protocol: message.protocol,
          })
          send({ type: 'created', sessionId: session.id })
          void session.executeProtocol().catch((error) => send({ type: 'failure', message: String(error) }))
          void report(session.id)
        } else {
          await runtime.stop()
          process.exit(0)
        }
      } catch (error) {
        send({ type: 'failure', message: String(error) })
      }
    })()
  })

  send({ type: 'ready', peerId: runtime.peerId, addresses: runtime.addresses(), protocol: protocol.name, resumed: resumed.map((s) => s.sessionId) })
}

main().catch((error) => {
  send({ type: 'failure', message: String(error?.stack ?? error) })
  process.exit(1)
})
