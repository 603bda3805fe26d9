// A simulated network for many peers in one process. Every delivery goes through the injected
// Clock and every fault decision through the injected Random, so a VirtualClock and a
// SeededRandom replay a run exactly: same seed, same trace.
//
// Faults: loss, duplication, delay in [minDelayMs, maxDelayMs], optional reordering, partitions
// and crashes. Without `reorder`, frames from one peer to another on one protocol arrive in the
// order they were sent (like one libp2p stream): a frame is handed over only after every earlier
// frame of its flow has been handed over or dropped.
import { Subject, type Observable } from 'rxjs'
import { z } from 'zod'
import { Cancelled, ConfigInvalid, FrameTooLarge, InvalidInput, NetworkError, PeerUnreachable, invalidInput } from '../errors.js'
import type { Random } from '../random/index.js'
import type { Clock } from '../time/index.js'
import { DEFAULT_MAX_FRAME_BYTES, type FrameError, type FrameHandler, type Network, type PeerEvent, type SendOptions } from './network.js'

const rate = z.number().min(0).max(1)
const delay = z.number().int().min(0)

const faultSchema = z
  .object({
    dropRate: rate.optional(),
    duplicateRate: rate.optional(),
    minDelayMs: delay.optional(),
    maxDelayMs: delay.optional(),
    reorder: z.boolean().optional(),
  })
  .strict()
  .refine((f) => (f.minDelayMs ?? 0) <= (f.maxDelayMs ?? f.minDelayMs ?? 0), 'minDelayMs must not exceed maxDelayMs')

export type FaultConfig = z.input<typeof faultSchema>
type Faults = Required<FaultConfig>

const frameBytes = z.number().int().positive()
const peerIdSchema = z.string().regex(/^[^/\s]+$/, 'a peer id has no slashes or spaces')
const protocolSchema = z.string().startsWith('/')

export interface SimulatedNetworkHubOptions {
  clock: Clock
  random: Random
  faults?: FaultConfig
  /** default limit for networks created without their own */
  maxFrameBytes?: number
}

export type NetDropReason = 'loss' | 'partition' | 'crashed' | 'stopped' | 'no-handler' | 'oversized'

export interface NetTraceEvent {
  t: number
  type: 'send' | 'deliver' | 'drop' | 'duplicate'
  from: string
  to: string
  protocol: string
  /** frame size */
  bytes: number
  /** why a frame was dropped (drop events only) */
  reason?: NetDropReason
}

interface InFlight {
  from: string
  to: string
  protocol: string
  bytes: Uint8Array
  /** the incarnations of both ends at send time: a crash or stop in between loses the frame */
  fromIncarnation: number
  toIncarnation: number
  ready: boolean
}

const parseFaults = (faults: FaultConfig | undefined): Faults => {
  const parsed = faultSchema.safeParse(faults ?? {})
  if (!parsed.success) throw new ConfigInvalid('invalid network fault config', { issues: parsed.error.issues })
  const minDelayMs = parsed.data.minDelayMs ?? 0
  return {
    dropRate: parsed.data.dropRate ?? 0,
    duplicateRate: parsed.data.duplicateRate ?? 0,
    minDelayMs,
    maxDelayMs: parsed.data.maxDelayMs ?? minDelayMs,
    reorder: parsed.data.reorder ?? false,
  }
}

export class SimulatedNetworkHub {
  private readonly clock: Clock
  private readonly random: Random
  private readonly maxFrameBytes: number
  private faults: Faults
  private readonly networks = new Map<string, SimulatedNetwork>()
  /** group index per peer while partitioned; peers in no listed group share the implicit group -1 */
  private partitionGroups: Map<string, number> | undefined
  /** ordered flows (reorder off): frames waiting for every earlier frame of their flow */
  private readonly flows = new Map<string, InFlight[]>()
  private readonly traceLog: NetTraceEvent[] = []
  private readonly eventSubject = new Subject<NetTraceEvent>()
  readonly events: Observable<NetTraceEvent> = this.eventSubject.asObservable()

  constructor(options: SimulatedNetworkHubOptions) {
    if (options === null || typeof options !== 'object' || options.clock == null || options.random == null) {
      throw new ConfigInvalid('SimulatedNetworkHub needs a clock and a random source')
    }
    const limit = frameBytes.optional().safeParse(options.maxFrameBytes)
    if (!limit.success) throw new ConfigInvalid('invalid maxFrameBytes', { issues: limit.error.issues })
    this.clock = options.clock
    this.random = options.random
    this.maxFrameBytes = limit.data ?? DEFAULT_MAX_FRAME_BYTES
    this.faults = parseFaults(options.faults)
  }

