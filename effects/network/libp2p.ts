// Network over libp2p v3: TCP (or the in-process memory transport), noise, yamux.
//
// Wire format, per (peer, protocol): one long-lived outbound yamux stream carrying
// unsigned-varint length-prefixed frames, `varint(len) ‖ bytes`, len ≤ maxFrameBytes. The stream
// is write-only for its opener; the receiver never answers on it (answers travel on the
// receiver's own outbound stream), so each direction keeps its order independently.
import './polyfill.js'

import type { Connection, PeerId, PrivateKey, Stream } from '@libp2p/interface'
import { memory } from '@libp2p/memory'
import { noise } from '@libp2p/noise'
import { peerIdFromString } from '@libp2p/peer-id'
import { tcp } from '@libp2p/tcp'
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import { yamux } from '@libp2p/yamux'
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { Subject, type Observable } from 'rxjs'
import { z } from 'zod'
import {
  type AuraError,
  Cancelled,
  ConfigInvalid,
  FrameTooLarge,
  InvalidInput,
  MalformedFrame,
  NetworkError,
  PeerUnreachable,
  UnknownProtocol,
  invalidInput,
} from '../errors.js'
import { DEFAULT_MAX_FRAME_BYTES, type FrameError, type FrameHandler, type Network, type PeerEvent, type SendOptions } from './network.js'

// Frames are bounded, so one peer with a buggy or hostile sender cannot make us buffer without
// limit; 64 MiB is far above anything the router sends and still fits in memory twice.
const MAX_CONFIGURABLE_FRAME_BYTES = 64 * 1024 * 1024
// Long-lived streams mean one per (peer, protocol) and direction, plus a reopen after a failure
// that can briefly overlap a dying stream. Each inbound stream may buffer up to two frames, so
// the bound is also what one peer can make us hold in memory: 64 leaves room for churn on every
// protocol while a peer opening hundreds of streams is refused (the hostile-wire campaign).
const DEFAULT_STREAMS_PER_PEER = 64
// libp2p's own default for Node, made explicit: beyond it the connection manager prunes.
const DEFAULT_MAX_CONNECTIONS = 300
const CLOSE_TIMEOUT_MS = 2_000

const isPrivateKey = (v: unknown): v is PrivateKey =>
  typeof v === 'object' && v !== null && 'type' in v && 'raw' in v && typeof (v as { sign?: unknown }).sign === 'function'

const isMultiaddr = (s: string): boolean => {
  try {
    multiaddr(s)
    return true
  } catch {
    return false
  }
}

const optionsSchema = z
  .object({
    transport: z.enum(['tcp', 'memory']),
    listen: z.array(z.string().refine(isMultiaddr, 'not a multiaddr')).optional(),
    privateKey: z.custom<PrivateKey>(isPrivateKey, 'expected a libp2p PrivateKey').optional(),
    maxFrameBytes: z.number().int().positive().max(MAX_CONFIGURABLE_FRAME_BYTES).optional(),
    /**
     * Hold each stream's frames until the event loop has run its pending I/O, then send them in
     * one write. Pipelined traffic moves in far fewer, larger writes (on 64-byte frames with 32
     * in flight, 3x the frames per second here); a lone request waits one loop turn longer
     * (about 20-30 us here). Off by default: most of our traffic is request/reply.
     */
    coalesceWrites: z.boolean().optional(),
    /** streams one peer may have open with us at once, each way (yamux per connection, and per protocol) */
    maxStreamsPerPeer: z.number().int().min(8).max(65_536).optional(),
    /** connections the connection manager keeps before pruning */
    maxConnections: z.number().int().min(1).max(100_000).optional(),
  })
  .strict()

export type Libp2pNetworkOptions = z.input<typeof optionsSchema>

const sendArgsSchema = z.object({
  peerId: z.string().min(1),
  protocol: z.string().startsWith('/'),
  bytes: z.instanceof(Uint8Array),
})

const protocolSchema = z.string().startsWith('/')

/**
 * lpStream reads a length prefix one byte at a time and is told "need more bytes" by a thrown
 * RangeError: every frame of 128 bytes or more (a two-byte prefix) takes one. A new error each
 * time captured a stack trace, 5-20 µs, on every such frame; this one is made once.
 */
const NEED_MORE_BYTES = new RangeError('incomplete length prefix')

