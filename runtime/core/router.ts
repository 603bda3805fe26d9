// The router carries actor messages between peers. One libp2p protocol per pattern family
// (`/aura/<family>/1.0.0`), frames are envelopes (see wire.ts), and every incoming frame is
// decoded, validated and authenticated (the envelope's `from` must be the peer the transport
// authenticated) before a handler sees it. Bad frames are counted and answered with a typed error;
// they never reach a handler and never stop the peer.
//
// Two delivery styles share the same path:
//   - `send`: one-way message (ordered per peer and family).
//   - `request`: the envelope carries an `id`; the handler's return value goes back as a `reply`
//     (or its typed error as `error`) and the caller's promise settles with it. This is the one
//     place that keeps waiters for answers: each has a timeout (DeadlineExceeded) and may have an
//     AbortSignal (aborting rejects at once), and a late answer to a settled request is dropped.
// Messages to self skip the codec and network but go through the same validation and dispatch.

import {
  AuraError,
  Cancelled,
  DeadlineExceeded,
  LimitExceeded,
  MalformedFrame,
  PermissionDenied,
  UnknownProtocol,
  isAuraError,
  type AuraErrorCode,
} from '../../effects/errors.js'
import type { IncomingFrame, Network } from '../../effects/network/index.js'
import type { Clock } from '../../effects/time/index.js'
import type { Random } from '../../effects/random/index.js'
import { decodeEnvelope, encodeEnvelope, type Envelope } from './wire.js'
import type { EventBus } from './events.js'
import { outsideTimeoutScope } from '../timeouts/timeout-context.js'
import { PeerRateLimiter } from './peer-rate-limit.js'

export type PatternFamily = 'session' | 'crdt' | 'anti-entropy' | 'storage' | 'replication' | 'transport' | 'timeout'

export const protocolFor = (family: PatternFamily): string => `/aura/${family}/1.0.0`

export interface InboundMessage {
  envelope: Envelope
  /** authenticated sender */
  from: string
  family: PatternFamily
  /** the sender's deadline on this peer's clock: arrival time plus the envelope's budgetMs */
  deadlineAt?: number
  /**
   * A handler may set this: the router calls it once the answer to this request (reply or typed
   * error) is queued on the network (and its write has started), so whatever it sends to that
   * peer leaves after the answer.
   */
  afterAnswer?: () => void
}

/** A handler may return a value: for a request it becomes the reply payload. */
export type KindHandler = (message: InboundMessage) => unknown | Promise<unknown>

export interface OutboundMessage {
  kind: string
  to?: string
  session?: string
  /** absolute, on this peer's clock; it travels as the budget left (envelope.budgetMs) */
  deadline?: number
  epoch?: number
  payload: unknown
}

const REPLY = 'reply'
const ERROR_ANSWERS_PER_PEER_PER_SECOND = 200
const ERROR = 'error'

interface Pending {
  resolve: (value: unknown) => void
  reject: (error: unknown) => void
  timer: unknown
  /** only this peer may answer: request ids are sequential, so guessable */
  peer: string
  /** what was asked, and of which family: abortRequests picks requests by them */
  family: PatternFamily
  envelope: Envelope
  signal: AbortSignal | undefined
  onAbort: (() => void) | undefined
  /** the request's frame size once encoded, for onFrameBytes */
  sentBytes: number
  onFrameBytes: FrameBytesListener | undefined
}

/** Told a request's frame size and its reply's, in bytes (RequestOptions.onFrameBytes). */
export type FrameBytesListener = (sent: number, received: number) => void

export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000

export interface RequestOptions {
  /** how long to wait for the answer; past it the request rejects with DeadlineExceeded (default 10 s) */
  timeoutMs?: number
  /** aborting rejects the request at once: with the signal's reason if it is a typed error, else Cancelled */
  signal?: AbortSignal
  /**
   * Told the size in bytes of the request's frame and of its reply's once the reply is in, before
   * the caller sees it (not when the request fails): what the exchange cost on the wire, from the
   * frames the router encodes and decodes anyway. Both are 0 for a request to this peer itself.
   */
  onFrameBytes?: FrameBytesListener
}

const abortError = (signal: AbortSignal, what: string): unknown => (isAuraError(signal.reason) ? signal.reason : new Cancelled(`${what} cancelled`))

export interface RouterOptions {
  network: Network
  bus: EventBus
  clock: Clock
  random: Random
  maxFrameBytes: number
  /** inbound messages a peer may send per second before it gets LIMIT_EXCEEDED; default: no limit */
  maxInboundPerPeerPerSecond?: number
}