  get trace(): ReadonlyArray<NetTraceEvent> {
    return this.traceLog
  }

  createNetwork(peerId: string, options: { maxFrameBytes?: number } = {}): SimulatedNetwork {
    if (!peerIdSchema.safeParse(peerId).success) throw new InvalidInput(`invalid simulated peer id: ${peerId}`, { peerId })
    if (this.networks.has(peerId)) throw new InvalidInput(`peer ${peerId} already exists in this hub`, { peerId })
    const limit = frameBytes.optional().safeParse(options.maxFrameBytes)
    if (!limit.success) throw new ConfigInvalid('invalid maxFrameBytes', { issues: limit.error.issues })
    const network = new SimulatedNetwork(this, peerId, limit.data ?? this.maxFrameBytes)
    this.networks.set(peerId, network)
    return network
  }

  /** Replaces the whole fault config; fields left out go back to "no fault". */
  setFaults(faults: FaultConfig): void {
    this.faults = parseFaults(faults)
  }

  /** Peers in different groups cannot exchange frames until heal(); unlisted peers form one more group. */
  partition(groups: string[][]): void {
    const parsed = z.array(z.array(z.string().min(1))).safeParse(groups)
    if (!parsed.success) throw invalidInput('partition groups', parsed.error.issues)
    const membership = new Map<string, number>()
    parsed.data.forEach((group, index) => {
      for (const peer of group) {
        if (membership.has(peer)) throw new InvalidInput(`peer ${peer} is in two partition groups`, { peer })
        membership.set(peer, index)
      }
    })
    this.partitionGroups = membership
  }

  heal(): void {
    this.partitionGroups = undefined
  }

  /** The peer's process dies: its frames (sent, in flight, incoming) are lost; others see it leave. */
  crash(peerId: string): void {
    this.mustGet(peerId).goDown('crashed')
  }

  /** Brings a crashed peer back with no connections; its handlers stay registered. */
  restart(peerId: string): void {
    this.mustGet(peerId).comeBack()
  }

  /**
   * A crashed peer's process starts again: a new network for the same peer id replaces the old
   * one, which stays crashed for good (the old process is dead; nothing it sends gets out). The
   * new one starts with no connections and no handlers — the new process registers its own — and
   * in a later incarnation than every frame sent to or from the old one, so those are lost.
   */
  reincarnate(peerId: string, options: { maxFrameBytes?: number } = {}): SimulatedNetwork {
    const old = this.mustGet(peerId)
    if (old.downReason() !== 'crashed') throw new InvalidInput(`peer ${peerId} has not crashed; only a crashed peer can be reincarnated`, { peerId })
    const limit = frameBytes.optional().safeParse(options.maxFrameBytes)
    if (!limit.success) throw new ConfigInvalid('invalid maxFrameBytes', { issues: limit.error.issues })
    const network = new SimulatedNetwork(this, peerId, limit.data ?? old.maxFrameBytes)
    // goDown bumped the old incarnation, so frames of the old life already compare unequal
    network.incarnation = old.incarnation
    this.networks.set(peerId, network)
    return network
  }

  // ---- used by SimulatedNetwork -------------------------------------------------------------

  /** @internal */
  lookup(peerId: string): SimulatedNetwork | undefined {
    return this.networks.get(peerId)
  }

  /** @internal */
  canReach(from: string, to: string): boolean {
    if (this.partitionGroups === undefined) return true
    return (this.partitionGroups.get(from) ?? -1) === (this.partitionGroups.get(to) ?? -1)
  }

