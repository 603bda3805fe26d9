// Transport coordination (pattern 5) over the Network effect: logical channels per (peer,
// context), multiplexed on one protocol and therefore on one pooled connection per peer.
//
// Frame format on `/aura/transport/1.0.0` (the network adds the length prefix): a MessagePack
// array `[1, type, ...fields]`:
//
//   0 open       [channelId, contextId, epoch]        opener → peer: start accepting this channel
//   1 opened     [channelId]                          peer → opener
//   2 reject     [channelId, code, message]           peer → opener: open refused (stale epoch, limit, closed)
//   3 data       [channelId, key, epoch, kind, payload: bin]
//   4 ack        [channelId, key]                     delivered (now or earlier: duplicates are re-acked)
//   5 nack       [channelId, key, code, message]      refused, never delivered
//   6 close      [channelId, reason, side]            side 0: the sender opened it; 1: the receiver did
//   7 epoch      [contextId, epoch]                   the context moved to `epoch`
//   8 epoch-ack  [contextId, epoch]                   answered with the receiver's (possibly newer) epoch
//
// Exactly-once as seen by the application: every data frame carries an idempotency key; the
// receiver remembers delivered keys per channel for `dedupWindow.ttlMs` and re-acks duplicates
// without delivering them. The sender stops retrying before that window ends (its retry deadline
// is capped at ttlMs), so a retry never outlives the receiver's memory of the original. Closed
// channels keep their keys for the same window, so a retry of a delivered message is acked even
// after the channel closed. A failed send may or may not have been delivered (its ack may be
// what was lost); an acknowledged one was delivered exactly once.
//
// Pool: one slot per peer, held while the peer has at least one live channel from us; the network
// keeps one connection per peer and every channel rides on it. A restarted peer has forgotten its
// channels and their delivered keys, so it answers frames on them with CHANNEL_CLOSED (rather
// than risk a second delivery) and the sender opens a new channel. Open inbound channels are
// bounded per peer (maxInboundChannelsPerPeer); closed ones are forgotten after the dedup window.
import { Packr } from 'msgpackr'
import { Subject, type Observable } from 'rxjs'
import { createActor, fromCallback, type Actor } from 'xstate'
import { z } from 'zod'
import {
  AttemptBudgetExhausted,
  AuraError,
  BudgetExhausted,
  Cancelled,
  ChannelClosed,
  ConfigInvalid,
  DeadlineExceeded,
  EpochRegression,
  InvalidInput,
  LimitExceeded,
  MalformedFrame,
  NetworkError,
  PermissionDenied,
  PeerUnreachable,
  isAuraError,
  invalidInput,
  type AuraErrorCode,
} from '../../effects/errors.js'
import type { IncomingFrame, Network } from '../../effects/network/index.js'
import { CryptoRandom, type Random } from '../../effects/random/index.js'
import { SystemClock, type Clock, type TimerHandle } from '../../effects/time/index.js'
import { backoffDelay, errorInfo } from '../../machines/kernel.js'
import {
  flowBudgetSchema,
  reconnectPolicySchema,
  transportMachine,
  type BackoffTimerInput,
  type ChannelStateName,
  type CloseReason,
  type ConnectorInput,
  type DrainTimerInput,
  type GuardMode,
  type ReconnectPolicy,
  type TransportEvent,
  type TransportOutput,
} from '../../machines/transport.js'
import { LatencyWindow, type LatencySummary } from '../core/metrics.js'
import { isTransient, withRetry, type RetryPolicy } from '../timeouts/with-retry.js'

export const TRANSPORT_PROTOCOL = '/aura/transport/1.0.0'

// ---------------------------------------------------------------------------------------------
// Frames

const FRAME_VERSION = 1
const T = { open: 0, opened: 1, reject: 2, data: 3, ack: 4, nack: 5, close: 6, epoch: 7, epochAck: 8 } as const

export type TransportFrame =
  | { type: 'open'; channelId: string; contextId: string; epoch: number }
  | { type: 'opened'; channelId: string }
  | { type: 'reject'; channelId: string; code: string; message: string }
  | { type: 'data'; channelId: string; key: string; epoch: number; kind: string; payload: Uint8Array }
  | { type: 'ack'; channelId: string; key: string }
  | { type: 'nack'; channelId: string; key: string; code: string; message: string }
  | { type: 'close'; channelId: string; reason: string; side: 0 | 1 }
  | { type: 'epoch'; contextId: string; epoch: number }
  | { type: 'epoch-ack'; contextId: string; epoch: number }

const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

const id = z.string().min(1).max(256)
const epochField = z.number().int().nonnegative()
const text = z.string().max(1024)
const v = z.literal(FRAME_VERSION)
const frameSchemas = {
  [T.open]: z.tuple([v, z.literal(T.open), id, id, epochField]),
  [T.opened]: z.tuple([v, z.literal(T.opened), id]),
  [T.reject]: z.tuple([v, z.literal(T.reject), id, text, text]),
  [T.data]: z.tuple([v, z.literal(T.data), id, id, epochField, z.string().min(1).max(64), z.instanceof(Uint8Array)]),
  [T.ack]: z.tuple([v, z.literal(T.ack), id, id]),
  [T.nack]: z.tuple([v, z.literal(T.nack), id, id, text, text]),
  [T.close]: z.tuple([v, z.literal(T.close), id, text, z.union([z.literal(0), z.literal(1)])]),
  [T.epoch]: z.tuple([v, z.literal(T.epoch), id, epochField]),
  [T.epochAck]: z.tuple([v, z.literal(T.epochAck), id, epochField]),
} as const

export function encodeTransportFrame(frame: TransportFrame): Uint8Array {
  switch (frame.type) {
    case 'open':
      return packr.pack([FRAME_VERSION, T.open, frame.channelId, frame.contextId, frame.epoch])
    case 'opened':
      return packr.pack([FRAME_VERSION, T.opened, frame.channelId])
    case 'reject':
      return packr.pack([FRAME_VERSION, T.reject, frame.channelId, frame.code, frame.message])
    case 'data':
      return packr.pack([FRAME_VERSION, T.data, frame.channelId, frame.key, frame.epoch, frame.kind, frame.payload])
    case 'ack':
      return packr.pack([FRAME_VERSION, T.ack, frame.channelId, frame.key])
    case 'nack':
      return packr.pack([FRAME_VERSION, T.nack, frame.channelId, frame.key, frame.code, frame.message])
    case 'close':
      return packr.pack([FRAME_VERSION, T.close, frame.channelId, frame.reason, frame.side])
    case 'epoch':
      return packr.pack([FRAME_VERSION, T.epoch, frame.contextId, frame.epoch])
    case 'epoch-ack':
      return packr.pack([FRAME_VERSION, T.epochAck, frame.contextId, frame.epoch])
  }
}

