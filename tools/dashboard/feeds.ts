// Sources for the dashboard: runtimes in this process, or peer processes reporting over IPC (the
// CLI's children, see peer-process.ts). Both become one Observable<DashboardInput>.

import { Observable, merge } from 'rxjs'
import type { RuntimeEvent } from '../../runtime/core/events.js'
import type { DashboardInput } from './model.js'
import type { Runtime } from '../../runtime/core/runtime.js'

/** Runtimes in this process: their event streams, their peer lists and, every `pollMs`, their metrics. */
export function runtimeFeed(runtimes: Runtime[], options: { pollMs?: number; labels?: string[] } = {}): Observable<DashboardInput> {
  const pollMs = options.pollMs ?? 1000
  return new Observable<DashboardInput>((subscriber) => {
    const info = (runtime: Runtime, index: number): DashboardInput => ({
      type: 'peer',
      peer: runtime.peerId,
      label: options.labels?.[index] ?? `p${index + 1}`,
      addresses: runtime.addresses(),
      connected: runtime.connectedPeers(),
    })
    const poll = () =>
      runtimes.forEach((runtime, index) => {
        try {
          subscriber.next(info(runtime, index))
          subscriber.next({ type: 'metrics', peer: runtime.peerId, metrics: runtime.metrics() })
        } catch {
          // A stopped runtime has no addresses any more; its last known state stays on the page.
        }
      })
    poll()
    const events = merge(...runtimes.map((runtime) => runtime.events$)).subscribe((event) => subscriber.next({ type: 'event', event }))
    const timer = setInterval(poll, pollMs)
    timer.unref()
    return () => {
      clearInterval(timer)
      events.unsubscribe()
    }
  })
}

/** Anything that delivers IPC messages like a ChildProcess. */
export interface MessageSource {
  on(event: 'message', listener: (message: unknown) => void): unknown
  off(event: 'message', listener: (message: unknown) => void): unknown
}

export interface IpcPeer {
  process: MessageSource
  label?: string
  /** known already (e.g. from its 'ready' message); otherwise taken from the 'ready' message */
  peerId?: string
  addresses?: string[]
}

type Message = Record<string, unknown>
const text = (v: unknown, fallback = ''): string => (typeof v === 'string' ? v : fallback)
const time = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? v : Date.now())

/**
 * Translates one peer-process IPC message into dashboard inputs. Understands the messages
 * peer-process.ts sends today ('ready', 'connected', 'progress' {what: transition | step-sent |
 * error}, 'result' with metrics) and a full-fidelity `{ type: 'event', event: RuntimeEvent }`.
 */
export function inputsFromIpc(peer: string, message: unknown): DashboardInput[] {
  if (message === null || typeof message !== 'object') return []
  const m = message as Message
  switch (m.type) {
    case 'ready':
      return [{ type: 'peer', peer, addresses: Array.isArray(m.addresses) ? (m.addresses as string[]) : [] }]
    case 'connected':
      return Array.isArray(m.peers) ? [{ type: 'peer', peer, connected: m.peers as string[] }] : []
    case 'event':
      return m.event && typeof m.event === 'object' ? [{ type: 'event', event: { ...(m.event as RuntimeEvent), peer } }] : []
    case 'result':
    case 'metrics':
      return m.metrics && typeof m.metrics === 'object' ? [{ type: 'metrics', peer, metrics: m.metrics as never }] : []
    case 'progress': {
      const t = time(m.t)
      if (m.what === 'transition') {
        const actorId = text(m.actorId, text(m.sessionId))
        return [{ type: 'event', event: { type: 'transition', peer, t, actorId, machine: text(m.machine, 'session'), state: m.state, event: text(m.event) } }]
      }
      if (m.what === 'step-sent') {
        return [
          {
            type: 'event',
            event: {
              type: 'wire',
              peer,
              t,
              direction: 'out',
              kind: 'step',
              remote: text(m.to),
              bytes: typeof m.bytes === 'number' ? m.bytes : 0,
              ...(typeof m.sessionId === 'string' ? { session: m.sessionId } : {}),
            },
          },
        ]
      }
      if (m.what === 'error') {
        return [{ type: 'event', event: { type: 'error', peer, t, code: text(m.code, 'UNKNOWN'), where: text(m.where), message: text(m.message) } }]
      }
      return []
    }
    default:
      return []
  }
}

/** Peer processes over IPC: each child's messages, tagged with its peer id. */
export function ipcFeed(peers: IpcPeer[]): Observable<DashboardInput> {
  return new Observable<DashboardInput>((subscriber) => {
    const detach: Array<() => void> = []
    peers.forEach((p, index) => {
      let peerId = p.peerId
      const label = p.label ?? `p${index + 1}`
      if (peerId) subscriber.next({ type: 'peer', peer: peerId, label, addresses: p.addresses ?? [] })
      const listener = (message: unknown) => {
        const m = message as Message | null
        if (!peerId && m && m.type === 'ready' && typeof m.peerId === 'string') {
          peerId = m.peerId
          subscriber.next({ type: 'peer', peer: peerId, label })
        }
        if (!peerId) return
        for (const input of inputsFromIpc(peerId, message)) subscriber.next(input)
      }
      p.process.on('message', listener)
      detach.push(() => p.process.off('message', listener))
    })
    return () => detach.forEach((d) => d())
  })
}