  /** @internal schedules one frame (and maybe its duplicate); the caller has checked the sender */
  transmit(sender: SimulatedNetwork, receiver: SimulatedNetwork, protocol: string, original: Uint8Array): void {
    const bytes = original.slice()
    const base = { from: sender.peerId, to: receiver.peerId, protocol, bytes: bytes.byteLength }
    this.record({ ...base, type: 'send' })
    const unreachable = sender.downReason() ?? receiver.downReason() ?? (this.canReach(sender.peerId, receiver.peerId) ? undefined : 'partition')
    if (unreachable !== undefined) {
      this.record({ ...base, type: 'drop', reason: unreachable })
      return
    }
    const faults = this.faults
    if (faults.dropRate > 0 && this.random.float() < faults.dropRate) {
      this.record({ ...base, type: 'drop', reason: 'loss' })
      return
    }
    let copies = 1
    if (faults.duplicateRate > 0 && this.random.float() < faults.duplicateRate) {
      copies = 2
      this.record({ ...base, type: 'duplicate' })
    }
    for (let i = 0; i < copies; i++) {
      const frame: InFlight = {
        from: sender.peerId,
        to: receiver.peerId,
        protocol,
        bytes,
        fromIncarnation: sender.incarnation,
        toIncarnation: receiver.incarnation,
        ready: false,
      }
      const spread = faults.maxDelayMs - faults.minDelayMs
      const wait = faults.minDelayMs + (spread > 0 ? this.random.int(spread + 1) : 0)
      if (faults.reorder) {
        this.clock.setTimeout(() => this.arrive(frame), wait)
      } else {
        const key = `${frame.from}\n${frame.to}\n${protocol}`
        const queue = this.flows.get(key) ?? []
        this.flows.set(key, queue)
        queue.push(frame)
        this.clock.setTimeout(() => {
          frame.ready = true
          this.releaseFlow(key)
        }, wait)
      }
    }
  }

  /** @internal */
  record(event: Omit<NetTraceEvent, 't'>): void {
    const full: NetTraceEvent = { t: this.clock.now(), ...event }
    this.traceLog.push(full)
    this.eventSubject.next(full)
  }

  private releaseFlow(key: string): void {
    const queue = this.flows.get(key)
    if (queue === undefined) return
    while (queue.length > 0 && queue[0]!.ready) this.arrive(queue.shift()!)
    if (queue.length === 0) this.flows.delete(key)
  }

  private arrive(frame: InFlight): void {
    const sender = this.networks.get(frame.from)!
    const receiver = this.networks.get(frame.to)!
    const base = { from: frame.from, to: frame.to, protocol: frame.protocol, bytes: frame.bytes.byteLength }
    let reason: NetDropReason | undefined =
      receiver.downReason() ??
      (sender.incarnation !== frame.fromIncarnation || receiver.incarnation !== frame.toIncarnation ? 'crashed' : undefined) ??
      (this.canReach(frame.from, frame.to) ? undefined : 'partition')
    if (reason === undefined) reason = receiver.receive(frame.from, frame.protocol, frame.bytes)
    this.record(reason === undefined ? { ...base, type: 'deliver' } : { ...base, type: 'drop', reason })
  }

  private mustGet(peerId: string): SimulatedNetwork {
    const network = this.networks.get(peerId)
    if (network === undefined) throw new PeerUnreachable(`no peer ${peerId} in this hub`, { peerId })
    return network
  }
}

export class SimulatedNetwork implements Network {
  readonly peerEvents: Observable<PeerEvent>
  readonly frameErrors: Observable<FrameError>
  /** @internal bumped whenever the peer goes down, so frames addressed to an earlier life are lost */
  incarnation = 0

  private readonly peerEventSubject = new Subject<PeerEvent>()
  private readonly frameErrorSubject = new Subject<FrameError>()
  private readonly handlers = new Map<string, FrameHandler>()
  private readonly connections = new Set<string>()
  private stopped = false
  private crashed = false

  /** @internal use SimulatedNetworkHub.createNetwork */
  constructor(
    private readonly hub: SimulatedNetworkHub,
    readonly peerId: string,
    readonly maxFrameBytes: number,
  ) {
    this.peerEvents = this.peerEventSubject.asObservable()
    this.frameErrors = this.frameErrorSubject.asObservable()
  }

  addresses(): string[] {
    return [`/sim/${this.peerId}`]
  }

  async start(): Promise<void> {
    this.stopped = false
  }

  async stop(): Promise<void> {
    if (this.stopped) return
    this.goDown('stopped')
  }

  async connect(address: string, options?: SendOptions): Promise<string> {
    if (options?.signal?.aborted) throw new Cancelled('connect cancelled', { address }, { cause: options.signal.reason })
    const match = /^\/sim\/([^/\s]+)$/.exec(address)
    if (match === null) throw new InvalidInput(`not a simulated address: ${address}`, { address })
    this.assertNotStopped()
    const remote = this.hub.lookup(match[1]!)
    if (remote === undefined || remote === this || this.crashed || remote.downReason() !== undefined || !this.hub.canReach(this.peerId, remote.peerId)) {
      throw new PeerUnreachable(`cannot connect to ${address}`, { address })
    }
    this.link(remote)
    return remote.peerId
  }