/** Throws MalformedFrame for anything that is not a valid frame of this version. */
export function decodeTransportFrame(bytes: Uint8Array): TransportFrame {
  let raw: unknown
  try {
    raw = packr.unpack(bytes)
  } catch (cause) {
    throw new MalformedFrame('transport frame is not valid MessagePack', {}, { cause })
  }
  const type = Array.isArray(raw) ? raw[1] : undefined
  const schema = typeof type === 'number' ? frameSchemas[type as keyof typeof frameSchemas] : undefined
  if (schema === undefined) throw new MalformedFrame('unknown transport frame', { type })
  const parsed = schema.safeParse(raw)
  if (!parsed.success) throw new MalformedFrame('transport frame failed validation', { issues: parsed.error.issues })
  const f = parsed.data as unknown[]
  switch (type) {
    case T.open:
      return { type: 'open', channelId: f[2] as string, contextId: f[3] as string, epoch: f[4] as number }
    case T.opened:
      return { type: 'opened', channelId: f[2] as string }
    case T.reject:
      return { type: 'reject', channelId: f[2] as string, code: f[3] as string, message: f[4] as string }
    case T.data:
      return { type: 'data', channelId: f[2] as string, key: f[3] as string, epoch: f[4] as number, kind: f[5] as string, payload: f[6] as Uint8Array }
    case T.ack:
      return { type: 'ack', channelId: f[2] as string, key: f[3] as string }
    case T.nack:
      return { type: 'nack', channelId: f[2] as string, key: f[3] as string, code: f[4] as string, message: f[5] as string }
    case T.close:
      return { type: 'close', channelId: f[2] as string, reason: f[3] as string, side: f[4] as 0 | 1 }
    case T.epoch:
      return { type: 'epoch', contextId: f[2] as string, epoch: f[3] as number }
    default:
      return { type: 'epoch-ack', contextId: f[2] as string, epoch: f[3] as number }
  }
}

// ---------------------------------------------------------------------------------------------
// Public types

export interface ContextManager {
  currentEpoch(contextId: string): number
  isStale?(contextId: string): boolean
}

export interface GuardRequest {
  peerId: string
  contextId: string
  channelId: string
  epoch: number
  kind: string
}

/** Returns false to deny. A throw means "cannot tell": denied for fail-closed kinds, let through (and counted) for best-effort ones. */
export type CapabilityCheck = (request: GuardRequest) => boolean | Promise<boolean>

export interface ChannelMessage {
  from: string
  channelId: string
  contextId: string
  epoch: number
  kind: string
  /** the idempotency key the sender gave the message */
  key: string
  payload: unknown
}

export interface SendReceipt {
  key: string
  attempts: number
}

export interface ChannelSendOptions {
  signal?: AbortSignal
  /** absolute time (clock ms); retries stop there. Capped at now + dedupWindow.ttlMs. */
  deadlineAt?: number
}

export interface PoolStats {
  /** peers holding a pooled connection slot */
  size: number
  limit: number
  /** live outbound channels over all peers */
  channels: number
  /** live outbound channels per peer */
  peers: Record<string, number>
  /** inbound channel records kept (open ones, and closed ones still answering retries) */
  inbound: number
}

export interface InboundChannelView {
  from: string
  channelId: string
  contextId: string
  epoch: number
  open: boolean
}

export interface TransportMetrics {
  counters: Record<string, number>
  latency: { send: LatencySummary }
}

const defaultReconnect: ReconnectPolicy = { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 2_000, multiplier: 2, jitter: 'equal' }
const defaultSendPolicy: RetryPolicy = { maxAttempts: 5, initialDelayMs: 50, maxDelayMs: 1_000, multiplier: 2, jitter: 'equal' }

const isObject = (value: unknown) => typeof value === 'object' && value !== null

const optionsSchema = z
  .object({
    clock: z.custom<Clock>((c) => isObject(c) && typeof (c as Clock).now === 'function', 'expected a Clock').optional(),
    random: z.custom<Random>((r) => isObject(r) && typeof (r as Random).id === 'function', 'expected a Random').optional(),
    /** most peers with a pooled connection at once */
    poolLimit: z.number().int().positive().default(64),
    dedupWindow: z
      .object({ ttlMs: z.number().int().positive().default(60_000), maxEntries: z.number().int().positive().default(100_000) })
      .strict()
      .default({ ttlMs: 60_000, maxEntries: 100_000 }),
    /** per attempt: how long a send waits for its ack before trying again */
    ackTimeoutMs: z.number().int().positive().default(2_000),
    handshakeTimeoutMs: z.number().int().positive().default(2_000),
    drainTimeoutMs: z.number().int().positive().default(5_000),
    reconnect: reconnectPolicySchema.default(defaultReconnect),
    sendPolicy: reconnectPolicySchema.default(defaultSendPolicy),
    /** inbound channels a single peer may hold open here */
    maxInboundChannelsPerPeer: z.number().int().positive().default(1_024),
    capabilityCheck: z.custom<CapabilityCheck>((f) => typeof f === 'function').optional(),
    guardModes: z.record(z.string(), z.enum(['fail-closed', 'best-effort'])).default({}),
    defaultGuardMode: z.enum(['fail-closed', 'best-effort']).default('fail-closed'),
  })
  .strict()

export type TransportCoordinatorOptions = z.input<typeof optionsSchema>

export const channelConfigSchema = z
  .object({
    /** dial addresses of the peer in failover order; without any, an existing connection (or the peer store) is used */
    addresses: z.array(z.string().min(1)).optional(),
    /** defaults to the context's current epoch here */
    epoch: epochField.optional(),
    budget: flowBudgetSchema.optional(),
    reconnect: reconnectPolicySchema.optional(),
    drainTimeoutMs: z.number().int().positive().optional(),
  })
  .strict()
export type ChannelConfig = z.input<typeof channelConfigSchema>

const messageSchema = z
  .object({
    payload: z.unknown(),
    kind: z.string().min(1).max(64).default('data'),
    /** reuse one key to make two sends of the same request the same request */
    key: z.string().min(1).max(128).optional(),
  })
  .strict()