const DONE: Promise<void> = Promise.resolve()

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function'

export class Router {
  private readonly handlers = new Map<PatternFamily, Map<string, KindHandler>>()
  private readonly pending = new Map<string, Pending>()
  private readonly network: Network
  private readonly bus: EventBus
  private readonly clock: Clock
  private readonly random: Random
  readonly maxFrameBytes: number
  private readonly inboundLimit: PeerRateLimiter | undefined
  /** typed-error answers per peer and second; the rejections beyond it are still counted */
  private readonly errorAnswers: PeerRateLimiter
  // Request ids: a random prefix per router (so a late answer to an earlier incarnation of this
  // peer never matches) and a counter. One random draw per request cost more than the rest of
  // building the request; unguessability is not needed because answers are matched on the peer.
  private idPrefix: string | undefined
  private idCounter = 0

  constructor(options: RouterOptions) {
    this.network = options.network
    this.bus = options.bus
    this.clock = options.clock
    this.random = options.random
    this.maxFrameBytes = options.maxFrameBytes
    this.errorAnswers = new PeerRateLimiter(options.clock, ERROR_ANSWERS_PER_PEER_PER_SECOND)
    this.inboundLimit = options.maxInboundPerPeerPerSecond === undefined ? undefined : new PeerRateLimiter(options.clock, options.maxInboundPerPeerPerSecond)
  }

  get self(): string {
    return this.network.peerId
  }

  /** Registers handlers for a family's message kinds; the first registration opens the protocol. */
  async register(family: PatternFamily, kinds: Record<string, KindHandler>): Promise<void> {
    let table = this.handlers.get(family)
    const first = !table
    if (!table) this.handlers.set(family, (table = new Map()))
    for (const [kind, handler] of Object.entries(kinds)) table.set(kind, handler)
    // Inbound frames never run in the timeout scope of whatever first opened the protocol or dialled
    // the connection: a peer's message is not part of a local operation.
    if (first) await this.network.handle(protocolFor(family), (frame) => outsideTimeoutScope(() => this.onFrame(family, frame)))
  }

  /** One-way message. Rejects with the network's typed error if the frame cannot be sent. */
  send(peerId: string, family: PatternFamily, message: OutboundMessage): Promise<void> {
    let envelope: Envelope
    try {
      envelope = this.envelope(message, undefined)
    } catch (error) {
      return Promise.reject(error)
    }
    return this.dispatchOut(peerId, family, envelope)
  }

