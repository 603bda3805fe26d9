// Storage coordination cost: raw lmdb-js against the StorageCoordinator (capability check through
// the cached CapabilityVerifier, the operation chart, LWW records with hybrid timestamps) on the
// same data, same batch size, same durability (one synchronous transaction per batch); single-op
// latency; and replication of 10,000 keys to 2 peers over TCP loopback (all-ack).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { open } from 'lmdb'
import { Ed25519Crypto } from '../../effects/crypto/ed25519.js'
import { LmdbStorage } from '../../effects/storage/index.js'
import { SystemClock } from '../../effects/time/index.js'
import { createRuntime, type Runtime } from '../../runtime/core/runtime.js'
import { ReplicationCoordinator } from '../../runtime/storage/replication-coordinator.js'
import { StorageCoordinator } from '../../runtime/storage/storage-coordinator.js'
import { quantile, sample, type BenchReport } from './report.js'
import { componentsOf } from '../../runtime/core/components.js'

const BATCH = 1_000
const BATCHES = 20
// Medians over several rounds after one untimed warm-up round (JIT, first namespace and capability
// cache), so one noisy round on a shared machine does not decide a ratio.
const ROUNDS = 11
const VALUE = new Uint8Array(100).fill(7)
const SINGLE_OPS = 1_000
const REPLICATED_KEYS = 10_000
const HOUR = 3_600_000

const median = (xs: number[]): number => quantile(xs, 0.5)
const keyOf = (round: number, batch: number, i: number) => `k${round}-${String(batch).padStart(3, '0')}-${String(i).padStart(5, '0')}`

async function timed(fn: () => Promise<void> | void): Promise<number> {
  const start = performance.now()
  await fn()
  return performance.now() - start
}

/** Total time of each side over all batches, the sides taking turns at going first. */
async function interleaved(batches: string[][], sides: Array<(keys: string[]) => unknown>): Promise<number[]> {
  const totals = sides.map(() => 0)
  for (let b = 0; b < batches.length; b++) {
    for (let turn = 0; turn < sides.length; turn++) {
      const side = (b + turn) % sides.length
      totals[side]! += await timed(async () => {
        await sides[side]!(batches[b]!)
      })
    }
  }
  return totals
}

async function localFigures(report: BenchReport): Promise<void> {
  const rawDir = mkdtempSync(join(tmpdir(), 'aura-bench-raw-'))
  const coordDir = mkdtempSync(join(tmpdir(), 'aura-bench-coord-'))
  const env = open({ path: rawDir, maxDbs: 8 })
  // the encoder LmdbStorage uses, so both sides encode the same way
  const rawOptions = { name: 'bench', encoder: { structuredClone: true } }
  const raw = env.openDB(rawOptions)
  const storage = new LmdbStorage({ path: coordDir })
  const crypto = await Ed25519Crypto.generate()
  const clock = new SystemClock()
  const coordinator = new StorageCoordinator(crypto.peerId, storage, { crypto, clock })
  const cap = await coordinator.grant({ audience: crypto.peerId, namespace: 'bench', rights: ['read', 'write'], expiresAt: Date.now() + HOUR })
  try {
    const rawPut: number[] = []
    const coordPut: number[] = []
    const effectPut: number[] = []
    const rawGet: number[] = []
    const coordGet: number[] = []
    for (let round = -1; round < ROUNDS; round++) {
      const batches = Array.from({ length: BATCHES }, (_, b) => Array.from({ length: BATCH }, (_, i) => keyOf(round, b, i)))
      // the record the coordinator stores: the writer by its writer-table index (storage-meta.ts)
      const stamp = [Date.now(), 0, 0, 0]
      // Sides take turns batch by batch, each going first in turn, so a slow stretch of the
      // disk (every batch ends in an fsync) lands on all of them alike.
      const putMs = await interleaved(batches, [
        (keys: string[]) => env.transactionSync(() => keys.forEach((k) => raw.putSync(k, VALUE))),
        (keys: string[]) =>
          coordinator.storeMany(
            'bench',
            keys.map((key) => ({ key, data: VALUE })),
            cap,
          ),
        (keys: string[]) => storage.batch(keys.map((key) => ({ type: 'put' as const, namespace: 'ns.effect', key, value: [...stamp, VALUE] }))),
      ])
      const getMs = await interleaved(batches, [
        (keys: string[]) => void keys.forEach((k) => raw.get(k)),
        (keys: string[]) => coordinator.retrieveMany('bench', keys, cap),
      ])
      if (round >= 0) {
        rawPut.push(putMs[0]!)
        coordPut.push(putMs[1]!)
        effectPut.push(putMs[2]!)
        rawGet.push(getMs[0]!)
        coordGet.push(getMs[1]!)
      }
    }
    const ops = BATCH * BATCHES
    // ratios are paired: each round's sides ran side by side, so the median of per-round ratios
    const ratio = (xs: number[], base: number[]) => median(xs.map((x, i) => x / base[i]!))
    report.add('storage.put.ratio_vs_lmdb', ratio(coordPut, rawPut), 'x', `batches of ${BATCH}, 100 B values; goal <= 1.5`)
    report.add(
      'storage.put.per_s',
      (ops / median(coordPut)) * 1000,
      'ops/s',
      `coordinator storeMany; raw lmdb-js ${Math.round((ops / median(rawPut)) * 1000)} ops/s`,
    )
    report.add(
      'storage.put.ratio_vs_effect',
      ratio(coordPut, effectPut),
      'x',
      'coordinator storeMany vs LmdbStorage.batch of the same records: what the coordinator adds',
    )
    report.add('storage.get.ratio_vs_lmdb', ratio(coordGet, rawGet), 'x', `retrieveMany of ${BATCH} vs raw get`)

    let n = 0
    const puts = await sample(SINGLE_OPS, () => coordinator.storeInNamespace('bench', `single-${n++}`, VALUE, cap))
    let m = 0
    const gets = await sample(SINGLE_OPS, () => coordinator.retrieve('bench', `single-${m++ % n}`, cap))
    report.add('storage.op.p99_ms', quantile(puts, 0.99), 'ms', `single durable store; p50 ${quantile(puts, 0.5).toFixed(3)} ms`)
    report.add('storage.op.p50_ms', quantile(puts, 0.5), 'ms', 'single durable store')
    report.add('storage.get.p99_ms', quantile(gets, 0.99), 'ms', `single retrieve; p50 ${quantile(gets, 0.5).toFixed(3)} ms`)
  } finally {
    await env.close()
    await storage.close()
    rmSync(rawDir, { recursive: true, force: true })
    rmSync(coordDir, { recursive: true, force: true })
  }
}

