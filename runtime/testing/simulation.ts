// Simulation harness: N runtimes in one process on the simulated network and a virtual clock,
// all randomness and keys derived from one seed. The code under test is the production runtime;
// only the effect handlers differ. The result is a trace (ordered events) — the same seed gives
// the same trace, so a failing seed replays exactly.
//
// Crashes are real: each incarnation of a peer runs on its own views of the shared clock and of
// the peer's storage (CrashableClock, CrashableStorage). crash(i) cuts the peer off the network
// and kills both views — the old runtime's timers never fire again and it writes nothing more,
// and its graceful stop() never runs. restart(i) builds a new runtime for the same identity over
// the same MemoryStorage (the peer's disk: what was written before the crash is there) and a new
// network for the same peer id. Services a harness attaches (CRDT coordinators, anti-entropy...)
// die with the old runtime; `onStart` attaches them on the first start and on every restart.

import { createHash } from 'node:crypto'
import { Subscription } from 'rxjs'
import { InvalidInput } from '../../effects/errors.js'
import { CrashableStorage, MemoryStorage } from '../../effects/storage/index.js'
import { CrashableClock, OffsetClock, VirtualClock } from '../../effects/time/index.js'
import { SeededRandom } from '../../effects/random/index.js'
import { Ed25519Crypto } from '../../effects/crypto/index.js'
import { SimulatedNetworkHub, type FaultConfig, type SimulatedNetwork } from '../../effects/network/index.js'
import { createRuntime, type Runtime } from '../core/runtime.js'
import type { RuntimeConfigInput } from '../core/config.js'
import type { RuntimeEvent } from '../core/events.js'

const EMPTY_SUBSCRIPTION = Subscription.EMPTY

export interface SimulationOptions {
  seed: number | string
  peers: number
  faults?: FaultConfig
  /** virtual start time (ms since epoch) */
  startTime?: number
  /** per peer (by index): how far its clock reads ahead of the shared virtual time (negative: behind) */
  clockOffsets?: number[]
  /** config shared by every runtime (protocols, limits, timeouts...); effects are the simulator's */
  runtime?: Omit<RuntimeConfigInput, 'effects' | 'dataDir' | 'transport' | 'listen' | 'bootstrap'>
  /**
   * Attaches what a harness runs on each runtime. Called for every peer (in index order, once all
   * are created and connected) and again after each restart(), with the new runtime: whatever
   * was attached to the old one died with it. `life` counts the peer's restarts (0 at first).
   */
  onStart?: (runtime: Runtime, index: number, context: StartContext) => Promise<void> | void
}

export interface StartContext {
  simulation: Simulation
  /** 0 for the first start, n after the n-th restart */
  life: number
}

/** One peer's lasting parts (identity, disk) and its current incarnation's views. */
interface PeerSlot {
  readonly crypto: Ed25519Crypto
  readonly disk: MemoryStorage
  readonly offset: number
  life: number
  clock: CrashableClock
  storage: CrashableStorage
  trace: Subscription
  down: boolean
}

/** A trace event: a runtime event, or a network event from the simulator (peer = sender). */
export type TraceEvent =
  | RuntimeEvent
  | { type: 'net'; t: number; peer: string; what: 'send' | 'deliver' | 'drop' | 'duplicate'; to: string; protocol: string; bytes: number }
  | { type: 'sim'; t: number; peer: string; what: 'crash' | 'restart'; life: number }

export class Simulation {
  readonly trace: TraceEvent[] = []
  private readonly subscriptions: Subscription[] = []
  private readonly slots: PeerSlot[] = []

  private constructor(
    readonly seed: number | string,
    readonly clock: VirtualClock,
    readonly hub: SimulatedNetworkHub,
    readonly runtimes: Runtime[],
    private readonly root: SeededRandom,
    private readonly options: SimulationOptions,
  ) {}

  static async create(options: SimulationOptions): Promise<Simulation> {
    const clock = new VirtualClock(options.startTime ?? 1_700_000_000_000)
    const root = new SeededRandom(options.seed)
    const hub = new SimulatedNetworkHub({ clock, random: root.derive('network'), ...(options.faults ? { faults: options.faults } : {}) })
    const runtimes: Runtime[] = []
    const simulation = new Simulation(options.seed, clock, hub, runtimes, root, options)
    simulation.subscriptions.push(
      hub.events.subscribe((e) => simulation.trace.push({ type: 'net', t: e.t, peer: e.from, what: e.type, to: e.to, protocol: e.protocol, bytes: e.bytes })),
    )
    for (let i = 0; i < options.peers; i++) {
      const seed = createHash('sha256')
        .update(`aura-sim/${String(options.seed)}/peer/${i}`)
        .digest()
      const crypto = await Ed25519Crypto.fromSeed(new Uint8Array(seed))
      const offset = options.clockOffsets?.[i] ?? 0
      const slot = simulation.incarnate({ crypto, disk: new MemoryStorage(), offset, life: 0 })
      const runtime = await simulation.boot(slot, root.derive(`peer/${i}`), hub.createNetwork(crypto.peerId))
      simulation.slots.push(slot)
      runtimes.push(runtime)
    }
    for (const a of runtimes) for (const b of runtimes) if (a !== b) await a.connect(b.addresses()[0]!)
    if (options.onStart) for (const [i, runtime] of runtimes.entries()) await options.onStart(runtime, i, { simulation, life: 0 })
    return simulation
  }

