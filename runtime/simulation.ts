// Simulation harness: N runtimes in one process on the simulated network and a virtual clock,
// all randomness and keys derived from one seed. The code under test is the production runtime;
// only the effect handlers differ. The result is a trace (ordered events) — the same seed gives
// the same trace, so a failing seed replays exactly.

import { createHash } from 'node:crypto'
import type { Subscription } from 'rxjs'
import { MemoryStorage } from '../effects/storage/index.js'
import { OffsetClock, VirtualClock } from '../effects/time/index.js'
import { SeededRandom } from '../effects/random/index.js'
import { Ed25519Crypto } from '../effects/crypto/index.js'
import { SimulatedNetworkHub, type FaultConfig } from '../effects/network/index.js'
import { createRuntime, type Runtime } from './runtime.js'
import type { RuntimeConfigInput } from './config.js'
import type { RuntimeEvent } from './events.js'

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
}

/** A trace event: a runtime event, or a network event from the simulator (peer = sender). */
export type TraceEvent =
  | RuntimeEvent
  | { type: 'net'; t: number; peer: string; what: 'send' | 'deliver' | 'drop' | 'duplicate'; to: string; protocol: string; bytes: number }

export class Simulation {
  readonly trace: TraceEvent[] = []
  private readonly subscriptions: Subscription[] = []

  private constructor(
    readonly seed: number | string,
    readonly clock: VirtualClock,
    readonly hub: SimulatedNetworkHub,
    readonly runtimes: Runtime[],
  ) {}

  static async create(options: SimulationOptions): Promise<Simulation> {
    const clock = new VirtualClock(options.startTime ?? 1_700_000_000_000)
    const root = new SeededRandom(options.seed)
    const hub = new SimulatedNetworkHub({ clock, random: root.derive('network'), ...(options.faults ? { faults: options.faults } : {}) })
    const runtimes: Runtime[] = []
    const simulation = new Simulation(options.seed, clock, hub, runtimes)
    simulation.subscriptions.push(
      hub.events.subscribe((e) => simulation.trace.push({ type: 'net', t: e.t, peer: e.from, what: e.type, to: e.to, protocol: e.protocol, bytes: e.bytes })),
    )
    for (let i = 0; i < options.peers; i++) {
      const seed = createHash('sha256').update(`aura-sim/${String(options.seed)}/peer/${i}`).digest()
      const crypto = await Ed25519Crypto.fromSeed(new Uint8Array(seed))
      const offset = options.clockOffsets?.[i] ?? 0
      const runtime = await createRuntime({
        ...(options.runtime ?? {}),
        effects: { clock: offset === 0 ? clock : new OffsetClock(clock, offset), random: root.derive(`peer/${i}`), crypto, storage: new MemoryStorage(), network: hub.createNetwork(crypto.peerId) },
      })
      simulation.subscriptions.push(runtime.events$.subscribe((event) => simulation.trace.push(event)))
      runtimes.push(runtime)
    }
    for (const a of runtimes) for (const b of runtimes) if (a !== b) await a.connect(b.addresses()[0]!)
    return simulation
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

  async stop(): Promise<void> {
    for (const s of this.subscriptions) s.unsubscribe()
    for (const runtime of this.runtimes) await runtime.stop()
  }
}