export type ChannelSendMessage = z.input<typeof messageSchema>

const establishArgsSchema = z.object({ peerId: z.string().min(1), contextId: z.string().min(1).max(256) })

/** A handle on one logical channel; its lifecycle lives in a transport machine actor. */
export class Channel {
  /** @internal */
  constructor(
    readonly id: string,
    readonly peerId: string,
    readonly contextId: string,
    /** @internal */ readonly actor: Actor<typeof transportMachine>,
    /** resolves when the channel reaches Closed or Failed */
    readonly closed: Promise<TransportOutput>,
  ) {}

  get state(): ChannelStateName {
    const value = this.actor.getSnapshot().value
    return (typeof value === 'string' ? value : Object.keys(value)[0]) as ChannelStateName
  }

  get epoch(): number {
    return this.actor.getSnapshot().context.epoch
  }

  get closeReason(): CloseReason | null {
    return this.actor.getSnapshot().context.closeReason
  }

  get inflight(): number {
    return this.actor.getSnapshot().context.counts.inflight
  }
}

// ---------------------------------------------------------------------------------------------
// Internal records

interface Waiter {
  resolve: (value: number) => void
  reject: (error: unknown) => void
  timer: TimerHandle
  signal?: AbortSignal
  onAbort?: () => void
}

const ignore = () => undefined

interface Outbound {
  channel: Channel
  addresses: string[]
  /** the handshake has been sent at least once, so the peer may know this channel */
  announced: boolean
}

interface Inbound {
  from: string
  channelId: string
  contextId: string
  epoch: number
  open: boolean
  closedAt: number
  /** delivered idempotency keys → delivery time, oldest first */
  delivered: Map<string, number>
}

// a closed channel, a spent budget or an old epoch are final (the error table says so)
const retryableSend = isTransient

const KNOWN_CODES = new Set<AuraErrorCode>(['CHANNEL_CLOSED', 'EPOCH_REGRESSION', 'LIMIT_EXCEEDED', 'PERMISSION_DENIED', 'BUDGET_EXHAUSTED', 'INVALID_INPUT'])

function remoteError(code: string, message: string, details: Record<string, unknown>): AuraError {
  switch (code) {
    case 'CHANNEL_CLOSED':
      return new ChannelClosed(message, details)
    case 'EPOCH_REGRESSION':
      return new EpochRegression(message, details)
    case 'LIMIT_EXCEEDED':
      return new LimitExceeded(message, details)
    default:
      return new AuraError(KNOWN_CODES.has(code as AuraErrorCode) ? (code as AuraErrorCode) : 'NETWORK', message, details)
  }
}

const waiterKey = (...parts: string[]) => parts.join('\n')

// ---------------------------------------------------------------------------------------------

export class TransportCoordinator {
  readonly messages$: Observable<ChannelMessage>

  private readonly clock: Clock
  private readonly random: Random
  private readonly options: z.output<typeof optionsSchema>
  private readonly messageSubject = new Subject<ChannelMessage>()
  private readonly epochs = new Map<string, number>()
  private readonly outbound = new Map<string, Outbound>()
  private readonly inbound = new Map<string, Inbound>()
  private readonly poolEntries = new Map<string, Set<string>>()
  private readonly waiters = new Map<string, Waiter>()
  private readonly counters = new Map<string, number>()
  private readonly sendLatency = new LatencyWindow()
  private lastSweep = 0
  /** generated idempotency keys: a random prefix per coordinator and a counter (no draw per message) */
  private readonly keyPrefix: string
  private keySeq = 0
  private readonly ready: Promise<void>
  private stopped = false
  private stopping: Promise<void> | undefined
  private readonly countSent = () => this.count('framesSent')
  private readonly countLost = () => this.count('controlFramesLost')

  constructor(
    readonly peerId: string,
    private readonly network: Network,
    options: TransportCoordinatorOptions = {},
  ) {
    const parsed = optionsSchema.safeParse(options)
    if (!parsed.success) throw new ConfigInvalid('invalid TransportCoordinator options', { issues: parsed.error.issues })
    if (network === null || typeof network !== 'object' || typeof network.send !== 'function') throw new ConfigInvalid('TransportCoordinator needs a Network')
    this.options = parsed.data
    this.clock = parsed.data.clock ?? new SystemClock()
    this.random = parsed.data.random ?? new CryptoRandom()
    this.messages$ = this.messageSubject.asObservable()
    this.keyPrefix = this.random.id(8)
    this.lastSweep = this.clock.now()
    this.ready = network.handle(TRANSPORT_PROTOCOL, (frame) => this.onFrame(frame))
    this.ready.catch(() => undefined)
  }

  /** Resolves once incoming frames are handled; establishChannel waits for it too. */
  start(): Promise<void> {
    return this.ready
  }

  /** Closes every channel at once (in-flight sends fail with ChannelClosed) and stops handling frames. */
  stop(): Promise<void> {
    this.stopping ??= this.stopNow()
    return this.stopping
  }

  private async stopNow(): Promise<void> {
    // Channels close first, while close frames can still go out, so peers close their side too.
    const closing = [...this.outbound.values()].map((o) => {
      this.sendTo(o.channel.actor, { type: 'STALE' })
      return o.channel.closed
    })
    await Promise.allSettled(closing)
    this.stopped = true
    for (const [key, waiter] of this.waiters) this.settle(key, waiter, new ChannelClosed('transport stopped'))
    await this.network.unhandle(TRANSPORT_PROTOCOL).catch(() => undefined)
    this.messageSubject.complete()
  }

  currentEpoch(contextId: string): number {
    return this.epochs.get(contextId) ?? 0
  }

  /** Delivers every message accepted from a peer; returns the unsubscribe function. */
  onMessage(handler: (message: ChannelMessage) => void): () => void {
    const subscription = this.messages$.subscribe(handler)
    return () => subscription.unsubscribe()
  }

  // ---- channels -------------------------------------------------------------------------------