  /**
   * Request/response: resolves with the remote handler's return value, rejects with its typed
   * error, with DeadlineExceeded when no answer came within the timeout, or when `signal` aborts.
   * `options` may be the timeout in ms alone.
   */
  request<T = unknown>(
    peerId: string,
    family: PatternFamily,
    message: OutboundMessage,
    options: number | RequestOptions = DEFAULT_REQUEST_TIMEOUT_MS,
  ): Promise<T> {
    const { timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS, signal, onFrameBytes } = typeof options === 'number' ? { timeoutMs: options } : options
    return new Promise<T>((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError(signal, `request ${message.kind}`))
        return
      }
      // inside the executor: a bad message rejects instead of throwing at the caller
      const id = this.nextRequestId()
      const envelope = this.envelope(message, id)
      const pending: Pending = {
        resolve: resolve as (v: unknown) => void,
        reject,
        timer: undefined,
        peer: peerId,
        family,
        envelope,
        signal,
        onAbort: undefined,
        sentBytes: 0,
        onFrameBytes,
      }
      pending.timer = this.clock.setTimeout(() => {
        this.settle(
          id,
          undefined,
          new DeadlineExceeded(`no reply to ${message.kind} from ${peerId} within ${timeoutMs} ms`, { peer: peerId, kind: message.kind }),
        )
      }, timeoutMs)
      if (signal !== undefined) {
        pending.onAbort = () => this.settle(id, undefined, abortError(signal, `request ${message.kind}`))
        signal.addEventListener('abort', pending.onAbort, { once: true })
      }
      this.pending.set(id, pending)
      this.dispatchOut(peerId, family, envelope, pending).catch((error: unknown) => this.settle(id, undefined, error))
    })
  }

  private nextRequestId(): string {
    this.idPrefix ??= `${this.random.id(8)}.`
    return this.idPrefix + (this.idCounter++).toString(36)
  }

  /** Fields in the same order as always (v, kind, from, to, optional headers, payload, id). */
  private envelope(message: OutboundMessage, id: string | undefined): Envelope {
    const envelope: Envelope = { v: 1, kind: message.kind, from: this.self, to: message.to ?? message.kind } as Envelope
    if (message.session !== undefined) envelope.session = message.session
    if (message.deadline !== undefined) envelope.budgetMs = Math.max(0, message.deadline - this.clock.now())
    if (message.epoch !== undefined) envelope.epoch = message.epoch
    envelope.payload = message.payload
    if (id !== undefined) envelope.id = id
    return envelope
  }

  /** Never throws: every failure is a rejected promise, as for an async function. */
  private dispatchOut(peerId: string, family: PatternFamily, envelope: Envelope, request?: Pending): Promise<void> {
    // Replies and typed errors come back on the family's protocol: listen on it before sending,
    // even if this peer serves no kinds of that family itself.
    if (!this.handlers.has(family)) return this.register(family, {}).then(() => this.dispatchOut(peerId, family, envelope, request))
    if (peerId === this.self) {
      // Local delivery: same validation and dispatch, no codec, no network.
      this.bus.emit({ type: 'wire', direction: 'out', kind: envelope.kind, remote: peerId, bytes: 0, session: envelope.session })
      queueMicrotask(() => outsideTimeoutScope(() => this.dispatchIn(family, envelope, peerId, 0)))
      return DONE
    }
    let frame: Uint8Array
    try {
      frame = encodeEnvelope(envelope, this.maxFrameBytes)
    } catch (error) {
      return Promise.reject(error)
    }
    if (request !== undefined) request.sentBytes = frame.length
    return this.network.send(peerId, protocolFor(family), frame).then(() => {
      this.bus.emit({ type: 'wire', direction: 'out', kind: envelope.kind, remote: peerId, bytes: frame.length, session: envelope.session })
    })
  }

  private onFrame(family: PatternFamily, frame: IncomingFrame): void {
    let envelope: Envelope
    try {
      envelope = decodeEnvelope(frame.bytes, this.maxFrameBytes)
    } catch (error) {
      this.reject(family, frame.from, undefined, error, 'decode')
      return
    }
    this.dispatchIn(family, envelope, frame.from, frame.bytes.length)
  }

  private dispatchIn(family: PatternFamily, envelope: Envelope, from: string, bytes: number): void {
    this.bus.emit({ type: 'wire', direction: 'in', kind: envelope.kind, remote: from, bytes, session: envelope.session })
    if (envelope.from !== from) {
      this.reject(
        family,
        from,
        envelope,
        new PermissionDenied('envelope sender does not match the authenticated peer', { claimed: envelope.from, peer: from }),
        'auth',
      )
      return
    }
    if (envelope.kind === REPLY || envelope.kind === ERROR) {
      this.onAnswer(envelope, from, bytes)
      return
    }
    // Answers above are to our own requests and never limited; everything else a peer sends is.
    if (from !== this.self && this.inboundLimit?.take(from) === false) {
      this.reject(
        family,
        from,
        envelope,
        new LimitExceeded(`more than ${this.inboundLimit.perSecond} messages a second from this peer`, { kind: envelope.kind }),
        'rate-limit',
      )
      return
    }
    const handler = this.handlers.get(family)?.get(envelope.kind)
    if (!handler) {
      this.reject(family, from, envelope, new UnknownProtocol(`no handler for ${family}/${envelope.kind}`, { family, kind: envelope.kind }), 'dispatch')
      return
    }
    // Most handlers answer synchronously; only a returned promise is waited on.
    let result: unknown
    const message: InboundMessage = { envelope, from, family }
    try {
      if (envelope.budgetMs !== undefined) message.deadlineAt = this.clock.now() + envelope.budgetMs
      result = handler(message)
    } catch (error) {
      this.handlerFailed(message, error)
      return
    }
    if (isThenable(result)) {
      // Promise.resolve returns a native promise as is and tames a foreign thenable.
      Promise.resolve(result).then(
        (value) => this.handled(message, value),
        (error: unknown) => this.handlerFailed(message, error),
      )
    } else this.handled(message, result)
  }

  private handled(message: InboundMessage, result: unknown): void {
    const { envelope, from, family } = message
    const answered = envelope.id !== undefined ? this.answer(from, family, { kind: REPLY, payload: result }, envelope.id) : DONE
    this.afterAnswer(message, answered)
  }

  private handlerFailed(message: InboundMessage, error: unknown): void {
    this.afterAnswer(message, this.reject(message.family, message.from, message.envelope, error, `${message.family}/${message.envelope.kind}`))
  }

  /**
   * Runs the handler's afterAnswer once the answer is written (or failed to be): the answer then
   * leaves before whatever afterAnswer does (an invitee executing its protocol, say) instead of
   * waiting for it, and anything afterAnswer sends that peer follows it.
   */
  private afterAnswer(message: InboundMessage, answered: Promise<void>): void {
    const after = message.afterAnswer
    if (after !== undefined) void answered.then(after)
  }

  private onAnswer(envelope: Envelope, from: string, bytes: number): void {
    const id = envelope.id
    const pending = id === undefined ? undefined : this.pending.get(id)
    if (id === undefined || pending === undefined || pending.peer !== from) {
      if (envelope.kind === ERROR) {
        const payload = envelope.payload as { code?: string; message?: string } | undefined
        this.bus.emit({ type: 'error', code: `REMOTE_${payload?.code ?? 'UNKNOWN'}`, where: 'remote', message: String(payload?.message ?? ''), remote: from })
      }
      return
    }
    if (envelope.kind === REPLY) {
      this.settle(id, envelope.payload)
      // after settling (a throwing callback cannot leave the request hanging), and still before
      // the requester's continuation runs, a microtask later
      pending.onFrameBytes?.(pending.sentBytes, bytes)
    } else {
      const payload = (envelope.payload ?? {}) as { code?: AuraErrorCode; message?: string; details?: Record<string, unknown> }
      this.settle(id, undefined, new AuraError(payload.code ?? 'NETWORK', payload.message ?? 'remote error', { ...(payload.details ?? {}), remote: from }))
    }
  }

  private settle(id: string, value: unknown, error?: unknown): void {
    const pending = this.pending.get(id)
    if (!pending) return
    this.pending.delete(id)
    this.clock.clearTimeout(pending.timer)
    if (pending.onAbort !== undefined) pending.signal!.removeEventListener('abort', pending.onAbort)
    if (error !== undefined) pending.reject(error)
    else pending.resolve(value)
  }

  /** Counts a rejected inbound message and tells the sender why (never answering an answer); settles once told. */
  private reject(family: PatternFamily, from: string, envelope: Envelope | undefined, error: unknown, where: string): Promise<void> {
    const typed = isAuraError(error) ? error : new MalformedFrame(error instanceof Error ? error.message : String(error))
    this.bus.emit({ type: 'error', code: typed.code, where, message: typed.message, remote: from })
    if (envelope && (envelope.kind === REPLY || envelope.kind === ERROR)) return DONE
    if (from === this.self && envelope?.id === undefined) return DONE
    // Telling a peer why costs a send (and, to a peer that does not speak the protocol back, a
    // failed stream negotiation each time): a flood of bad frames gets a bounded number of answers.
    if (!this.errorAnswers.take(from)) return DONE
    const payload = { code: typed.code, message: typed.message, details: sanitizeDetails(typed.details) }
    return this.answer(from, family, { kind: ERROR, payload }, envelope?.id)
  }

  private answer(to: string, family: PatternFamily, message: OutboundMessage, id: string | undefined): Promise<void> {
    return this.dispatchOut(to, family, this.envelope(message, id)).catch((error: unknown) => {
      this.bus.emit({ type: 'error', code: isAuraError(error) ? error.code : 'NETWORK', where: 'answer', message: String(error), remote: to })
    })
  }

  /**
   * Rejects with `error` every outstanding request of `family` that `match` picks by its addressee
   * and envelope (e.g. the sends on a transport channel that just closed); returns how many.
   * Answers that come later are dropped like any late answer.
   */
  abortRequests(family: PatternFamily, match: (peer: string, envelope: Envelope) => boolean, error: unknown): number {
    let aborted = 0
    for (const [id, pending] of [...this.pending]) {
      if (pending.family !== family || !match(pending.peer, pending.envelope)) continue
      this.settle(id, undefined, error)
      aborted++
    }
    return aborted
  }

  /** Rejects every outstanding request (on stop). */
  close(): void {
    for (const id of [...this.pending.keys()]) this.settle(id, undefined, new AuraError('CANCELLED', 'router closed'))
  }
}

/** zod issues and nested errors can be large or non-serialisable; send only a small summary. */
function sanitizeDetails(details: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, value] of Object.entries(details)) {
    if (value === null || ['string', 'number', 'boolean'].includes(typeof value)) out[key] = value
  }
  return out
}
