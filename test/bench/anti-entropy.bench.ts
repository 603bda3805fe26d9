// Anti-entropy figures (`npm run bench -- anti-entropy` runs these alone), measured in one run:
//   (a) rounds between two runtimes over loopback TCP, a holding n documents, b holding the same
//       plus `diff` changed ones (LWW registers, the same payloads for every digest). Each figure
//       is the median of ROUNDS rounds, each finding fresh differences, after an idle round (what
//       a long-running peer keeps between rounds is built by then) and WARMUP unmeasured ones:
//       - 100k documents, 100 differing, with the default digest (merkle) and with bloom;
//       - 1k / 10k / 100k documents, 1% differing (default digest): how a round's cost grows;
//       - the same 100 documents moved by exchange() alone (no digest), the floor under a round;
//   (b) rounds until 16/64/256/1024 simulated peers converge, Random(3) peer selection.

import { Packr } from 'msgpackr'
import { gCounter, lwwRegister, type GCounterState, type LWWRegisterState } from '../../runtime/crdt/lattices/index.js'
import { MemoryStorage } from '../../effects/storage/index.js'
import { Ed25519Crypto } from '../../effects/crypto/index.js'
import { issueRoot } from '../../runtime/core/capability.js'
import { AntiEntropy } from '../../runtime/anti-entropy/anti-entropy.js'
import { CrdtCoordinator } from '../../runtime/crdt/crdt-coordinator.js'
import { createRuntime, type Runtime } from '../../runtime/core/runtime.js'
import { Simulation } from '../../runtime/testing/simulation.js'
import { quantile, type BenchReport } from './report.js'
import { sharing } from '../fixtures/crdt-access.js'

/** Rounds per figure (AE_ROUNDS overrides, for profiling). */
const ROUNDS = Number(process.env.AE_ROUNDS ?? 5)
const WARMUP = 2
const sizer = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

interface Pair {
  runtimes: Runtime[]
  a: CrdtCoordinator
  b: CrdtCoordinator
  engine: AntiEntropy
  keys: number
  /** msgpack bytes of the full state (a's answer to an empty sync request) */
  fullBytes: number
  /** rounds of changes made on b so far (each changes fresh values) */
  edits: number
}

/** Two TCP runtimes holding the same `keys` LWW registers, an anti-entropy engine each, after an idle round. */
async function pair(keys: number, digest: 'bloom' | 'merkle' | undefined): Promise<Pair> {
  const runtimes = await Promise.all(
    [0, 1].map(() => createRuntime({ transport: 'tcp', maxFrameBytes: 64 * 1024 * 1024, effects: { storage: new MemoryStorage() } })),
  )
  await runtimes[0]!.connect(runtimes[1]!.addresses()[0]!)
  const [a, b] = (await sharing(Promise.all(runtimes.map((r) => CrdtCoordinator.attach(r))))) as [CrdtCoordinator, CrdtCoordinator]
  for (let i = 0; i < keys; i++) {
    const h = a.cv(`key:${i}`, lwwRegister)
    h.mutate((s: LWWRegisterState) => lwwRegister.set(s, a.peerId, { v: i }, 1_700_000_000_000 + i))
    a.changed(`key:${i}`)
  }
  await a.flush()
  const full = a.handleSyncRequest(b.createSyncRequest())
  const fullBytes = sizer.pack(full).length
  await b.handleSyncResponse(full)
  const config = { syncInterval: 3_600_000, peerSelection: { kind: 'random' as const, k: 1 }, ...(digest ? { digest } : {}) }
  const engines = await Promise.all(runtimes.map((r, i) => AntiEntropy.attach(r, [a, b][i]!, config)))
  const idle = await engines[0]!.runRound()
  if (idle.differing !== 0) throw new Error(`the idle round found ${idle.differing} differing`)
  return { runtimes, a, b, engine: engines[0]!, keys, fullBytes, edits: 0 }
}

/**
 * Changes `diff` documents on b (spread over the key space, new ones each call) and waits until
 * b has written them (b's own persistence is not part of a's round); their names.
 */
async function edit(p: Pair, diff: number): Promise<string[]> {
  const names: string[] = []
  const stride = Math.floor(p.keys / diff)
  const edit = ++p.edits
  for (let i = 0; i < diff; i++) {
    const name = `key:${(i * stride + edit) % p.keys}`
    const h = p.b.cv(name, lwwRegister)
    h.mutate((s: LWWRegisterState) => lwwRegister.set(s, p.b.peerId, { v: -i, edit }, 1_800_000_000_000 + edit))
    p.b.changed(name)
    names.push(name)
  }
  await p.b.flush()
  return names
}

/**
 * Median ms of ROUNDS anti-entropy rounds, each after `diff` fresh changes on b, following WARMUP
 * unmeasured ones (the same work, so the first figure of a run is not the JIT's); bytes of the last.
 */
async function rounds(p: Pair, diff: number): Promise<{ ms: number; bytes: number }> {
  const times: number[] = []
  let bytes = 0
  // differences a bloom round hid, which the next round finds besides its own
  let hidden = 0
  for (let r = -WARMUP; r < ROUNDS; r++) {
    await edit(p, diff)
    const t0 = performance.now()
    const round = await p.engine.runRound()
    if (r >= 0) times.push(performance.now() - t0)
    // Merkle finds every difference; a bloom filter may hide one by a false positive (about
    // 1 in 10,000 per document, both filters having to err), found the next round (new salt).
    const found = p.engine.config.digest === 'merkle' ? round.differing === diff : round.differing <= diff + hidden && round.differing >= diff * 0.98
    if (!found || round.pulled !== round.differing)
      throw new Error(`anti-entropy round found ${round.differing} differing, pulled ${round.pulled} (expected ${diff})`)
    hidden = Math.max(0, diff + hidden - round.differing)
    bytes = round.bytes
  }
  return { ms: quantile(times, 0.5), bytes }
}