  async establishChannel(peerId: string, contextId: string, channelConfig: ChannelConfig = {}): Promise<Channel> {
    const args = establishArgsSchema.safeParse({ peerId, contextId })
    if (!args.success) throw invalidInput('establishChannel arguments', args.error.issues)
    const config = channelConfigSchema.safeParse(channelConfig)
    if (!config.success) throw invalidInput('channel config', config.error.issues)
    if (this.stopping !== undefined) throw new ChannelClosed('transport stopped')
    if (peerId === this.peerId) throw new PeerUnreachable('cannot open a channel to self', { peerId })
    await this.ready

    const current = this.currentEpoch(contextId)
    const epoch = config.data.epoch ?? current
    if (epoch < current) {
      this.count('epochRegressions')
      throw new EpochRegression(`epoch ${epoch} of ${contextId} is older than ${current}`, { contextId, epoch, current })
    }
    if (epoch > current) this.spreadEpoch(this.moveEpoch(contextId, epoch, undefined), contextId, epoch)

    const channelId = this.random.id(8)
    // Reserving the pool slot happens before the first await below, so two concurrent
    // establishments cannot both take the last slot.
    this.reserve(peerId, channelId)

    const addresses = config.data.addresses ?? []
    const machine = transportMachine.provide({
      actors: {
        connector: this.connectorActor(addresses),
        backoffTimer: this.backoffTimerActor(),
        drainTimer: this.drainTimerActor(),
      },
    })
    const actor = createActor(machine, {
      clock: this.clock,
      input: {
        channelId,
        peerId,
        contextId,
        epoch,
        addresses,
        ...(config.data.budget !== undefined ? { budget: config.data.budget } : {}),
        reconnect: config.data.reconnect ?? this.options.reconnect,
        drainTimeoutMs: config.data.drainTimeoutMs ?? this.options.drainTimeoutMs,
      },
    })
    let settleClosed!: (output: TransportOutput) => void
    const closed = new Promise<TransportOutput>((resolve) => (settleClosed = resolve))
    const channel = new Channel(channelId, peerId, contextId, actor, closed)
    const record: Outbound = { channel, addresses, announced: false }
    this.outbound.set(channelId, record)

    const opened = new Promise<void>((resolve, reject) => {
      actor.subscribe({
        next: (snapshot) => {
          if (snapshot.value === 'Open') resolve()
          if (snapshot.status === 'done') {
            const output = snapshot.output!
            this.finalize(record, output)
            settleClosed(output)
            reject(this.closedError(record, output))
          }
        },
        error: (err) => {
          this.outbound.delete(channelId)
          this.releaseSlot(peerId, channelId)
          settleClosed({ state: 'Failed', closeReason: null, error: errorInfo(err), sent: 0, acked: 0, failed: 0 })
          reject(err)
        },
      })
    })
    actor.start()
    actor.send({ type: 'CONNECT' })
    await opened
    this.count('channelsOpened')
    return channel
  }

  /** Graceful close: in-flight sends finish (or the drain timeout passes), then the channel closes on both ends. */
  async closeChannel(channel: Channel): Promise<TransportOutput> {
    if (!(channel instanceof Channel)) throw new ChannelClosed('not a channel of this coordinator')
    this.sendTo(channel.actor, { type: 'CLOSE' })
    return channel.closed
  }

  /**
   * Send one message and wait until the peer acknowledges it. Guard chain first (capability
   * check, then budget charge); then attempts under the retry machine, all with the same
   * idempotency key. Rejects with PermissionDenied, BudgetExhausted, ChannelClosed,
   * EpochRegression, AttemptBudgetExhausted, DeadlineExceeded, Cancelled or InvalidInput.
   */
  async sendWithRetry(channel: Channel, message: ChannelSendMessage, retryPolicy?: RetryPolicy, options: ChannelSendOptions = {}): Promise<SendReceipt> {
    const started = this.clock.now()
    const parsed = messageSchema.safeParse(message)
    if (!parsed.success) throw invalidInput('channel message', parsed.error.issues)
    if (retryPolicy !== undefined && !reconnectPolicySchema.safeParse(retryPolicy).success) throw invalidInput('retry policy', reconnectPolicySchema.safeParse(retryPolicy).error?.issues)
    if (options.deadlineAt !== undefined && !Number.isFinite(options.deadlineAt)) throw new InvalidInput('deadlineAt must be a finite time', { deadlineAt: options.deadlineAt })
    const record = channel instanceof Channel ? this.outbound.get(channel.id) : undefined
    if (record === undefined) {
      if (channel instanceof Channel && channel.closeReason === 'budget') {
        this.count('budgetExhausted')
        throw new BudgetExhausted('the channel has spent its flow budget', { channelId: channel.id, peerId: channel.peerId })
      }
      this.count('channelClosedRejections')
      throw new ChannelClosed('unknown or closed channel', { channelId: channel instanceof Channel ? channel.id : undefined })
    }
    const { kind, payload } = parsed.data
    const mode: GuardMode = this.options.guardModes[kind] ?? this.options.defaultGuardMode
    if (this.options.capabilityCheck !== undefined) await this.checkCapability(channel, kind, mode)

    const body = packr.pack(payload) as Uint8Array
    const key = parsed.data.key ?? `${this.keyPrefix}.${(this.keySeq++).toString(36)}`
    this.charge(record, key, body.byteLength, mode)

    const frame = encodeTransportFrame({ type: 'data', channelId: channel.id, key, epoch: channel.epoch, kind, payload: body })
    const ttlCap = started + this.options.dedupWindow.ttlMs
    const deadlineAt = Math.min(options.deadlineAt ?? ttlCap, ttlCap)
    let attempts: number
    try {
      attempts = await this.deliver(record, key, frame, retryPolicy ?? this.options.sendPolicy, deadlineAt, options.signal)
    } catch (err) {
      this.sendTo(channel.actor, { type: 'SEND_FAILED', key })
      this.count('sendFailures')
      this.countError(err)
      throw err
    }
    this.sendTo(channel.actor, { type: 'ACK', key })
    this.count('messagesAcked')
    this.sendLatency.record(this.clock.now() - started)
    return { key, attempts }
  }

  /** Sends the frame until acknowledged, under the retry policy (withRetry); returns the attempts made. */
  private async deliver(record: Outbound, key: string, frame: Uint8Array, policy: RetryPolicy, deadlineAt: number, signal: AbortSignal | undefined): Promise<number> {
    if (signal?.aborted) throw new Cancelled('send cancelled', { key })
    if (this.clock.now() >= deadlineAt) throw new DeadlineExceeded('send deadline already passed', { key, deadlineAt })
    let attempts = 0
    let lastError: unknown
    try {
      await withRetry(
        (attempt, attemptSignal) => {
          attempts = attempt
          if (attempt > 1) this.count('retries')
          return this.attemptDelivery(record, key, frame, attemptSignal).catch((err: unknown) => {
            lastError = err
            throw err
          })
        },
        { policy, deadlineAt, isRetryable: retryableSend, clock: this.clock, random: this.random, ...(signal !== undefined ? { signal } : {}) },
      )
    } catch (thrown) {
      if (thrown === lastError) throw thrown // a permanent failure: the attempt's own error
      const details = { key, attempts, last: errorInfo(lastError) }
      if (isAuraError(thrown) && thrown.code === 'ATTEMPT_BUDGET_EXHAUSTED') throw new AttemptBudgetExhausted(`gave up after ${attempts} attempts`, details, { cause: lastError })
      if (isAuraError(thrown) && thrown.code === 'DEADLINE_EXCEEDED') throw new DeadlineExceeded(`send deadline passed after ${attempts} attempts`, details, { cause: lastError })
      throw thrown
    }
    return attempts
  }

