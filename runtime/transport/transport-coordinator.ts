// Transport coordination (pattern 5): logical channels per (peer, context), multiplexed on the
// router's 'transport' family and therefore on one pooled connection per peer. The messages and
// their payloads are in transport-wire.ts; the router correlates requests with their answers
// (with a timeout and an AbortSignal per attempt), so this file keeps no waiters of its own, and
// every message reaches events$ and metrics() as the router reports them (wire.out.data, ...),
// with this coordinator's counters beside them as `transport.<name>`.
//
// One channel = one transport machine actor (machines/transport.ts) for its lifecycle (connect
// with failover and backoff, open, drain, close, epochs, a spent budget) plus plain per-message
// accounting (flow-budget.ts): the machine hears of a message only when it changes the lifecycle.
//
// Exactly-once as seen by the application: every data message carries an idempotency key; the
// receiver (inbound-channels.ts) remembers delivered keys per channel for `dedupWindow.ttlMs` and
// acks duplicates without delivering them. The sender stops retrying before that window ends (its
// retry deadline is capped at ttlMs), so a retry never outlives the receiver's memory of the
// original. A failed send may or may not have been delivered (its ack may be what was lost); an
// acknowledged one was delivered exactly once.
//
// Pool (connection-pool.ts): one slot per peer, held while the peer has a live channel from us. A
// restarted peer has forgotten its channels and their delivered keys, so it refuses messages on
// them with CHANNEL_CLOSED (rather than risk a second delivery) and the sender opens a new
// channel. Open inbound channels are bounded per peer (maxInboundChannelsPerPeer); closed ones
// are forgotten after the dedup window.
import { Subject, type Observable } from 'rxjs'
import { createActor, fromCallback } from 'xstate'
import { z } from 'zod'
import {
  AttemptBudgetExhausted,
  AuraError,
  BudgetExhausted,
  Cancelled,
  ChannelClosed,
  ConfigInvalid,
  DeadlineExceeded,
  ERROR_CODES,
  EpochRegression,
  InvalidInput,
  LimitExceeded,
  MalformedFrame,
  PermissionDenied,
  PeerUnreachable,
  isAuraError,
  invalidInput,
  type AuraErrorCode,
} from '../../effects/errors.js'
import type { Network } from '../../effects/network/index.js'
import type { Random } from '../../effects/random/index.js'
import type { Clock } from '../../effects/time/index.js'
import { backoffDelay, errorInfo } from '../../machines/kernel.js'
import {
  reconnectPolicySchema,
  transportMachine,
  type BackoffTimerInput,
  type ConnectorInput,
  type DrainTimerInput,
  type ReconnectPolicy,
  type TransportEvent,
  type TransportOutput,
} from '../../machines/transport.js'
import type { EventBus } from '../core/events.js'
import { LatencyWindow, type LatencySummary } from '../core/metrics.js'
import type { InboundMessage, Router } from '../core/router.js'
import { isTransient, withRetry, type RetryPolicy } from '../timeouts/with-retry.js'
import { Channel, type ChannelOutcome } from './channel.js'
import { ConnectionPool, type PoolStats } from './connection-pool.js'
import { ChannelTraffic, FlowMeter, flowBudgetSchema, type GuardMode } from './flow-budget.js'
import { InboundChannels, type InboundChannelView } from './inbound-channels.js'
import {
  TRANSPORT_FAMILY,
  bodyCodec,
  epochSchema,
  parseTransportPayload,
  transportIdSchema,
  type TransportKind,
  type TransportPayload,
} from './transport-wire.js'

export { Channel, type ChannelOutcome } from './channel.js'
export type { PoolStats } from './connection-pool.js'
export type { InboundChannelView } from './inbound-channels.js'

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

export interface TransportMetrics {
  counters: Record<string, number>
  latency: { send: LatencySummary }
}

const defaultReconnect: ReconnectPolicy = { maxAttempts: 3, initialDelayMs: 100, maxDelayMs: 2_000, multiplier: 2, jitter: 'equal' }
const defaultSendPolicy: RetryPolicy = { maxAttempts: 5, initialDelayMs: 50, maxDelayMs: 1_000, multiplier: 2, jitter: 'equal' }

