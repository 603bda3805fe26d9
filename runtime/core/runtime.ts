// createRuntime: validates the config, builds the effect handlers (real ones unless injected),
// the router and the event bus (the components every service may use, see components.ts), then
// starts the services in dependency order: the defaults (storage, replication, sessions,
// timeouts, transport) and whatever the config adds, e.g. `{ notes: crdt(), ae: antiEntropy() }`.

import '../../effects/network/polyfill.js'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Observable, Subscription } from 'rxjs'
import { ConfigInvalid, isAuraError } from '../../effects/errors.js'
import { Libp2pNetwork } from '../../effects/network/index.js'
import { LmdbStorage, type Storage } from '../../effects/storage/index.js'
import { SystemClock } from '../../effects/time/index.js'
import { CryptoRandom } from '../../effects/random/index.js'
import { Ed25519Crypto } from '../../effects/crypto/index.js'
import { parseRuntimeConfig, type RuntimeConfig, type RuntimeConfigInput } from './config.js'
import { EventBus, type RuntimeEvent } from './events.js'
import { Metrics, type MetricsSnapshot } from './metrics.js'
import { Router } from './router.js'
import type { SessionManager } from '../sessions/session-manager.js'
import type { TimeoutCoordinator } from '../timeouts/timeout-coordinator.js'
import type { TransportCoordinator } from '../transport/transport-coordinator.js'
import type { StorageCoordinator } from '../storage/storage-coordinator.js'
import type { ReplicationCoordinator } from '../storage/replication-coordinator.js'
import { sessions as sessionsService } from '../sessions/service.js'
import { timeouts as timeoutsService } from '../timeouts/service.js'
import { transport as transportService } from '../transport/service.js'
import { replication as replicationService, storage as storageService } from '../storage/service.js'
import { createInspector } from './inspection.js'
import { bindComponents, type ApiOf, type Components, type ServiceFactory } from './components.js'
import { ServiceSet } from './services.js'

const IDENTITY_NAMESPACE = 'aura.identity'
const PEERS_NAMESPACE = 'aura.peers'

/** The services every runtime starts unless the config replaces them (by a service of the same kind). */
export interface DefaultServices {
  sessions: SessionManager
  timeouts: TimeoutCoordinator
  transport: TransportCoordinator
  storage: StorageCoordinator
  replication: ReplicationCoordinator
}

/** `services` of a runtime whose config added `Added`. */
export type ServicesOf<Added> = string extends keyof Added
  ? DefaultServices & Record<string, unknown> // services not known statically (e.g. a config built at run time)
  : Omit<DefaultServices, keyof Added> & { [K in keyof Added]: ApiOf<Added[K]> }

export interface Runtime<Services = DefaultServices> {
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
  /** every running service's API by name: the defaults and those the config (or addService) added */
  readonly services: Services
  /** starts one more service (after the ones it depends on, which must be running) and resolves with its API */
  addService<API>(name: string, factory: ServiceFactory<API>): Promise<API>
  /** sessions running choreographies (the `sessions` service) */
  readonly sessions: SessionManager
  /** coordinated deadlines across peers (the `timeouts` service) */
  readonly timeouts: TimeoutCoordinator
  /** channels per (peer, context) over pooled connections, with budgets and epochs (the `transport` service) */
  readonly transport: TransportCoordinator
  /** capability-checked namespaced storage (on the storage effect), served to peers on 'storage' */
  readonly storage: StorageCoordinator
  /** replication of stored keys to peers under all-ack / quorum / async policies */
  readonly replication: ReplicationCoordinator
  /** runs `hook` when the runtime stops, before its services stop and the network and storage close (latest first) */
  onStop(hook: () => Promise<void> | void): void
  stop(): Promise<void>
}

type CreateRuntimeInput<Added> = Omit<RuntimeConfigInput, 'services'> & { services?: Added }

/** The default services, configured from the config's top-level sections. */
function defaultServices(config: RuntimeConfig): Record<keyof DefaultServices, ServiceFactory> {
  return {
    storage: storageService(config.storage),
    replication: replicationService(),
    sessions: sessionsService({ ...config.sessions, protocols: config.protocols }),
    timeouts: timeoutsService(),
    transport: transportService(),
  }
}