async function replicationFigure(report: BenchReport): Promise<void> {
  const dirs: string[] = []
  const runtimes: Runtime[] = []
  try {
    const nodes: Array<{ runtime: Runtime; storage: StorageCoordinator; replication: ReplicationCoordinator }> = []
    for (let i = 0; i < 3; i++) {
      const dataDir = mkdtempSync(join(tmpdir(), 'aura-bench-repl-'))
      dirs.push(dataDir)
      const runtime = await createRuntime({ dataDir, maxFrameBytes: 4 * 1024 * 1024 })
      runtimes.push(runtime)
      const owner = nodes[0]?.runtime.peerId ?? runtime.peerId
      const storage = new StorageCoordinator(runtime.peerId, componentsOf(runtime).storage, {
        crypto: componentsOf(runtime).crypto,
        clock: componentsOf(runtime).clock,
        trustedRoots: [owner],
      })
      const replication = new ReplicationCoordinator({
        storage,
        router: componentsOf(runtime).router,
        clock: componentsOf(runtime).clock,
        random: componentsOf(runtime).random,
        defaultTimeoutMs: 60_000,
      })
      await storage.attach(componentsOf(runtime))
      await replication.attach()
      nodes.push({ runtime, storage, replication })
    }
    const [sender, ...receivers] = nodes
    for (const r of receivers) await sender!.runtime.connect(r.runtime.addresses()[0]!)
    const cap = await sender!.storage.grant({
      audience: sender!.runtime.peerId,
      namespace: 'bench',
      rights: ['write', 'replicate'],
      expiresAt: Date.now() + HOUR,
    })
    const keys = Array.from({ length: REPLICATED_KEYS }, (_, i) => `r${String(i).padStart(6, '0')}`)
    for (let i = 0; i < keys.length; i += BATCH)
      await sender!.storage.storeMany(
        'bench',
        keys.slice(i, i + BATCH).map((key) => ({ key, data: VALUE })),
        cap,
      )
    const ms = await timed(async () => {
      await sender!.replication.replicateToPeers(
        'bench',
        keys,
        receivers.map((r) => r.runtime.peerId),
        { kind: 'all' },
        { capability: cap },
      )
    })
    report.add(
      'replication.keys_per_s',
      (REPLICATED_KEYS / ms) * 1000,
      'keys/s',
      `${REPLICATED_KEYS} keys (100 B) to 2 peers, all-ack, TCP loopback; ${ms.toFixed(0)} ms`,
    )
  } finally {
    for (const r of runtimes) await r.stop()
    for (const d of dirs) rmSync(d, { recursive: true, force: true })
  }
}

export const storageBench = {
  name: 'storage',
  run: async (report: BenchReport) => {
    await localFigures(report)
    await replicationFigure(report)
  },
}