  /**
   * Moves the context one epoch forward: every channel of the older epoch closes here, and every
   * peer sharing the context is told (with retries) so it closes its side too.
   */
  async bumpEpoch(contextId: string, retryPolicy?: RetryPolicy): Promise<{ epoch: number; notified: string[]; unreachable: string[] }> {
    if (!id.safeParse(contextId).success) throw new InvalidInput('invalid contextId', { contextId: String(contextId) })
    if (retryPolicy !== undefined && !reconnectPolicySchema.safeParse(retryPolicy).success) throw invalidInput('retry policy', reconnectPolicySchema.safeParse(retryPolicy).error?.issues)
    const epoch = this.currentEpoch(contextId) + 1
    const peers = this.moveEpoch(contextId, epoch, undefined)
    this.count('epochBumps')
    const results = await Promise.allSettled(peers.map((peer) => this.notifyEpoch(peer, contextId, epoch, retryPolicy)))
    const notified: string[] = []
    const unreachable: string[] = []
    results.forEach((r, i) => (r.status === 'fulfilled' ? notified : unreachable).push(peers[i]!))
    return { epoch: this.currentEpoch(contextId), notified, unreachable }
  }

  /**
   * Closes channels whose context has moved to a newer epoch or is stale according to the
   * context manager, on both ends, and forgets inbound records past their retention.
   */
  async cleanupStaleChannels(contextManager: ContextManager): Promise<{ closed: string[] }> {
    if (!isObject(contextManager) || typeof contextManager.currentEpoch !== 'function') throw new InvalidInput('invalid context manager: needs currentEpoch(contextId)')
    const closed: string[] = []
    const contexts = new Set<string>([...this.outbound.values()].map((o) => o.channel.contextId))
    for (const rec of this.inbound.values()) if (rec.open) contexts.add(rec.contextId)
    const notifications: Promise<unknown>[] = []
    for (const contextId of contexts) {
      const wanted = contextManager.currentEpoch(contextId)
      if (Number.isInteger(wanted) && wanted > this.currentEpoch(contextId)) {
        for (const o of this.outbound.values()) if (o.channel.contextId === contextId) closed.push(o.channel.id)
        const peers = this.moveEpoch(contextId, wanted, undefined)
        notifications.push(...peers.map((peer) => this.notifyEpoch(peer, contextId, wanted).catch(() => undefined)))
      }
      if (contextManager.isStale?.(contextId) === true) {
        for (const o of [...this.outbound.values()]) {
          if (o.channel.contextId !== contextId) continue
          closed.push(o.channel.id)
          this.sendTo(o.channel.actor, { type: 'STALE' })
        }
        for (const rec of this.inbound.values()) {
          if (rec.contextId !== contextId || !rec.open) continue
          this.closeInbound(rec)
          closed.push(rec.channelId)
          this.fireAndForget(rec.from, { type: 'close', channelId: rec.channelId, reason: 'stale', side: 1 })
        }
      }
    }
    this.sweep(true)
    await Promise.all(notifications)
    return { closed: [...new Set(closed)] }
  }

  pool(): PoolStats {
    const peers: Record<string, number> = {}
    let channels = 0
    for (const [peer, set] of this.poolEntries) {
      peers[peer] = set.size
      channels += set.size
    }
    return { size: this.poolEntries.size, limit: this.options.poolLimit, channels, peers, inbound: this.inbound.size }
  }

  /** The channels peers opened to us: open ones, and closed ones still answering retries. */
  inboundChannels(): InboundChannelView[] {
    return [...this.inbound.values()].map((r) => ({ from: r.from, channelId: r.channelId, contextId: r.contextId, epoch: r.epoch, open: r.open }))
  }

  /** Transport connections to the peer as the network reports them (channels share them). */
  connectionCount(peerId: string): number {
    return this.network.connectionCount(peerId)
  }

  metrics(): TransportMetrics {
    return { counters: Object.fromEntries(this.counters), latency: { send: this.sendLatency.summary() } }
  }

  // ---- guard chain ----------------------------------------------------------------------------

  private async checkCapability(channel: Channel, kind: string, mode: GuardMode): Promise<void> {
    const check = this.options.capabilityCheck
    if (check === undefined) return
    const request: GuardRequest = { peerId: channel.peerId, contextId: channel.contextId, channelId: channel.id, epoch: channel.epoch, kind }
    let allowed: boolean
    try {
      allowed = (await check(request)) === true
    } catch (cause) {
      if (mode === 'best-effort') {
        this.count('guardBypassed')
        return
      }
      this.count('permissionDenied')
      throw new PermissionDenied(`capability check failed for ${kind}`, { ...request }, { cause })
    }
    if (!allowed) {
      this.count('permissionDenied')
      throw new PermissionDenied(`no capability to send ${kind} on ${channel.contextId}`, { ...request })
    }
  }

  /** The budget charge is one synchronous machine step, so the verdict read after it is this send's. */
  private charge(record: Outbound, key: string, bytes: number, mode: GuardMode): void {
    const actor = record.channel.actor
    const before = actor.getSnapshot()
    if (before.status !== 'done') actor.send({ type: 'SEND', key, bytes, at: this.clock.now(), mode })
    const after = actor.getSnapshot()
    const verdict = after.context.lastSend
    if (after.status !== 'done' && verdict?.key === key && verdict.accepted) return
    const details = { channelId: record.channel.id, peerId: record.channel.peerId, state: record.channel.state }
    const budgetSpent = verdict?.key === key ? verdict.accepted === false && verdict.code === 'BUDGET_EXHAUSTED' : after.context.closeReason === 'budget'
    if (budgetSpent) {
      this.count('budgetExhausted')
      throw new BudgetExhausted('the channel has spent its flow budget', details)
    }
    this.count('channelClosedRejections')
    throw this.closedError(record, undefined)
  }

