// createRuntime: validates the config, builds the effect handlers (real ones unless injected),
// wires router, metrics and the pattern coordinators, and restores persisted state.

import '../../effects/network/polyfill.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Observable, Subscription } from 'rxjs'
import { isAuraError } from '../../effects/errors.js'
import { Libp2pNetwork, type Network } from '../../effects/network/index.js'
import { LmdbStorage, type Storage } from '../../effects/storage/index.js'
import { SystemClock, type Clock } from '../../effects/time/index.js'
import { CryptoRandom, type Random } from '../../effects/random/index.js'
import { Ed25519Crypto, type Crypto } from '../../effects/crypto/index.js'
import { parseRuntimeConfig, type RuntimeConfig, type RuntimeConfigInput } from './config.js'
import { EventBus, type RuntimeEvent, type RuntimeEventInput } from './events.js'
import { Metrics, type MetricsSnapshot } from './metrics.js'
import { Router } from './router.js'
import { SessionManager } from '../sessions/session-manager.js'
import { TimeoutCoordinator } from '../timeouts/timeout-coordinator.js'
import { TransportCoordinator } from '../transport/transport-coordinator.js'
import { createInspector } from './inspection.js'
import { StorageCoordinator } from '../storage/storage-coordinator.js'
import { ReplicationCoordinator } from '../storage/replication-coordinator.js'

const IDENTITY_NAMESPACE = 'aura.identity'
const PEERS_NAMESPACE = 'aura.peers'

export interface Runtime {
  readonly peerId: string
  readonly config: RuntimeConfig
  /** the LMDB folder in use: `config.dataDir`, or the temp folder made for this runtime (removed on stop); undefined when storage was injected */
  readonly dataDir: string | undefined
  addresses(): string[]
  /** dials a peer address and remembers it; resolves with the remote peer id */
  connect(address: string): Promise<string>
  connectedPeers(): string[]
  readonly events$: Observable<RuntimeEvent>
  metrics(): MetricsSnapshot
  readonly sessions: SessionManager
  readonly timeouts: TimeoutCoordinator
  /** channels per (peer, context) over pooled connections, with budgets and epochs */
  readonly transport: TransportCoordinator
  /** capability-checked namespaced storage (on the storage effect), served to peers on 'storage' */
  readonly storage: StorageCoordinator
  /** replication of stored keys to peers under all-ack / quorum / async policies */
  readonly replication: ReplicationCoordinator
  readonly router: Router
  readonly effects: { network: Network; storage: Storage; clock: Clock; random: Random; crypto: Crypto }
  /** puts an event on events$ (and so in metrics): for coordinators attached to this runtime */
  emit(event: RuntimeEventInput): void
  /** the actor inspection sink in use, if any (pass it to actors you create) */
  readonly inspect: ((event: unknown) => void) | undefined
  /** runs `hook` when the runtime stops, before the network and storage close (latest first) */
  onStop(hook: () => Promise<void> | void): void
  stop(): Promise<void>
}