/**
 * Unsigned LEB128, as lpStream writes it. Our own decoder (instead of lpStream's default) tells
 * the read loop that a frame has begun, which is how a clean end between frames is told apart
 * from a stream cut mid-frame. Throwing RangeError means "need more bytes" to lpStream.
 */
function frameLengthDecoder(onFrameStart: () => void) {
  return (data: { byteLength: number; get(index: number): number }): number => {
    onFrameStart()
    let value = 0
    let scale = 1
    for (let i = 0; i < data.byteLength; i++) {
      const byte = data.get(i)
      value += (byte & 0x7f) * scale
      if ((byte & 0x80) === 0) return value
      scale *= 128
      if (scale > Number.MAX_SAFE_INTEGER) return -1 // lpStream rejects negative lengths
    }
    throw NEED_MORE_BYTES
  }
}

/** A signal that aborts once every one of `signals` has; none when any frame waits without one. */
function whenAllAborted(signals: ReadonlyArray<AbortSignal | undefined>): AbortSignal | undefined {
  if (signals.length === 0 || signals.some((s) => s === undefined)) return undefined
  if (signals.length === 1) return signals[0]
  const all = new AbortController()
  let waiting = signals.length
  for (const signal of signals as AbortSignal[]) {
    signal.addEventListener('abort', () => --waiting === 0 && all.abort(signal.reason), { once: true })
  }
  return all.signal
}

const errorName = (err: unknown): string => (err instanceof Error ? err.name : '')

/** Frames queued behind one another go out in one stream write up to this many bytes. */
const COALESCE_BYTES = 256 * 1024

interface QueuedFrame {
  readonly bytes: Uint8Array
  readonly signal: AbortSignal | undefined
  readonly resolve: () => void
  readonly reject: (error: unknown) => void
}

/**
 * One ordered, long-lived stream to a peer on a protocol. Frames are written in the order they
 * were sent; those queued when a write starts leave together in one stream write (one yamux
 * frame, one noise encryption, one socket write for the lot). A write starts a microtask after
 * the first frame queued, so frames sent in the same turn leave together; with `coalesce`, after
 * the event loop's pending I/O has run, so frames the other callbacks of that loop iteration
 * send join them too.
 */
class OutboundChannel {
  private stream: Stream | undefined
  private lp: LengthPrefixedStream<Stream> | undefined
  private readonly queue: QueuedFrame[] = []
  /** whether a flush is scheduled or running: it takes every frame queued until it ends */
  private active = false
  /** the latest flush; settles once the queue is empty */
  private flushing: Promise<void> = Promise.resolve()

  constructor(
    private readonly node: Libp2p,
    private readonly peer: PeerId,
    private readonly protocol: string,
    private readonly maxFrameBytes: number,
    private readonly coalesce: boolean,
    private readonly maxStreams: number,
  ) {}

  write(bytes: Uint8Array, signal?: AbortSignal): Promise<void> {
    if (signal?.aborted) return Promise.reject(this.cancelled(signal))
    return new Promise<void>((resolve, reject) => {
      if (signal === undefined) {
        this.queue.push({ bytes, signal, resolve, reject })
      } else {
        // A caller that gives up must not wait for the writes queued ahead of it; its own frame
        // is skipped if it has not left yet.
        const onAbort = () => reject(this.cancelled(signal))
        signal.addEventListener('abort', onAbort, { once: true })
        const done = () => signal.removeEventListener('abort', onAbort)
        this.queue.push({
          bytes,
          signal,
          resolve: () => (done(), resolve()),
          reject: (error) => (done(), reject(error)),
        })
      }
      if (!this.active) {
        this.active = true
        const soon = this.coalesce ? new Promise<void>((resolve) => setImmediate(resolve)) : Promise.resolve()
        this.flushing = soon.then(() => this.flush())
      }
    })
  }