const isObject = (value: unknown) => typeof value === 'object' && value !== null
const hasMethods = (value: unknown, ...names: string[]) => isObject(value) && names.every((n) => typeof (value as Record<string, unknown>)[n] === 'function')

export const transportOptionsSchema = z
  .object({
    peerId: z.string().min(1),
    router: z.custom<Router>((r) => hasMethods(r, 'request', 'send', 'register'), 'expected a Router'),
    bus: z.custom<EventBus>((b) => hasMethods(b, 'emit'), 'expected an EventBus'),
    /** dials failover addresses and reports connections; messages go through the router */
    network: z.custom<Network>((n) => hasMethods(n, 'connect', 'connectedPeers', 'connectionCount'), 'expected a Network'),
    clock: z.custom<Clock>((c) => hasMethods(c, 'now', 'setTimeout', 'clearTimeout'), 'expected a Clock'),
    random: z.custom<Random>((r) => hasMethods(r, 'id', 'float'), 'expected a Random'),
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

export type TransportCoordinatorOptions = z.input<typeof transportOptionsSchema>

export const channelConfigSchema = z
  .object({
    /** dial addresses of the peer in failover order; without any, an existing connection (or the peer store) is used */
    addresses: z.array(z.string().min(1)).optional(),
    /** defaults to the context's current epoch here */
    epoch: epochSchema.optional(),
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

const establishArgsSchema = z.object({ peerId: z.string().min(1), contextId: transportIdSchema })

interface Outbound {
  channel: Channel
  addresses: string[]
  /** the open request has been sent at least once, so the peer may know this channel */
  announced: boolean
  /** the flow budget's window, if the channel has a budget */
  meter: FlowMeter | undefined
}

type DataPayload = TransportPayload<'data'>

const knownCode = (code: string): AuraErrorCode => (Object.hasOwn(ERROR_CODES, code) ? (code as AuraErrorCode) : 'NETWORK')

// ---------------------------------------------------------------------------------------------

export class TransportCoordinator {
  readonly peerId: string
  readonly messages$: Observable<ChannelMessage>

  private readonly router: Router
  private readonly bus: EventBus
  private readonly network: Network
  private readonly clock: Clock
  private readonly random: Random
  private readonly options: z.output<typeof transportOptionsSchema>
  private readonly messageSubject = new Subject<ChannelMessage>()
  private readonly epochs = new Map<string, number>()
  private readonly outbound = new Map<string, Outbound>()
  private readonly inbound: InboundChannels
  private readonly slots: ConnectionPool
  private readonly counters = new Map<string, number>()
  /** counter name → its name on the bus (`transport.<name>`), built once */
  private readonly busNames = new Map<string, string>()
  private readonly sendLatency = new LatencyWindow()
  /** generated idempotency keys: a random prefix per coordinator and a counter (no draw per message) */
  private readonly keyPrefix: string
  private keySeq = 0
  private readonly ready: Promise<void>
  private stopped = false
  private stopping: Promise<void> | undefined
  private readonly countLost = () => this.count('controlFramesLost')

  constructor(options: TransportCoordinatorOptions) {
    const parsed = transportOptionsSchema.safeParse(options)
    if (!parsed.success) throw new ConfigInvalid('invalid TransportCoordinator options', { issues: parsed.error.issues })
    this.options = parsed.data
    this.peerId = parsed.data.peerId
    this.router = parsed.data.router
    this.bus = parsed.data.bus
    this.network = parsed.data.network
    this.clock = parsed.data.clock
    this.random = parsed.data.random
    this.messages$ = this.messageSubject.asObservable()
    this.keyPrefix = this.random.id(8)
    this.inbound = new InboundChannels(this.clock, parsed.data.dedupWindow, (name) => this.count(name))
    this.slots = new ConnectionPool(parsed.data.poolLimit)
    this.ready = this.router.register(TRANSPORT_FAMILY, {
      open: (m) => this.onOpen(m),
      data: (m) => this.onData(m),
      close: (m) => this.onClose(m),
      epoch: (m) => this.onEpoch(m),
    })
    this.ready.catch(() => undefined)
  }

  /** Resolves once incoming messages are handled; establishChannel waits for it too. */
  start(): Promise<void> {
    return this.ready
  }

  /** Closes every channel at once (in-flight sends fail with ChannelClosed) and refuses messages from then on. */
  stop(): Promise<void> {
    this.stopping ??= this.stopNow()
    return this.stopping
  }

  private async stopNow(): Promise<void> {
    // Channels close first, while close messages can still go out, so peers close their side too.
    const closing = [...this.outbound.values()].map((o) => {
      this.signal(o, { type: 'STALE' })
      return o.channel.closed
    })
    await Promise.allSettled(closing)
    this.stopped = true
    // epoch notifications still waiting give up (and ones in a backoff do when they wake)
    this.router.abortRequests(TRANSPORT_FAMILY, () => true, new ChannelClosed('transport stopped'))
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
    try {
      this.slots.reserve(peerId, channelId)
    } catch (error) {
      this.count('limitExceeded')
      throw error
    }

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
        reconnect: config.data.reconnect ?? this.options.reconnect,
        drainTimeoutMs: config.data.drainTimeoutMs ?? this.options.drainTimeoutMs,
      },
    })
    let settleClosed!: (outcome: ChannelOutcome) => void
    const closed = new Promise<ChannelOutcome>((resolve) => (settleClosed = resolve))
    const traffic = new ChannelTraffic()
    const channel = new Channel(channelId, peerId, contextId, actor, traffic, closed)
    const budget = config.data.budget
    const record: Outbound = { channel, addresses, announced: false, meter: budget !== undefined ? new FlowMeter(budget) : undefined }
    this.outbound.set(channelId, record)

    const opened = new Promise<void>((resolve, reject) => {
      actor.subscribe({
        next: (snapshot) => {
          if (snapshot.value === 'Open') resolve()
          if (snapshot.status === 'done') {
            const output = snapshot.output!
            settleClosed(this.finalize(record, output))
            reject(this.closedError(record, output))
          }
        },
        error: (err) => {
          this.outbound.delete(channelId)
          this.slots.release(peerId, channelId)
          settleClosed({ state: 'Failed', closeReason: null, error: errorInfo(err), sent: traffic.sent, acked: traffic.acked, failed: traffic.failed })
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
  async closeChannel(channel: Channel): Promise<ChannelOutcome> {
    if (!(channel instanceof Channel)) throw new ChannelClosed('not a channel of this coordinator')
    const record = this.outbound.get(channel.id)
    if (record?.channel === channel) this.signal(record, { type: 'CLOSE' })
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
    if (retryPolicy !== undefined && !reconnectPolicySchema.safeParse(retryPolicy).success)
      throw invalidInput('retry policy', reconnectPolicySchema.safeParse(retryPolicy).error?.issues)
    if (options.deadlineAt !== undefined && !Number.isFinite(options.deadlineAt))
      throw new InvalidInput('deadlineAt must be a finite time', { deadlineAt: options.deadlineAt })
    const record = channel instanceof Channel ? this.outbound.get(channel.id) : undefined
    if (record === undefined || record.channel !== channel) {
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

    const body = bodyCodec.pack(payload) as DataPayload['body']
    const key = parsed.data.key ?? `${this.keyPrefix}.${(this.keySeq++).toString(36)}`
    this.admit(record, body.byteLength, mode)

    const data: DataPayload = { channelId: channel.id, key, epoch: channel.epoch, kind, body }
    const ttlCap = started + this.options.dedupWindow.ttlMs
    const deadlineAt = Math.min(options.deadlineAt ?? ttlCap, ttlCap)
    let attempts: number
    try {
      attempts = await this.deliver(record, data, retryPolicy ?? this.options.sendPolicy, deadlineAt, options.signal)
    } catch (error) {
      this.settleSend(record, false)
      this.count('sendFailures')
      this.countError(error)
      throw error
    }
    this.settleSend(record, true)
    this.count('messagesAcked')
    const ms = this.clock.now() - started
    this.sendLatency.record(ms)
    this.bus.emit({ type: 'latency', name: 'transport.send', ms })
    return { key, attempts }
  }

  /** Sends the message until acknowledged, under the retry policy (withRetry); returns the attempts made. */
  private async deliver(record: Outbound, data: DataPayload, policy: RetryPolicy, deadlineAt: number, signal: AbortSignal | undefined): Promise<number> {
    const key = data.key
    if (signal?.aborted) throw new Cancelled('send cancelled', { key })
    if (this.clock.now() >= deadlineAt) throw new DeadlineExceeded('send deadline already passed', { key, deadlineAt })
    let attempts = 0
    let lastError: unknown
    try {
      await withRetry(
        (attempt, attemptSignal) => {
          attempts = attempt
          if (attempt > 1) this.count('retries')
          return this.attemptDelivery(record, data, attemptSignal).catch((err: unknown) => {
            lastError = err
            throw err
          })
        },
        {
          policy,
          deadlineAt,
          isRetryable: isTransient,
          clock: this.clock,
          random: this.random,
          ...(signal !== undefined ? { signal } : {}),
          // an attempt is one router request, over within ackTimeoutMs; a reconnect first has no such bound
          attemptTimeoutMs: record.addresses.length > 0 ? Number.POSITIVE_INFINITY : this.options.ackTimeoutMs,
        },
      )
    } catch (thrown) {
      if (thrown === lastError) throw thrown // a permanent failure: the attempt's own error
      const details = { key, attempts, last: errorInfo(lastError) }
      if (isAuraError(thrown) && thrown.code === 'ATTEMPT_BUDGET_EXHAUSTED')
        throw new AttemptBudgetExhausted(`gave up after ${attempts} attempts`, details, { cause: lastError })
      if (isAuraError(thrown) && thrown.code === 'DEADLINE_EXCEEDED')
        throw new DeadlineExceeded(`send deadline passed after ${attempts} attempts`, details, { cause: lastError })
      throw thrown
    }
    return attempts
  }

  /**
   * Moves the context one epoch forward: every channel of the older epoch closes here, and every
   * peer sharing the context is told (with retries) so it closes its side too.
   */
  async bumpEpoch(contextId: string, retryPolicy?: RetryPolicy): Promise<{ epoch: number; notified: string[]; unreachable: string[] }> {
    if (!transportIdSchema.safeParse(contextId).success) throw new InvalidInput('invalid contextId', { contextId: String(contextId) })
    if (retryPolicy !== undefined && !reconnectPolicySchema.safeParse(retryPolicy).success)
      throw invalidInput('retry policy', reconnectPolicySchema.safeParse(retryPolicy).error?.issues)
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
    if (!isObject(contextManager) || typeof contextManager.currentEpoch !== 'function')
      throw new InvalidInput('invalid context manager: needs currentEpoch(contextId)')
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
          this.signal(o, { type: 'STALE' })
        }
        for (const rec of this.inbound.values()) {
          if (rec.contextId !== contextId || !rec.open) continue
          this.inbound.close(rec)
          closed.push(rec.channelId)
          this.sendClose(rec.from, { channelId: rec.channelId, reason: 'stale', side: 1 })
        }
      }
    }
    this.inbound.sweep(true)
    await Promise.all(notifications)
    return { closed: [...new Set(closed)] }
  }

  pool(): PoolStats {
    return this.slots.stats(this.inbound.size)
  }

  /** The channels peers opened to us: open ones, and closed ones still answering retries. */
  inboundChannels(): InboundChannelView[] {
    return this.inbound.views()
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

  /**
   * The budget charge: the channel must be open and the message must fit its flow budget. Plain
   * code, synchronous; the machine hears only of a fail-closed overrun (BUDGET_SPENT), which
   * drains and closes the channel. A best-effort overrun is shed alone.
   */
  private admit(record: Outbound, bytes: number, mode: GuardMode): void {
    const channel = record.channel
    const snapshot = channel.actor.getSnapshot()
    if (snapshot.status === 'done' || snapshot.value !== 'Open') {
      channel.traffic.rejected++
      // A channel closed for its budget keeps answering BudgetExhausted: the sender learns why.
      if (snapshot.context.closeReason === 'budget') {
        this.count('budgetExhausted')
        throw new BudgetExhausted('the channel has spent its flow budget', { channelId: channel.id, peerId: channel.peerId, state: channel.state })
      }
      this.count('channelClosedRejections')
      throw this.closedError(record, undefined)
    }
    if (record.meter !== undefined && !record.meter.charge(bytes, this.clock.now())) {
      channel.traffic.rejected++
      this.count('budgetExhausted')
      if (mode === 'fail-closed') this.signal(record, { type: 'BUDGET_SPENT' })
      throw new BudgetExhausted('the channel has spent its flow budget', { channelId: channel.id, peerId: channel.peerId, state: channel.state })
    }
    channel.traffic.started()
  }

  // ---- sending --------------------------------------------------------------------------------

  /** One attempt: the data message as a router request, answered by the ack (or a refusal) within ackTimeoutMs. */
  private attemptDelivery(record: Outbound, data: DataPayload, signal: AbortSignal | undefined): Promise<unknown> {
    const channel = record.channel
    const snapshot = channel.actor.getSnapshot()
    // Draining channels still deliver what they accepted; closed ones deliver nothing more.
    if (snapshot.status === 'done' || (snapshot.value !== 'Open' && snapshot.value !== 'Draining')) return Promise.reject(this.closedError(record, undefined))
    const ask = () =>
      this.router
        .request(channel.peerId, TRANSPORT_FAMILY, { kind: 'data', payload: data }, { timeoutMs: this.options.ackTimeoutMs, signal })
        .catch((err: unknown) => {
          // The peer no longer accepts this channel: nothing sent on it can succeed any more.
          if (isAuraError(err) && (err.code === 'CHANNEL_CLOSED' || err.code === 'EPOCH_REGRESSION') && err.details.remote === channel.peerId) {
            this.signal(record, { type: 'REMOTE_CLOSED' })
          }
          throw err
        })
    // without dial addresses there is nothing to reconnect: no extra step on the common path
    return record.addresses.length > 0 ? this.ensureConnected(record, signal).then(ask) : ask()
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
    await withRetry(
      async (_attempt, signal) => {
        if (this.stopped) throw new ChannelClosed('transport stopped')
        const answer = await this.router.request(
          peer,
          TRANSPORT_FAMILY,
          { kind: 'epoch', payload: { contextId, epoch } },
          { timeoutMs: this.options.ackTimeoutMs, signal },
        )
        const theirs = epochSchema.safeParse(answer)
        if (!theirs.success) {
          this.count('malformedFrames')
          throw new MalformedFrame('invalid answer to an epoch message', { peer, issues: theirs.error.issues })
        }
        if (theirs.data > this.currentEpoch(contextId)) this.moveEpoch(contextId, theirs.data, peer)
      },
      { policy: retryPolicy ?? this.options.sendPolicy, clock: this.clock, random: this.random, isRetryable: isTransient },
    )
  }

  /** Others sharing the context learn a newer epoch from us too; it spreads like a rumour. */
  private spreadEpoch(peers: string[], contextId: string, epoch: number): void {
    for (const peer of peers) this.notifyEpoch(peer, contextId, epoch).catch(this.countLost)
  }

  private sendClose(peer: string, payload: TransportPayload<'close'>): void {
    if (this.stopped) return
    this.router.send(peer, TRANSPORT_FAMILY, { kind: 'close', payload }).catch(this.countLost)
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
        if (record !== undefined) record.announced = true
        const open: TransportPayload<'open'> = { channelId: input.channelId, contextId: input.contextId, epoch: input.epoch }
        await this.router.request(
          input.peerId,
          TRANSPORT_FAMILY,
          { kind: 'open', payload: open },
          { timeoutMs: this.options.handshakeTimeoutMs, signal: abort.signal },
        )
      }
      attempt().then(
        () => {
          if (!abort.signal.aborted) sendBack({ type: 'CONNECTED' })
        },
        (err: unknown) => {
          if (abort.signal.aborted) return
          this.count('connectFailures')
          sendBack({ type: 'CONNECT_FAILED', error: errorInfo(err, 'NETWORK'), retryable: isTransient(err) })
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

  /** The payload of an incoming message, validated; an invalid one is counted and refused. */
  private incoming<K extends TransportKind>(kind: K, payload: unknown): TransportPayload<K> {
    if (this.stopped) throw new ChannelClosed('transport stopped')
    try {
      return parseTransportPayload(kind, payload)
    } catch (error) {
      this.count('malformedFrames')
      throw error
    } finally {
      this.inbound.sweep(false)
    }
  }

  private onOpen({ envelope, from }: InboundMessage): null {
    const open = this.incoming('open', envelope.payload)
    const current = this.currentEpoch(open.contextId)
    if (open.epoch < current) {
      this.count('epochRegressions')
      throw new EpochRegression(`epoch ${open.epoch} of ${open.contextId} is older than ${current}`, { channelId: open.channelId })
    }
    if (open.epoch > current) this.spreadEpoch(this.moveEpoch(open.contextId, open.epoch, from), open.contextId, open.epoch)
    const existing = this.inbound.get(from, open.channelId)
    if (existing !== undefined) {
      // A repeated open (its answer was lost) gets the same answer again.
      if (existing.open) return null
      this.count('channelClosedRejections')
      throw new ChannelClosed('channel already closed', { channelId: open.channelId })
    }
    const held = this.inbound.openFrom(from)
    if (held >= this.options.maxInboundChannelsPerPeer) {
      this.count('limitExceeded')
      throw new LimitExceeded(`${from} holds ${held} channels here`, { channelId: open.channelId, limit: this.options.maxInboundChannelsPerPeer })
    }
    this.inbound.add(from, open.channelId, open.contextId, open.epoch)
    return null
  }

  private onData({ envelope, from }: InboundMessage): null {
    const data = this.incoming('data', envelope.payload)
    const rec = this.inbound.get(from, data.channelId)
    const details = { channelId: data.channelId, key: data.key }
    // Duplicates first: a retry of something already delivered is acknowledged, whatever
    // happened to the channel since, so the sender does not report a delivered message as failed.
    if (rec?.delivered.has(data.key)) {
      this.count('duplicatesSuppressed')
      return null
    }
    if (rec === undefined) {
      this.count('channelClosedRejections')
      throw new ChannelClosed('unknown channel', details)
    }
    const current = this.currentEpoch(rec.contextId)
    if (data.epoch < current) {
      this.count('epochRegressions')
      throw new EpochRegression(`epoch ${data.epoch} of ${rec.contextId} is older than ${current}`, details)
    }
    if (!rec.open) {
      this.count('channelClosedRejections')
      throw new ChannelClosed('channel closed', details)
    }
    let payload: unknown
    try {
      payload = bodyCodec.unpack(data.body)
    } catch {
      this.count('malformedFrames')
      throw new InvalidInput('payload is not valid MessagePack', details)
    }
    this.inbound.delivered(rec, data.key)
    this.count('messagesDelivered')
    try {
      this.messageSubject.next({ from, channelId: data.channelId, contextId: rec.contextId, epoch: data.epoch, kind: data.kind, key: data.key, payload })
    } catch {
      // the application's handler failed; the message was still delivered to it
      this.count('handlerErrors')
    }
    return null
  }

  private onClose({ envelope, from }: InboundMessage): void {
    const close = this.incoming('close', envelope.payload)
    if (close.side === 0) {
      const rec = this.inbound.get(from, close.channelId)
      if (rec !== undefined && rec.open) this.inbound.close(rec)
      return
    }
    const record = this.outbound.get(close.channelId)
    if (record !== undefined && record.channel.peerId === from) this.signal(record, { type: 'REMOTE_CLOSED' })
  }

  /** Answers with this side's epoch of the context afterwards (it may be the newer one). */
  private onEpoch({ envelope, from }: InboundMessage): number {
    const bump = this.incoming('epoch', envelope.payload)
    const current = this.currentEpoch(bump.contextId)
    if (bump.epoch > current) {
      this.spreadEpoch(this.moveEpoch(bump.contextId, bump.epoch, from), bump.contextId, bump.epoch)
    } else if (bump.epoch < current) {
      this.count('epochRegressions')
    }
    return this.currentEpoch(bump.contextId)
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
    for (const o of [...this.outbound.values()]) {
      if (o.channel.contextId !== contextId) continue
      peers.add(o.channel.peerId)
      if (o.channel.epoch < epoch) this.signal(o, { type: 'EPOCH_BUMP', epoch })
    }
    for (const rec of this.inbound.values()) {
      if (rec.contextId !== contextId) continue
      if (rec.open) peers.add(rec.from)
      if (rec.epoch < epoch && rec.open) this.inbound.close(rec)
    }
    if (origin !== undefined) peers.delete(origin)
    return [...peers].sort()
  }

  // ---- bookkeeping ----------------------------------------------------------------------------

  /** Runs once per channel when its machine reaches Closed or Failed; returns how it ended. */
  private finalize(record: Outbound, output: TransportOutput): ChannelOutcome {
    const channel = record.channel
    const { sent, acked, failed } = channel.traffic
    const outcome: ChannelOutcome = { ...output, sent, acked, failed }
    if (this.outbound.get(channel.id) !== record) return outcome
    this.outbound.delete(channel.id)
    this.slots.release(channel.peerId, channel.id)
    this.count(output.state === 'Failed' ? 'channelsFailed' : 'channelsClosed')
    // Sends still waiting for their ack fail with the reason the channel ended (one waiting out a
    // backoff finds the channel closed when it wakes).
    const ended = this.closedError(record, output)
    this.router.abortRequests(
      TRANSPORT_FAMILY,
      (peer, envelope) => peer === channel.peerId && envelope.kind === 'data' && (envelope.payload as DataPayload).channelId === channel.id,
      ended,
    )
    // The peer hears about every close it cannot infer: not the ones it caused (remote) and not
    // epoch moves (it got or gets the epoch message).
    if (record.announced && output.closeReason !== 'remote' && output.closeReason !== 'epoch') {
      this.sendClose(channel.peerId, { channelId: channel.id, reason: output.closeReason ?? output.error?.code ?? 'failed', side: 0 })
    }
    return outcome
  }

  private closedError(record: Outbound, output: TransportOutput | undefined): AuraError {
    const context = record.channel.actor.getSnapshot().context
    const reason = output?.closeReason ?? context.closeReason
    const error = output?.error ?? context.error
    const details = { channelId: record.channel.id, peerId: record.channel.peerId, reason, ...(error ? { error: error.code } : {}) }
    if (reason === 'budget') return new BudgetExhausted('the channel has spent its flow budget', details)
    if (error !== null && reason === null) {
      if (error.cause instanceof AuraError) return error.cause
      return new AuraError(knownCode(error.code), error.message, details)
    }
    return new ChannelClosed(`channel ${reason ?? 'closed'}`, details)
  }

  /** A send in flight ended; a draining channel with nothing in flight any more hears DRAINED. */
  private settleSend(record: Outbound, acked: boolean): void {
    if (record.channel.traffic.settled(acked)) this.drainIfIdle(record)
  }

  /** Sends a lifecycle event to the channel's machine (if it is still live). */
  private signal(record: Outbound, event: TransportEvent): void {
    const actor = record.channel.actor
    if (actor.getSnapshot().status !== 'active') return
    actor.send(event)
    this.drainIfIdle(record)
  }

  private drainIfIdle(record: Outbound): void {
    const actor = record.channel.actor
    if (record.channel.traffic.inflight === 0 && actor.getSnapshot().value === 'Draining') actor.send({ type: 'DRAINED' })
  }

  private count(name: string, by = 1): void {
    this.counters.set(name, (this.counters.get(name) ?? 0) + by)
    let busName = this.busNames.get(name)
    if (busName === undefined) this.busNames.set(name, (busName = `transport.${name}`))
    this.bus.emit({ type: 'count', name: busName, by })
  }

  private countError(error: unknown): void {
    this.count(`errors.${isAuraError(error) ? error.code : 'UNKNOWN'}`)
  }
}