  // ---- sending --------------------------------------------------------------------------------

  private async attemptDelivery(record: Outbound, key: string, frame: Uint8Array, signal: AbortSignal | undefined): Promise<void> {
    const channel = record.channel
    const snapshot = channel.actor.getSnapshot()
    // Draining channels still deliver what they accepted; closed ones deliver nothing more.
    if (snapshot.status === 'done' || (snapshot.value !== 'Open' && snapshot.value !== 'Draining')) throw this.closedError(record, undefined)
    if (record.addresses.length > 0) await this.ensureConnected(record, signal)
    const wait = this.await(waiterKey(channel.peerId, channel.id, key), this.options.ackTimeoutMs, signal, `no ack for ${key}`)
    try {
      await this.network.send(channel.peerId, TRANSPORT_PROTOCOL, frame, signal !== undefined ? { signal } : undefined)
      this.count('framesSent')
    } catch (err) {
      this.drop(waiterKey(channel.peerId, channel.id, key))
      throw err
    }
    await wait
  }

  /** Reconnect with failover: when the peer is not connected, try its addresses in order. */
  private async ensureConnected(record: Outbound, signal: AbortSignal | undefined): Promise<void> {
    const peer = record.channel.peerId
    if (record.addresses.length === 0 || this.network.connectedPeers().includes(peer)) return
    let last: unknown
    for (const [index, address] of record.addresses.entries()) {
      if (index > 0) this.count('failovers')
      try {
        await this.dial(address, peer, signal)
        this.count('reconnects')
        return
      } catch (err) {
        last = err
        if (signal?.aborted) throw err
      }
    }
    throw last
  }

  private async dial(address: string, peer: string, signal?: AbortSignal): Promise<void> {
    const reached = await this.network.connect(address, signal ? { signal } : undefined)
    if (reached !== peer) throw new PeerUnreachable(`${address} belongs to ${reached}, not ${peer}`, { address, peer, reached })
  }

  private async notifyEpoch(peer: string, contextId: string, epoch: number, retryPolicy?: RetryPolicy): Promise<void> {
    const frame = encodeTransportFrame({ type: 'epoch', contextId, epoch })
    await withRetry(
      async (_attempt, signal) => {
        const wait = this.await(waiterKey(peer, 'epoch', contextId), this.options.ackTimeoutMs, signal, `no epoch ack from ${peer}`)
        try {
          await this.network.send(peer, TRANSPORT_PROTOCOL, frame, { signal })
        } catch (err) {
          this.drop(waiterKey(peer, 'epoch', contextId))
          throw err
        }
        const theirs = await wait
        if (theirs > this.currentEpoch(contextId)) this.moveEpoch(contextId, theirs, peer)
      },
      { policy: retryPolicy ?? this.options.sendPolicy, clock: this.clock, random: this.random, isRetryable: retryableSend },
    )
  }

  /** Others sharing the context learn a newer epoch from us too; it spreads like a rumour. */
  private spreadEpoch(peers: string[], contextId: string, epoch: number): void {
    for (const peer of peers) this.notifyEpoch(peer, contextId, epoch).catch(() => this.count('controlFramesLost'))
  }

  private fireAndForget(peer: string, frame: TransportFrame): void {
    if (this.stopped) return
    this.network.send(peer, TRANSPORT_PROTOCOL, encodeTransportFrame(frame)).then(this.countSent, this.countLost)
  }

  // ---- actors bound to the effects ------------------------------------------------------------

  private connectorActor(addresses: string[]) {
    return fromCallback<TransportEvent, ConnectorInput>(({ input, sendBack }) => {
      const abort = new AbortController()
      const record = this.outbound.get(input.channelId)
      const attempt = async () => {
        const address = addresses[input.addressIndex]
        if (address !== undefined && !this.network.connectedPeers().includes(input.peerId)) {
          if (input.addressIndex > 0) this.count('failovers')
          await this.dial(address, input.peerId, abort.signal)
        }
        const key = waiterKey(input.peerId, 'open', input.channelId)
        const wait = this.await(key, this.options.handshakeTimeoutMs, abort.signal, `no answer to open from ${input.peerId}`)
        if (record !== undefined) record.announced = true
        try {
          await this.network.send(input.peerId, TRANSPORT_PROTOCOL, encodeTransportFrame({ type: 'open', channelId: input.channelId, contextId: input.contextId, epoch: input.epoch }), { signal: abort.signal })
        } catch (err) {
          this.drop(key)
          throw err
        }
        await wait
      }
      attempt().then(
        () => {
          if (!abort.signal.aborted) sendBack({ type: 'CONNECTED' })
        },
        (err: unknown) => {
          if (abort.signal.aborted) return
          this.count('connectFailures')
          sendBack({ type: 'CONNECT_FAILED', error: errorInfo(err, 'NETWORK'), retryable: retryableSend(err) })
        },
      )
      return () => abort.abort(new Cancelled('connect attempt stopped'))
    })
  }

  private backoffTimerActor() {
    return fromCallback<TransportEvent, BackoffTimerInput>(({ input, sendBack }) => {
      const handle = this.clock.setTimeout(() => sendBack({ type: 'RETRY' }), backoffDelay(input.attempt, input.policy, this.random.float()))
      return () => this.clock.clearTimeout(handle)
    })
  }

  private drainTimerActor() {
    return fromCallback<TransportEvent, DrainTimerInput>(({ input, sendBack }) => {
      const handle = this.clock.setTimeout(() => sendBack({ type: 'DRAIN_TIMEOUT' }), input.ms)
      return () => this.clock.clearTimeout(handle)
    })
  }

  // ---- incoming -------------------------------------------------------------------------------

  private onFrame(incoming: IncomingFrame): void {
    if (this.stopped) return
    let frame: TransportFrame
    try {
      frame = decodeTransportFrame(incoming.bytes)
    } catch {
      this.count('malformedFrames')
      return
    }
    this.count('framesReceived')
    this.sweep(false)
    const from = incoming.from
    switch (frame.type) {
      case 'open':
        return this.onOpen(from, frame)
      case 'opened':
        return this.resolveWaiter(waiterKey(from, 'open', frame.channelId), 0)
      case 'reject':
        return this.rejectWaiter(waiterKey(from, 'open', frame.channelId), remoteError(frame.code, frame.message, { from, channelId: frame.channelId }))
      case 'data':
        return this.onData(from, frame)
      case 'ack':
        return this.resolveWaiter(waiterKey(from, frame.channelId, frame.key), 0)
      case 'nack':
        return this.onNack(from, frame)
      case 'close':
        return this.onClose(from, frame)
      case 'epoch':
        return this.onEpoch(from, frame)
      case 'epoch-ack':
        return this.resolveWaiter(waiterKey(from, 'epoch', frame.contextId), frame.epoch)
    }
  }