  /**
   * Lets queued writes finish (for a bounded time: a peer that stopped reading must not hold up
   * our shutdown), then half-closes the stream so the receiver sees a clean end.
   */
  async close(): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined
    await Promise.race([this.flushing, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_TIMEOUT_MS)))])
    clearTimeout(timer)
    const stream = this.stream
    this.stream = undefined
    this.lp = undefined
    if (stream === undefined || stream.status !== 'open') return
    try {
      await stream.close({ signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) })
    } catch (err) {
      stream.abort(err instanceof Error ? err : new Error(String(err)))
    }
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const batch = this.takeBatch()
      if (batch.length === 0) continue
      try {
        await this.writeFrames(
          batch.map((f) => f.bytes),
          whenAllAborted(batch.map((f) => f.signal)),
        )
        for (const f of batch) f.resolve()
      } catch (err) {
        for (const f of batch) f.reject(err)
      }
    }
    // In the same turn as the last look at the queue: a frame queued from here on starts a new flush.
    this.active = false
  }

  /** The next frames to go, in order, skipping those whose sender gave up. */
  private takeBatch(): QueuedFrame[] {
    const batch: QueuedFrame[] = []
    let bytes = 0
    while (this.queue.length > 0 && (batch.length === 0 || bytes + this.queue[0]!.bytes.byteLength <= COALESCE_BYTES)) {
      const frame = this.queue.shift()!
      if (frame.signal?.aborted) continue
      batch.push(frame)
      bytes += frame.bytes.byteLength
    }
    return batch
  }

  /** `dialSignal` gives up a dial once nobody waits for it any more. */
  private async writeFrames(frames: Uint8Array[], dialSignal: AbortSignal | undefined): Promise<void> {
    for (;;) {
      const fresh = !this.isWritable()
      const lp = fresh ? await this.open(dialSignal) : this.lp!
      try {
        if (frames.length === 1) await lp.write(frames[0]!)
        else await lp.writeV(frames)
        return
      } catch (err) {
        this.discard(err)
        // A stream we just opened failing too means the peer, not the stream, is the problem.
        if (fresh) {
          throw new NetworkError(`write to ${this.peer.toString()} failed`, { peerId: this.peer.toString(), protocol: this.protocol }, { cause: err })
        }
      }
    }
  }

  private isWritable(): boolean {
    return this.stream !== undefined && this.stream.status === 'open' && this.stream.writeStatus === 'writable'
  }

  private async open(signal: AbortSignal | undefined): Promise<LengthPrefixedStream<Stream>> {
    let stream: Stream
    try {
      stream = await this.node.dialProtocol(this.peer, this.protocol, {
        signal,
        runOnLimitedConnection: true,
        maxOutboundStreams: this.maxStreams,
      })
    } catch (err) {
      if (signal?.aborted) throw this.cancelled(signal)
      const details = { peerId: this.peer.toString(), protocol: this.protocol }
      if (errorName(err) === 'UnsupportedProtocolError') {
        throw new UnknownProtocol(`peer does not speak ${this.protocol}`, details, { cause: err })
      }
      throw new PeerUnreachable(`cannot reach ${this.peer.toString()}`, details, { cause: err })
    }
    this.stream = stream
    this.lp = lpStream(stream, { maxDataLength: this.maxFrameBytes })
    return this.lp
  }

  private discard(err: unknown): void {
    const stream = this.stream
    this.stream = undefined
    this.lp = undefined
    if (stream !== undefined && stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err)))
  }

  private cancelled(signal: AbortSignal): AuraError {
    return new Cancelled('send cancelled', { peerId: this.peer.toString(), protocol: this.protocol }, { cause: signal.reason })
  }
}

export class Libp2pNetwork implements Network {
  readonly peerId: string
  readonly maxFrameBytes: number
  readonly peerEvents: Observable<PeerEvent>
  readonly frameErrors: Observable<FrameError>

  private readonly peerEventSubject = new Subject<PeerEvent>()
  private readonly frameErrorSubject = new Subject<FrameError>()
  private readonly handlers = new Map<string, FrameHandler>()
  private readonly inbound = new Map<string, Set<Stream>>()
  private readonly channels = new Map<string, OutboundChannel>()
  private stopping: Promise<void> | undefined

  private constructor(
    private readonly node: Libp2p,
    maxFrameBytes: number,
    private readonly coalesceWrites: boolean,
    private readonly maxStreamsPerPeer: number,
  ) {
    this.peerId = node.peerId.toString()
    this.maxFrameBytes = maxFrameBytes
    this.peerEvents = this.peerEventSubject.asObservable()
    this.frameErrors = this.frameErrorSubject.asObservable()
    node.addEventListener('peer:connect', (evt) => this.peerEventSubject.next({ type: 'peer:connect', peerId: evt.detail.toString() }))
    node.addEventListener('peer:disconnect', (evt) => this.peerEventSubject.next({ type: 'peer:disconnect', peerId: evt.detail.toString() }))
  }