  async send(peerId: string, protocol: string, bytes: Uint8Array, options?: SendOptions): Promise<void> {
    if (typeof peerId !== 'string' || !protocolSchema.safeParse(protocol).success || !(bytes instanceof Uint8Array)) {
      throw new InvalidInput('invalid send arguments', { peerId, protocol })
    }
    if (options?.signal?.aborted) throw new Cancelled('send cancelled', { peerId, protocol }, { cause: options.signal.reason })
    if (bytes.byteLength > this.maxFrameBytes) {
      throw new FrameTooLarge(`frame of ${bytes.byteLength} bytes exceeds ${this.maxFrameBytes}`, {
        peerId,
        protocol,
        bytes: bytes.byteLength,
        maxFrameBytes: this.maxFrameBytes,
      })
    }
    this.assertNotStopped()
    const remote = this.hub.lookup(peerId)
    if (remote === undefined || remote === this) throw new PeerUnreachable(`no peer ${peerId}`, { peerId, protocol })
    // Sending dials on demand, as libp2p does when it knows the peer's address.
    if (this.downReason() === undefined && remote.downReason() === undefined && this.hub.canReach(this.peerId, peerId)) this.link(remote)
    this.hub.transmit(this, remote, protocol, bytes)
  }

  async handle(protocol: string, handler: FrameHandler): Promise<void> {
    if (!protocolSchema.safeParse(protocol).success) throw new InvalidInput(`not a protocol id: ${protocol}`, { protocol })
    this.handlers.set(protocol, handler)
  }

  async unhandle(protocol: string): Promise<void> {
    this.handlers.delete(protocol)
  }

  connectedPeers(): string[] {
    return [...this.connections].sort()
  }

  /** the simulator models one connection per connected peer */
  connectionCount(peerId: string): number {
    return this.connections.has(peerId) ? 1 : 0
  }

  // ---- used by SimulatedNetworkHub ----------------------------------------------------------

  /** @internal */
  downReason(): 'crashed' | 'stopped' | undefined {
    return this.crashed ? 'crashed' : this.stopped ? 'stopped' : undefined
  }

  /** @internal hands a frame to the handler; returns why it was not delivered, if it was not */
  receive(from: string, protocol: string, bytes: Uint8Array): 'no-handler' | 'oversized' | undefined {
    if (bytes.byteLength > this.maxFrameBytes) {
      const error = new FrameTooLarge(`incoming frame exceeds ${this.maxFrameBytes} bytes`, { from, protocol, maxFrameBytes: this.maxFrameBytes })
      this.frameErrorSubject.next({ from, protocol, error })
      return 'oversized'
    }
    const handler = this.handlers.get(protocol)
    if (handler === undefined) return 'no-handler'
    // The handler belongs to the layer above; its failure is not a network event.
    try {
      const result: unknown = handler({ from, protocol, bytes })
      if (result instanceof Promise) result.catch(() => undefined)
    } catch {
      // swallowed on purpose, see above
    }
    return undefined
  }

  /** @internal a crash is silent to the peer itself; a stop is observed on both sides */
  goDown(how: 'crashed' | 'stopped'): void {
    if (how === 'crashed') this.crashed = true
    else this.stopped = true
    this.incarnation++
    for (const peerId of [...this.connections].sort()) {
      const remote = this.hub.lookup(peerId)!
      this.connections.delete(peerId)
      remote.connections.delete(this.peerId)
      if (how === 'stopped') this.peerEventSubject.next({ type: 'peer:disconnect', peerId })
      remote.peerEventSubject.next({ type: 'peer:disconnect', peerId: this.peerId })
    }
  }

  /** @internal */
  comeBack(): void {
    this.crashed = false
  }

  private link(remote: SimulatedNetwork): void {
    if (this.connections.has(remote.peerId)) return
    this.connections.add(remote.peerId)
    remote.connections.add(this.peerId)
    this.peerEventSubject.next({ type: 'peer:connect', peerId: remote.peerId })
    remote.peerEventSubject.next({ type: 'peer:connect', peerId: this.peerId })
  }

  private assertNotStopped(): void {
    if (this.stopped) throw new NetworkError('network is stopped', { peerId: this.peerId })
  }
}