/** Defaults overlaid with the config's services; a default is only replaced by one of its kind, and configured in one place. */
function servicesToStart(config: RuntimeConfig, input: RuntimeConfigInput): Record<string, ServiceFactory> {
  const defaults = defaultServices(config)
  const given = config.services
  for (const [name, factory] of Object.entries(given)) {
    const replaced = defaults[name as keyof DefaultServices]
    if (replaced && replaced.kind !== factory.kind)
      throw new ConfigInvalid(`services.${name} must be a ${replaced.kind} service, not ${factory.kind}`, { name })
  }
  const twice = (['sessions', 'storage'] as const).filter((name) => given[name] && input[name] !== undefined)
  if (given.sessions && input.protocols !== undefined) twice.push('sessions')
  if (twice.length > 0)
    throw new ConfigInvalid(`configure ${twice[0]} in one place: the top-level section or services.${twice[0]}, not both`, { service: twice[0] })
  return { ...defaults, ...given }
}

/**
 * Validates the config (ConfigInvalid listing every issue), builds the effects (libp2p TCP on
 * 127.0.0.1 and LMDB in a temp folder unless injected), then starts the services in dependency order.
 * @example
 * const runtime = await createRuntime({ dataDir: './data', services: { notes: crdt({ namespace: 'notes' }) } })
 * await runtime.connect('/ip4/127.0.0.1/tcp/4001/p2p/12D3Koo...')
 * runtime.services.notes.cv('visits', semilattice.gCounter)
 * await runtime.stop()
 */
export async function createRuntime<Added extends Record<string, ServiceFactory<any>> = {}>(
  input: CreateRuntimeInput<Added> = {},
): Promise<Runtime<ServicesOf<Added>>> {
  const config = parseRuntimeConfig(input)
  const factories = servicesToStart(config, input as RuntimeConfigInput)
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
    const bus = new EventBus(
      () => net.peerId,
      () => clock.now(),
    )
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
      net.frameErrors.subscribe((failure) =>
        bus.emit({ type: 'error', code: failure.error.code, where: `network ${failure.protocol}`, message: failure.error.message, remote: failure.from }),
      ),
    ]
    const peers = storage.namespace(PEERS_NAMESPACE)
    const connect = async (address: string): Promise<string> => {
      const peerId = await net.connect(address)
      await peers.put(peerId, { address, seenAt: clock.now() })
      return peerId
    }
    const components: Components = {
      peerId: net.peerId,
      router,
      bus,
      clock,
      random,
      crypto,
      storage,
      network: net,
      inspect,
      config,
      connectedPeers: () => net.connectedPeers(),
    }
    const reportStopError = (where: string, error: unknown) =>
      bus.emit({ type: 'error', code: isAuraError(error) ? error.code : 'STORAGE', where: `stop ${where}`, message: String(error) })
    const services = new ServiceSet(components)
    // Stopped before the network and storage close (also when a later service fails to start).
    owned.unshift(() => services.stop(reportStopError))
    await services.start(factories)
    const apis = services.apis as unknown as DefaultServices
    // Reconnect to peers we knew (a restarted peer finds its session partners again) and to the
    // bootstrap list; failures are reported, not fatal.
    const known = [...peers.range<{ address: string }>()].map((e) => e.value.address)
    for (const address of new Set([...config.bootstrap, ...known])) {
      connect(address).catch((error) =>
        bus.emit({ type: 'error', code: isAuraError(error) ? error.code : 'NETWORK', where: 'reconnect', message: String(error) }),
      )
    }

    let stopped = false
    const stopHooks: Array<() => Promise<void> | void> = []
    const runtime: Runtime<ServicesOf<Added>> = {
      peerId: net.peerId,
      config,
      dataDir,
      addresses: () => net.addresses(),
      connect,
      connectedPeers: () => net.connectedPeers(),
      events$: bus.events$,
      metrics: () => metrics.snapshot(),
      services: services.apis as ServicesOf<Added>,
      async addService<API>(name: string, factory: ServiceFactory<API>): Promise<API> {
        if (stopped) throw new ConfigInvalid('the runtime has stopped')
        await services.start({ [name]: factory })
        return services.apis[name] as API
      },
      sessions: apis.sessions,
      timeouts: apis.timeouts,
      transport: apis.transport,
      storage: apis.storage,
      replication: apis.replication,
      onStop: (hook) => void stopHooks.push(hook),
      async stop() {
        if (stopped) return
        stopped = true
        for (const hook of stopHooks.reverse()) {
          try {
            await hook()
          } catch (error) {
            reportStopError('hook', error)
          }
        }
        await services.stop(reportStopError)
        router.close()
        for (const s of subscriptions) s.unsubscribe()
        for (const close of owned) await close()
        metrics.stop()
        bus.complete()
      },
    }
    bindComponents(runtime, components)
    return runtime
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