  private onOpen(from: string, frame: Extract<TransportFrame, { type: 'open' }>): void {
    const reply = (f: TransportFrame) => this.fireAndForget(from, f)
    const current = this.currentEpoch(frame.contextId)
    if (frame.epoch < current) {
      this.count('epochRegressions')
      return reply({ type: 'reject', channelId: frame.channelId, code: 'EPOCH_REGRESSION', message: `epoch ${frame.epoch} of ${frame.contextId} is older than ${current}` })
    }
    if (frame.epoch > current) this.spreadEpoch(this.moveEpoch(frame.contextId, frame.epoch, from), frame.contextId, frame.epoch)
    const key = waiterKey(from, frame.channelId)
    const existing = this.inbound.get(key)
    if (existing !== undefined) {
      // A repeated open (its answer was lost) gets the same answer again.
      if (existing.open) return reply({ type: 'opened', channelId: frame.channelId })
      this.count('channelClosedRejections')
      return reply({ type: 'reject', channelId: frame.channelId, code: 'CHANNEL_CLOSED', message: 'channel already closed' })
    }
    let fromPeer = 0
    for (const rec of this.inbound.values()) if (rec.from === from && rec.open) fromPeer++
    if (fromPeer >= this.options.maxInboundChannelsPerPeer) {
      this.count('limitExceeded')
      return reply({ type: 'reject', channelId: frame.channelId, code: 'LIMIT_EXCEEDED', message: `${from} holds ${fromPeer} channels here` })
    }
    this.inbound.set(key, { from, channelId: frame.channelId, contextId: frame.contextId, epoch: frame.epoch, open: true, closedAt: 0, delivered: new Map() })
    reply({ type: 'opened', channelId: frame.channelId })
  }

  private onData(from: string, frame: Extract<TransportFrame, { type: 'data' }>): void {
    const rec = this.inbound.get(waiterKey(from, frame.channelId))
    // Duplicates first: a retry of something already delivered is acknowledged, whatever
    // happened to the channel since, so the sender does not report a delivered message as failed.
    if (rec?.delivered.has(frame.key)) {
      this.count('duplicatesSuppressed')
      return this.fireAndForget(from, { type: 'ack', channelId: frame.channelId, key: frame.key })
    }
    if (rec === undefined) {
      this.count('channelClosedRejections')
      return this.nack(from, frame, 'CHANNEL_CLOSED', 'unknown channel')
    }
    const current = this.currentEpoch(rec.contextId)
    if (frame.epoch < current) {
      this.count('epochRegressions')
      return this.nack(from, frame, 'EPOCH_REGRESSION', `epoch ${frame.epoch} of ${rec.contextId} is older than ${current}`)
    }
    if (!rec.open) {
      this.count('channelClosedRejections')
      return this.nack(from, frame, 'CHANNEL_CLOSED', 'channel closed')
    }
    let payload: unknown
    try {
      payload = packr.unpack(frame.payload)
    } catch {
      this.count('malformedFrames')
      return this.nack(from, frame, 'INVALID_INPUT', 'payload is not valid MessagePack')
    }
    const now = this.clock.now()
    rec.delivered.set(frame.key, now)
    this.trimDelivered(rec, now)
    this.count('messagesDelivered')
    try {
      this.messageSubject.next({ from, channelId: frame.channelId, contextId: rec.contextId, epoch: frame.epoch, kind: frame.kind, key: frame.key, payload })
    } catch {
      // the application's handler failed; the message was still delivered to it
      this.count('handlerErrors')
    }
    this.fireAndForget(from, { type: 'ack', channelId: frame.channelId, key: frame.key })
  }

  private nack(from: string, frame: { channelId: string; key: string }, code: string, message: string): void {
    this.fireAndForget(from, { type: 'nack', channelId: frame.channelId, key: frame.key, code, message })
  }

  private onNack(from: string, frame: Extract<TransportFrame, { type: 'nack' }>): void {
    const record = this.outbound.get(frame.channelId)
    // The peer no longer accepts this channel: nothing sent on it can succeed any more.
    if (record !== undefined && record.channel.peerId === from && (frame.code === 'CHANNEL_CLOSED' || frame.code === 'EPOCH_REGRESSION')) {
      this.sendTo(record.channel.actor, { type: 'REMOTE_CLOSED' })
    }
    this.rejectWaiter(waiterKey(from, frame.channelId, frame.key), remoteError(frame.code, frame.message, { from, channelId: frame.channelId, key: frame.key }))
  }

  private onClose(from: string, frame: Extract<TransportFrame, { type: 'close' }>): void {
    if (frame.side === 0) {
      const rec = this.inbound.get(waiterKey(from, frame.channelId))
      if (rec !== undefined && rec.open) this.closeInbound(rec)
      return
    }
    const record = this.outbound.get(frame.channelId)
    if (record !== undefined && record.channel.peerId === from) this.sendTo(record.channel.actor, { type: 'REMOTE_CLOSED' })
  }

  private onEpoch(from: string, frame: Extract<TransportFrame, { type: 'epoch' }>): void {
    const current = this.currentEpoch(frame.contextId)
    if (frame.epoch > current) {
      this.spreadEpoch(this.moveEpoch(frame.contextId, frame.epoch, from), frame.contextId, frame.epoch)
    } else if (frame.epoch < current) {
      this.count('epochRegressions')
    }
    this.fireAndForget(from, { type: 'epoch-ack', contextId: frame.contextId, epoch: this.currentEpoch(frame.contextId) })
  }

  // ---- epochs ---------------------------------------------------------------------------------