  /** Builds and starts a node. Rejects ConfigInvalid for bad options, NetworkError if it cannot listen. */
  static async create(options: Libp2pNetworkOptions): Promise<Libp2pNetwork> {
    const parsed = optionsSchema.safeParse(options)
    if (!parsed.success) throw new ConfigInvalid('invalid Libp2pNetwork options', { issues: parsed.error.issues })
    const { transport, privateKey } = parsed.data
    const maxStreams = parsed.data.maxStreamsPerPeer ?? DEFAULT_STREAMS_PER_PEER
    const listen = parsed.data.listen ?? (transport === 'tcp' ? ['/ip4/127.0.0.1/tcp/0'] : [`/memory/${globalThis.crypto.randomUUID()}`])
    let node: Libp2p
    try {
      node = await createLibp2p({
        ...(privateKey !== undefined ? { privateKey } : {}),
        addresses: { listen },
        transports: [transport === 'tcp' ? tcp() : memory()],
        connectionEncrypters: [noise()],
        streamMuxers: [yamux({ maxInboundStreams: maxStreams, maxOutboundStreams: maxStreams })],
        connectionManager: { maxConnections: parsed.data.maxConnections ?? DEFAULT_MAX_CONNECTIONS },
      })
    } catch (err) {
      throw new NetworkError(`cannot start libp2p (${transport} on ${listen.join(', ')})`, { transport, listen }, { cause: err })
    }
    return new Libp2pNetwork(node, parsed.data.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES, parsed.data.coalesceWrites ?? false, maxStreams)
  }

  addresses(): string[] {
    return this.node.getMultiaddrs().map((ma) => ma.toString())
  }