export async function createRuntime(input: RuntimeConfigInput = {}): Promise<Runtime> {
  const config = parseRuntimeConfig(input)
  const injected = config.effects
  const clock = injected.clock ?? new SystemClock()
  const random = injected.random ?? new CryptoRandom()
  // A temp folder is ours to remove on stop; a dataDir the caller gave is never touched.
  const tempDir = injected.storage || config.dataDir !== undefined ? undefined : mkdtempSync(join(tmpdir(), 'aura-'))
  const dataDir = injected.storage ? undefined : (config.dataDir ?? tempDir)
  const owned: Array<() => Promise<void>> = []
  if (tempDir !== undefined) owned.push(async () => rmSync(tempDir, { recursive: true, force: true }))
  let storage: Storage
  try {
    storage = injected.storage ?? new LmdbStorage({ path: dataDir! })
  } catch (error) {
    for (const close of owned) await close()
    throw error
  }
  if (!injected.storage) owned.unshift(() => storage.close())
  try {
    const crypto = injected.crypto ?? (await loadIdentity(storage))
    let network = injected.network
    if (!network) {
      const libp2p = await Libp2pNetwork.create({
        transport: config.transport,
        ...(config.listen ? { listen: config.listen } : {}),
        privateKey: (crypto as Ed25519Crypto).privateKey,
        maxFrameBytes: config.maxFrameBytes,
        coalesceWrites: config.coalesceWrites,
        maxStreamsPerPeer: config.limits.maxStreamsPerPeer,
        maxConnections: config.limits.maxConnections,
      })
      network = libp2p
      owned.unshift(() => libp2p.stop())
    }
    await network.start()
    const net = network
    const bus = new EventBus(() => net.peerId, () => clock.now())
    const metrics = new Metrics(bus.events$)
    const router = new Router({
      network: net,
      bus,
      clock,
      random,
      maxFrameBytes: Math.min(config.maxFrameBytes, net.maxFrameBytes),
      maxInboundPerPeerPerSecond: config.limits.maxInboundPerPeerPerSecond,
    })
    const inspector = config.inspect === true ? createInspector() : undefined
    if (inspector) owned.push(async () => inspector.stop())
    const inspect = inspector ? inspector.inspect : typeof config.inspect === 'function' ? config.inspect : undefined
    const subscriptions: Subscription[] = [
      net.peerEvents.subscribe((event) => bus.emit({ type: 'peer', status: event.type === 'peer:connect' ? 'connect' : 'disconnect', remote: event.peerId })),
      net.frameErrors.subscribe((failure) => bus.emit({ type: 'error', code: failure.error.code, where: `network ${failure.protocol}`, message: failure.error.message, remote: failure.from })),
    ]
    const sessions = new SessionManager({
      router,
      storage,
      clock,
      random,
      crypto,
      bus,
      limits: config.limits,
      defaultTimeoutMs: config.sessions.defaultTimeoutMs,
      timeoutFactor: config.timeoutProfile.factor,
      autoJoin: config.sessions.autoJoin,
      retainFinishedMs: config.sessions.retainFinishedMs,
      verdictGraceMs: config.sessions.verdictGraceMs,
      ...(inspect ? { inspect } : {}),
    })
    const timeouts = new TimeoutCoordinator({ clock, random, bus, router, factor: config.timeoutProfile.factor, ...(inspect ? { inspect } : {}) })
    const peers = storage.namespace(PEERS_NAMESPACE)

    const connect = async (address: string): Promise<string> => {
      const peerId = await net.connect(address)
      await peers.put(peerId, { address, seenAt: clock.now() })
      return peerId
    }

    const transport = new TransportCoordinator({ peerId: net.peerId, router, bus, network: net, clock, random })
    const emit = (event: RuntimeEventInput) => bus.emit(event)
    const store = new StorageCoordinator(net.peerId, storage, {
      crypto,
      clock,
      emit,
      maxClockDriftMs: config.storage.maxClockDriftMs,
      trustedRoots: config.storage.trustedRoots,
      owners: config.storage.owners,
      ...(inspect ? { inspect } : {}),
    })
    const replication = new ReplicationCoordinator({ storage: store, router, clock, random, emit, ...(inspect ? { inspect } : {}) })
    await store.attach({ router })
    await replication.attach()
    await sessions.start(config.protocols)
    await timeouts.start()
    await transport.start()
    // Reconnect to peers we knew (a restarted peer finds its session partners again) and to the
    // bootstrap list; failures are reported, not fatal.
    const known = [...peers.range<{ address: string }>()].map((e) => e.value.address)
    for (const address of new Set([...config.bootstrap, ...known])) {
      connect(address).catch((error) => bus.emit({ type: 'error', code: isAuraError(error) ? error.code : 'NETWORK', where: 'reconnect', message: String(error) }))
    }

    let stopped = false
    const stopHooks: Array<() => Promise<void> | void> = []
    return {
      peerId: net.peerId,
      config,
      dataDir,
      addresses: () => net.addresses(),
      connect,
      connectedPeers: () => net.connectedPeers(),
      events$: bus.events$,
      metrics: () => metrics.snapshot(),
      sessions,
      timeouts,
      transport,
      storage: store,
      replication,
      router,
      effects: { network: net, storage, clock, random, crypto },
      emit,
      inspect,
      onStop: (hook) => void stopHooks.push(hook),
      async stop() {
        if (stopped) return
        stopped = true
        for (const hook of stopHooks.reverse()) {
          try {
            await hook()
          } catch (error) {
            bus.emit({ type: 'error', code: isAuraError(error) ? error.code : 'STORAGE', where: 'stop', message: String(error) })
          }
        }
        await sessions.stop()
        await transport.stop()
        router.close()
        for (const s of subscriptions) s.unsubscribe()
        for (const close of owned) await close()
        metrics.stop()
        bus.complete()
      },
    }
  } catch (error) {
    for (const close of owned) await close().catch(() => undefined)
    throw error
  }
}

/** The peer's identity key lives in storage so a restarted peer keeps its peer id. */
async function loadIdentity(storage: Storage): Promise<Ed25519Crypto> {
  const identities = storage.namespace(IDENTITY_NAMESPACE)
  const stored = identities.get<Uint8Array>('ed25519')
  if (stored) return Ed25519Crypto.fromBytes(stored)
  const crypto = await Ed25519Crypto.generate()
  await identities.put('ed25519', crypto.exportBytes())
  return crypto
}