  /**
   * Moves a context's epoch forward (never back) and closes every channel of an older epoch on
   * this side. Returns the peers (other than `origin`) that share the context and must be told.
   */
  private moveEpoch(contextId: string, epoch: number, origin: string | undefined): string[] {
    if (epoch <= this.currentEpoch(contextId)) return []
    this.epochs.set(contextId, epoch)
    const peers = new Set<string>()
    for (const o of this.outbound.values()) {
      if (o.channel.contextId !== contextId) continue
      peers.add(o.channel.peerId)
      if (o.channel.epoch < epoch) this.sendTo(o.channel.actor, { type: 'EPOCH_BUMP', epoch })
    }
    for (const rec of this.inbound.values()) {
      if (rec.contextId !== contextId) continue
      if (rec.open) peers.add(rec.from)
      if (rec.epoch < epoch && rec.open) this.closeInbound(rec)
    }
    if (origin !== undefined) peers.delete(origin)
    return [...peers].sort()
  }

  // ---- bookkeeping ----------------------------------------------------------------------------

  private reserve(peerId: string, channelId: string): void {
    const entry = this.poolEntries.get(peerId)
    if (entry !== undefined) {
      entry.add(channelId)
      return
    }
    if (this.poolEntries.size >= this.options.poolLimit) {
      this.count('limitExceeded')
      throw new LimitExceeded(`connection pool is full (${this.options.poolLimit} peers)`, { peerId, limit: this.options.poolLimit })
    }
    this.poolEntries.set(peerId, new Set([channelId]))
  }

  private releaseSlot(peerId: string, channelId: string): void {
    const entry = this.poolEntries.get(peerId)
    if (entry === undefined) return
    entry.delete(channelId)
    if (entry.size === 0) this.poolEntries.delete(peerId)
  }

  /** Runs once per channel when its machine reaches Closed or Failed. */
  private finalize(record: Outbound, output: TransportOutput): void {
    const channel = record.channel
    if (this.outbound.get(channel.id) !== record) return
    this.outbound.delete(channel.id)
    this.releaseSlot(channel.peerId, channel.id)
    this.count(output.state === 'Failed' ? 'channelsFailed' : 'channelsClosed')
    const error = this.closedError(record, output)
    const prefix = waiterKey(channel.peerId, channel.id, '')
    for (const [key, waiter] of this.waiters) if (key.startsWith(prefix)) this.settle(key, waiter, error)
    // The peer hears about every close it cannot infer: not the ones it caused (remote) and not
    // epoch moves (it got or gets the epoch frame).
    if (record.announced && output.closeReason !== 'remote' && output.closeReason !== 'epoch') {
      this.fireAndForget(channel.peerId, { type: 'close', channelId: channel.id, reason: output.closeReason ?? output.error?.code ?? 'failed', side: 0 })
    }
  }

  private closedError(record: Outbound, output: TransportOutput | undefined): AuraError {
    const context = record.channel.actor.getSnapshot().context
    const reason = output?.closeReason ?? context.closeReason
    const error = output?.error ?? context.error
    const details = { channelId: record.channel.id, peerId: record.channel.peerId, reason, ...(error ? { error: error.code } : {}) }
    if (reason === 'budget') return new BudgetExhausted('the channel has spent its flow budget', details)
    if (error !== null && reason === null) {
      if (error.cause instanceof AuraError) return error.cause
      return remoteError(error.code, error.message, details)
    }
    return new ChannelClosed(`channel ${reason ?? 'closed'}`, details)
  }

  private closeInbound(rec: Inbound): void {
    rec.open = false
    rec.closedAt = this.clock.now()
  }

  /** Forget delivered keys past the dedup window (and the oldest ones past the size bound). */
  private trimDelivered(rec: Inbound, now: number): void {
    const horizon = now - this.options.dedupWindow.ttlMs
    for (const [key, at] of rec.delivered) {
      if (at > horizon && rec.delivered.size <= this.options.dedupWindow.maxEntries) break
      if (at > horizon) this.count('dedupEvicted')
      rec.delivered.delete(key)
    }
  }

  /** Drops closed inbound records once no retry can still reach them. */
  private sweep(force: boolean): void {
    const now = this.clock.now()
    const ttl = this.options.dedupWindow.ttlMs
    if (!force && now - this.lastSweep < ttl / 2) return
    this.lastSweep = now
    for (const [key, rec] of this.inbound) {
      if (!rec.open && now - rec.closedAt >= ttl) this.inbound.delete(key)
      else this.trimDelivered(rec, now)
    }
  }

  private await(key: string, timeoutMs: number, signal: AbortSignal | undefined, what: string): Promise<number> {
    this.drop(key)
    let waiter!: Waiter
    const promise = new Promise<number>((resolve, reject) => {
      waiter = { resolve, reject, timer: undefined }
    })
    waiter.timer = this.clock.setTimeout(() => {
      if (this.waiters.get(key) === waiter) this.settle(key, waiter, new NetworkError(what, { timeoutMs }))
    }, timeoutMs)
    if (signal !== undefined) {
      const onAbort = () => {
        if (this.waiters.get(key) === waiter) this.settle(key, waiter, new Cancelled(what))
      }
      waiter.signal = signal
      waiter.onAbort = onAbort
      signal.addEventListener('abort', onAbort, { once: true })
    }
    this.waiters.set(key, waiter)
    if (signal?.aborted) waiter.onAbort!()
    // A waiter may be settled with nobody awaiting it (its send failed first); that is not an
    // unhandled rejection. Awaiting it still throws.
    promise.catch(ignore)
    return promise
  }

  /** Removes a waiter nobody will wait for any more (its earlier attempt gave up). */
  private drop(key: string): void {
    const waiter = this.waiters.get(key)
    if (waiter !== undefined) this.settle(key, waiter, new Cancelled('superseded'))
  }

  private release(key: string, waiter: Waiter): void {
    this.waiters.delete(key)
    this.clock.clearTimeout(waiter.timer)
    if (waiter.onAbort !== undefined) waiter.signal?.removeEventListener('abort', waiter.onAbort)
  }

  private settle(key: string, waiter: Waiter, error: unknown): void {
    this.release(key, waiter)
    waiter.reject(error)
  }

  private resolveWaiter(key: string, value: number): void {
    const waiter = this.waiters.get(key)
    if (waiter === undefined) return
    this.release(key, waiter)
    waiter.resolve(value)
  }

  private rejectWaiter(key: string, error: unknown): void {
    const waiter = this.waiters.get(key)
    if (waiter !== undefined) this.settle(key, waiter, error)
  }

  private sendTo(actor: Actor<typeof transportMachine>, event: TransportEvent): void {
    if (actor.getSnapshot().status === 'active') actor.send(event)
  }

  private count(name: string, by = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by)
  }

  private countError(error: unknown): void {
    this.count(`errors.${isAuraError(error) ? error.code : 'UNKNOWN'}`)
  }
}