  async start(): Promise<void> {
    if (this.stopping !== undefined) await this.stopping
    this.stopping = undefined
    if (this.node.status === 'started' || this.node.status === 'starting') return
    try {
      await this.node.start()
    } catch (err) {
      throw new NetworkError('cannot start libp2p', {}, { cause: err })
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.stopNow()
    return this.stopping
  }

  async connect(address: string, options?: SendOptions): Promise<string> {
    let target: Multiaddr
    try {
      target = multiaddr(address)
    } catch (err) {
      throw new InvalidInput(`not a multiaddr: ${address}`, { address }, { cause: err })
    }
    this.assertRunning()
    try {
      const connection = await this.node.dial(target, { signal: options?.signal })
      return connection.remotePeer.toString()
    } catch (err) {
      if (options?.signal?.aborted) throw new Cancelled('connect cancelled', { address }, { cause: options.signal.reason })
      throw new PeerUnreachable(`cannot connect to ${address}`, { address }, { cause: err })
    }
  }

  async send(peerId: string, protocol: string, bytes: Uint8Array, options?: SendOptions): Promise<void> {
    // the common case checked by hand (exactly what the schema accepts); zod only to say what is wrong
    const plain = typeof peerId === 'string' && peerId.length > 0 && typeof protocol === 'string' && protocol.startsWith('/') && bytes instanceof Uint8Array
    if (!plain) {
      const args = sendArgsSchema.safeParse({ peerId, protocol, bytes })
      if (!args.success) throw invalidInput('send arguments', args.error.issues)
    }
    if (bytes.byteLength > this.maxFrameBytes) {
      throw new FrameTooLarge(`frame of ${bytes.byteLength} bytes exceeds ${this.maxFrameBytes}`, {
        peerId,
        protocol,
        bytes: bytes.byteLength,
        maxFrameBytes: this.maxFrameBytes,
      })
    }
    this.assertRunning()
    if (peerId === this.peerId) throw new PeerUnreachable('cannot send to self', { peerId, protocol })
    const key = `${peerId}\n${protocol}`
    let channel = this.channels.get(key)
    if (channel === undefined) {
      let peer: PeerId
      try {
        peer = peerIdFromString(peerId)
      } catch (err) {
        throw new InvalidInput(`not a peer id: ${peerId}`, { peerId }, { cause: err })
      }
      channel = new OutboundChannel(this.node, peer, protocol, this.maxFrameBytes, this.coalesceWrites, this.maxStreamsPerPeer)
      this.channels.set(key, channel)
    }
    return channel.write(bytes, options?.signal)
  }

  async handle(protocol: string, handler: FrameHandler): Promise<void> {
    if (!protocolSchema.safeParse(protocol).success) throw new InvalidInput(`not a protocol id: ${protocol}`, { protocol })
    const registered = this.handlers.has(protocol)
    // Replacing only swaps the map entry: streams already open pick up the new handler at their
    // next frame, so a handler swap never drops a connection.
    this.handlers.set(protocol, handler)
    if (registered) return
    try {
      await this.node.handle(protocol, (stream, connection) => void this.serveInbound(stream, connection), {
        maxInboundStreams: this.maxStreamsPerPeer,
        maxOutboundStreams: this.maxStreamsPerPeer,
        runOnLimitedConnection: true,
        force: true,
      })
    } catch (err) {
      this.handlers.delete(protocol)
      throw new NetworkError(`cannot handle ${protocol}`, { protocol }, { cause: err })
    }
  }

  async unhandle(protocol: string): Promise<void> {
    if (!this.handlers.delete(protocol)) return
    await this.node.unhandle(protocol)
    for (const stream of this.inbound.get(protocol) ?? []) stream.abort(new Error(`${protocol} no longer handled`))
    this.inbound.delete(protocol)
  }

  connectedPeers(): string[] {
    return this.node.getPeers().map((p) => p.toString())
  }

  connectionCount(peerId: string): number {
    try {
      return this.node.getConnections(peerIdFromString(peerId)).length
    } catch {
      return 0
    }
  }

  private assertRunning(): void {
    if (this.stopping !== undefined || this.node.status !== 'started') throw new NetworkError('network is stopped', { peerId: this.peerId })
  }

  private async stopNow(): Promise<void> {
    const channels = [...this.channels.values()]
    this.channels.clear()
    await Promise.allSettled(channels.map((c) => c.close()))
    for (const streams of this.inbound.values()) for (const s of streams) void s.close().catch(() => undefined)
    this.inbound.clear()
    await this.node.stop()
  }

  private async serveInbound(stream: Stream, connection: Connection): Promise<void> {
    const from = connection.remotePeer.toString()
    const protocol = stream.protocol
    const open = this.inbound.get(protocol) ?? new Set<Stream>()
    this.inbound.set(protocol, open)
    open.add(stream)
    // A frame may arrive while the previous one is still buffered; room for two keeps a
    // maximal frame from tripping the byte stream's overflow guard.
    const bufferBytes = 2 * this.maxFrameBytes + 32
    stream.maxReadBufferLength = Math.max(stream.maxReadBufferLength, bufferBytes)
    let midFrame = false
    const lp = lpStream(stream, {
      maxDataLength: this.maxFrameBytes,
      maxBufferSize: bufferBytes,
      lengthDecoder: frameLengthDecoder(() => {
        midFrame = true
      }),
    })
    try {
      for (;;) {
        const frame = await lp.read()
        midFrame = false
        this.deliver(from, protocol, frame.subarray())
      }
    } catch (err) {
      const error = this.classifyReadError(err, midFrame, from, protocol)
      if (error === undefined) {
        if (stream.status === 'open') await stream.close().catch(() => stream.abort(new Error('close failed')))
      } else {
        stream.abort(error)
        this.frameErrorSubject.next({ from, protocol, error })
      }
    } finally {
      open.delete(stream)
    }
  }

  private deliver(from: string, protocol: string, bytes: Uint8Array): void {
    const handler = this.handlers.get(protocol)
    if (handler === undefined) return
    // The handler belongs to the layer above; its failure must not stop this peer's stream.
    try {
      const result: unknown = handler({ from, protocol, bytes })
      if (result instanceof Promise) result.catch(() => undefined)
    } catch {
      // swallowed on purpose, see above
    }
  }

  /** undefined: the stream ended between frames, which is how a sender says goodbye. */
  private classifyReadError(err: unknown, midFrame: boolean, from: string, protocol: string): AuraError | undefined {
    const details = { from, protocol }
    switch (errorName(err)) {
      case 'InvalidDataLengthError':
        return new FrameTooLarge(`incoming frame exceeds ${this.maxFrameBytes} bytes`, { ...details, maxFrameBytes: this.maxFrameBytes }, { cause: err })
      case 'InvalidMessageLengthError':
      case 'InvalidDataLengthLengthError':
        return new MalformedFrame('invalid frame length prefix', details, { cause: err })
      case 'StreamBufferError':
        return new FrameTooLarge('incoming frames overflowed the read buffer', details, { cause: err })
    }
    if (midFrame) return new MalformedFrame('stream ended mid-frame', details, { cause: err })
    return undefined
  }
}