  /** True while peer `index` is crashed (between crash() and restart()). */
  isDown(index: number): boolean {
    return this.slot(index).down
  }

  /**
   * Peer `index`'s process dies now. Its network goes down (frames in flight to or from it are
   * lost; the others see it disconnect) and its runtime is dead for good: none of its timers
   * fires again and its storage refuses every write, so only what was written before now is on
   * its disk. Its graceful stop() never runs. `runtimes[index]` keeps the dead runtime until
   * restart(); its events no longer reach the trace. Synchronous, so it can run inside a timer.
   */
  crash(index: number): void {
    const slot = this.slot(index)
    if (slot.down) throw new InvalidInput(`peer ${index} is already down`, { index })
    slot.down = true
    slot.trace.unsubscribe()
    slot.clock.kill()
    slot.storage.kill()
    this.hub.crash(slot.crypto.peerId)
    this.trace.push({ type: 'sim', t: this.clock.now(), peer: slot.crypto.peerId, what: 'crash', life: slot.life })
  }

  /**
   * Starts crashed peer `index` again from its disk: a new runtime with the same config and
   * identity, over the same storage (what it persisted before the crash) through a fresh view,
   * a fresh clock view and a new network for the same peer id. It replaces `runtimes[index]`,
   * reconnects to every peer that is up, then `onStart` runs for it. Resolves with the new runtime.
   */
  async restart(index: number): Promise<Runtime> {
    const slot = this.slot(index)
    if (!slot.down) throw new InvalidInput(`peer ${index} is not down; crash it first`, { index })
    const next = this.incarnate({ crypto: slot.crypto, disk: slot.disk, offset: slot.offset, life: slot.life + 1 })
    // A new random stream per life: the same seed restarts the same way.
    const runtime = await this.boot(next, this.root.derive(`peer/${index}/life/${next.life}`), this.hub.reincarnate(slot.crypto.peerId))
    this.slots[index] = next
    this.runtimes[index] = runtime
    this.trace.push({ type: 'sim', t: this.clock.now(), peer: runtime.peerId, what: 'restart', life: next.life })
    for (const [i, other] of this.runtimes.entries()) {
      if (i === index || this.slots[i]!.down) continue
      await runtime.connect(other.addresses()[0]!).catch(() => undefined)
    }
    await this.options.onStart?.(runtime, index, { simulation: this, life: next.life })
    return runtime
  }

  private incarnate(base: Pick<PeerSlot, 'crypto' | 'disk' | 'offset' | 'life'>): PeerSlot {
    const shared = base.offset === 0 ? this.clock : new OffsetClock(this.clock, base.offset)
    return { ...base, clock: new CrashableClock(shared), storage: new CrashableStorage(base.disk), trace: EMPTY_SUBSCRIPTION, down: false }
  }

  private async boot(slot: PeerSlot, random: SeededRandom, network: SimulatedNetwork): Promise<Runtime> {
    const runtime = await createRuntime({
      ...(this.options.runtime ?? {}),
      effects: { clock: slot.clock, random, crypto: slot.crypto, storage: slot.storage, network },
    })
    slot.trace = runtime.events$.subscribe((event) => this.trace.push(event))
    return runtime
  }

  private slot(index: number): PeerSlot {
    const slot = Number.isInteger(index) ? this.slots[index] : undefined
    if (slot === undefined) throw new InvalidInput(`no peer ${index} in this simulation`, { index, peers: this.slots.length })
    return slot
  }

  /** Advances virtual time by `ms`, firing every timer and delivery due in that window. */
  async run(ms: number): Promise<void> {
    await this.clock.advance(ms)
  }

  /** Advances in steps until `done()` holds or `maxMs` of virtual time has passed; returns done(). */
  async runUntil(done: () => boolean, maxMs: number, stepMs = 10): Promise<boolean> {
    const end = this.clock.now() + maxMs
    while (!done() && this.clock.now() < end) await this.clock.advance(Math.min(stepMs, end - this.clock.now()))
    return done()
  }

  /** A stable text form of the trace, for comparing runs. */
  traceText(): string {
    return this.trace.map((event) => JSON.stringify(event)).join('\n')
  }

  /** Stops every runtime that is up; a crashed one is dead already and has nothing to stop. */
  async stop(): Promise<void> {
    for (const s of this.subscriptions) s.unsubscribe()
    for (const slot of this.slots) slot.trace.unsubscribe()
    for (const [i, runtime] of this.runtimes.entries()) if (!this.slots[i]?.down) await runtime.stop()
  }
}