/** Median ms of exchange() of `diff` freshly changed documents, named: a round without its digest. */
async function namedExchanges(p: Pair, diff: number): Promise<number> {
  const times: number[] = []
  for (let r = -WARMUP; r < ROUNDS; r++) {
    const names = await edit(p, diff)
    const t0 = performance.now()
    const result = await p.a.exchange(p.runtimes[1]!.peerId, names)
    if (r >= 0) times.push(performance.now() - t0)
    if (result.pulled.length !== diff) throw new Error(`exchange pulled ${result.pulled.length} (expected ${diff})`)
  }
  return quantile(times, 0.5)
}

async function stop(p: Pair): Promise<void> {
  p.engine.stop()
  for (const r of p.runtimes) await r.stop()
}

async function hundredThousand(report: BenchReport): Promise<void> {
  const p = await pair(100_000, undefined)
  const digest = p.engine.config.digest
  const round = await rounds(p, 100)
  const floor = await namedExchanges(p, 100)
  report.add(
    'antientropy.100k_diff100.round_ms',
    round.ms,
    'ms',
    `default digest (${digest}), 2 runtimes over TCP, median of ${ROUNDS} rounds after an idle one`,
  )
  report.add(
    'antientropy.100k_diff100.bytes_pct',
    (round.bytes / p.fullBytes) * 100,
    '%',
    `${round.bytes} bytes of frames (envelopes included) of ${p.fullBytes} bytes (the full state's payload)`,
  )
  report.add(
    'antientropy.100k_diff100.ratio_vs_exchange',
    round.ms / floor,
    'x',
    `round over exchange() of the 100 differing documents by name (no digest), p50 ${floor.toFixed(2)} ms`,
  )
  const growth = await rounds(p, 1_000)
  report.add('antientropy.100k_diff1pct.round_ms', growth.ms, 'ms', `1,000 of 100,000 differ, default digest (${digest})`)
  await stop(p)

  const bloom = await pair(100_000, 'bloom')
  const b = await rounds(bloom, 100)
  report.add('antientropy.100k_diff100.bloom_round_ms', b.ms, 'ms', 'bloom digest (salted per round: built over every document), same payloads')
  report.add('antientropy.100k_diff100.bloom_bytes_pct', (b.bytes / bloom.fullBytes) * 100, '%', `${b.bytes} of ${bloom.fullBytes} bytes (full state)`)
  report.add('antientropy.100k_diff100.ratio_bloom_vs_default', b.ms / round.ms, 'x', `bloom round over the ${digest} round, same run`)
  await stop(bloom)
}

async function onePercent(report: BenchReport, keys: number, label: string): Promise<void> {
  const p = await pair(keys, undefined)
  const round = await rounds(p, keys / 100)
  report.add(`antientropy.${label}_diff1pct.round_ms`, round.ms, 'ms', `${keys / 100} of ${keys} differ, default digest (${p.engine.config.digest})`)
  await stop(p)
}

/**
 * Rounds (of the busiest peer's anti-entropy) until every peer holds every peer's increment.
 * Members trust one administrator (storage.trustedRoots) and hold one token each from it.
 */
async function convergenceRounds(peers: number): Promise<number> {
  const admin = await Ed25519Crypto.generate()
  const sim = await Simulation.create({
    seed: `converge-${peers}`,
    peers,
    faults: { minDelayMs: 1, maxDelayMs: 3 },
    runtime: { storage: { trustedRoots: [admin.peerId] } },
  })
  const now = sim.clock.now()
  const coordinators = await Promise.all(sim.runtimes.map((r) => CrdtCoordinator.attach(r)))
  for (const c of coordinators) {
    c.addCapability(
      await issueRoot(admin, { audience: c.peerId, namespace: 'crdt.*', rights: ['read', 'replicate'], notBefore: now, expiresAt: now + 24 * 3600_000 }),
    )
    c.cv('counter', gCounter)
    await c.mutate<GCounterState>('counter', (s, r) => gCounter.increment(s, r))
  }
  const engines = await Promise.all(
    sim.runtimes.map((r, i) => AntiEntropy.attach(r, coordinators[i]!, { syncInterval: 100, peerSelection: { kind: 'random', k: 3 }, bloomFilterSize: 64 })),
  )
  for (const e of engines) e.start()
  const done = () => coordinators.every((c) => gCounter.value(c.state('counter')) === peers)
  await sim.runUntil(done, 60_000, 20)
  const rounds = Math.max(...engines.map((e) => e.metrics().rounds + (e.state() === 'idle' ? 0 : 1)))
  for (const e of engines) e.stop()
  await sim.stop()
  if (!done()) return Number.NaN
  return rounds
}

/** For ad-hoc profiling (a script that imports these and runs rounds under the inspector). */
export { pair, rounds, namedExchanges, stop }

export const antiEntropyBench = {
  name: 'anti-entropy',
  run: async (report: BenchReport): Promise<void> => {
    await onePercent(report, 1_000, '1k')
    await onePercent(report, 10_000, '10k')
    await hundredThousand(report)
    for (const n of [16, 64, 256, 1024]) {
      const rounds = await convergenceRounds(n)
      report.add(`antientropy.converge.rounds_${n}`, rounds, 'rounds', `Random(3), simulated network, goal <= ${2 * Math.log2(n)}`)
    }
  },
}
