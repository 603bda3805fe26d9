// CRDT coordination figures, all measured in one run on this machine:
//   (a) a CRDT sync (pull + apply + push; the write is queued) over libp2p TCP, against a raw frame
//       ping-pong on the same transport (Libp2pNetwork send/handle) and against a bare router
//       request/reply (what every sync rides on); then the same exchange without the per-peer
//       sync actor, and throughput with several syncs in flight;
//   (b) a Yjs sync through the coordinator against y-protocols sync step 1/2 over that transport,
//       each peer logging what its document took (b its edit, a the pulled update) to LMDB
//       unawaited, as the coordinator's writes are.
// Anti-entropy has its own bench (anti-entropy.bench.ts).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import * as decoding from 'lib0/decoding'
import * as encoding from 'lib0/encoding'
import * as syncProtocol from 'y-protocols/sync'
import * as Y from 'yjs'
import { open } from 'lmdb'
import { Libp2pNetwork } from '../../effects/network/index.js'
import { pnCounter, type PNCounterState } from '../../runtime/crdt/lattices/index.js'
import { CrdtCoordinator } from '../../runtime/crdt/crdt-coordinator.js'
import { createRuntime, type Runtime } from '../../runtime/core/runtime.js'
import { quantile, sample, type BenchReport } from './report.js'
import { sharing } from '../fixtures/crdt-access.js'
import { componentsOf } from '../../runtime/core/components.js'

const SYNCS = 500
/** unmeasured pulls before each series: the first coordinator figures of a run were the JIT's warm-up */
const PULL_WARMUP = 300
const IN_FLIGHT = 8
const PEERS = 4
const CONCURRENT_SYNCS = 2_000
const PIPELINED_WARMUP = 500
const PINGS = 1_000
const YJS_SYNCS = 1_000
const YJS_WARMUP = 200

/** Echo round trip of a small frame over Libp2pNetwork (what the router's frames ride on). */
async function pingPong(): Promise<{ p50: number; samples: number[] }> {
  const [a, b] = await Promise.all([Libp2pNetwork.create({ transport: 'tcp' }), Libp2pNetwork.create({ transport: 'tcp' })])
  await Promise.all([a.start(), b.start()])
  const proto = '/bench/echo/1.0.0'
  await b.handle(proto, (frame) => void b.send(frame.from, proto, frame.bytes))
  let waiting: (() => void) | undefined
  await a.handle(proto, () => waiting?.())
  await a.connect(b.addresses()[0]!)
  const payload = new Uint8Array(64)
  const samples = await sample(
    PINGS,
    () =>
      new Promise<void>((resolve) => {
        waiting = resolve
        void a.send(b.peerId, proto, payload)
      }),
    100,
  )
  await a.stop()
  await b.stop()
  return { p50: quantile(samples, 0.5), samples }
}

/** One timed Yjs sync: an edit on b, then a pulls it; `stop` closes its peers. */
interface YjsSyncer {
  once(): Promise<void>
  check(): void
  stop(): Promise<void>
}

/**
 * y-protocols over the same transport: step 1 (state vector) → step 2 (missing update), applied,
 * and every update a document takes appended to its own peer's LMDB log without waiting (as
 * y-leveldb stores updates): b logs its local edit, a the update it pulled. That is the
 * coordinator's durability: each runtime queues (does not await) a write of what its document
 * took, b's own edit included, inside the same timed round.
 */
async function yProtocolsSyncer(): Promise<YjsSyncer> {
  const [a, b] = await Promise.all([Libp2pNetwork.create({ transport: 'tcp' }), Libp2pNetwork.create({ transport: 'tcp' })])
  await Promise.all([a.start(), b.start()])
  const dirs = [mkdtempSync(join(tmpdir(), 'aura-bench-yjs-a-')), mkdtempSync(join(tmpdir(), 'aura-bench-yjs-b-'))]
  const [dbA, dbB] = dirs.map((path) => open({ path }))
  const proto = '/bench/y-sync/1.0.0'
  const docA = new Y.Doc()
  const docB = new Y.Doc()
  let logged = 0
  let loggedB = 0
  docA.on('update', (update: Uint8Array) => void dbA!.put(['doc', logged++], update))
  docB.on('update', (update: Uint8Array) => void dbB!.put(['doc', loggedB++], update))
  await b.handle(proto, (frame) => {
    const encoder = encoding.createEncoder()
    syncProtocol.readSyncMessage(decoding.createDecoder(frame.bytes), encoder, docB, 'remote')
    void b.send(frame.from, proto, encoding.toUint8Array(encoder))
  })
  let waiting: (() => void) | undefined
  await a.handle(proto, (frame) => {
    syncProtocol.readSyncMessage(decoding.createDecoder(frame.bytes), encoding.createEncoder(), docA, 'remote')
    waiting?.()
  })
  await a.connect(b.addresses()[0]!)
  let n = 0
  return {
    once: () => {
      docB.getArray<number>('items').push([n++])
      return new Promise<void>((resolve) => {
        waiting = resolve
        const encoder = encoding.createEncoder()
        syncProtocol.writeSyncStep1(encoder, docA)
        void a.send(b.peerId, proto, encoding.toUint8Array(encoder))
      })
    },
    check: () => {
      if (docA.getArray('items').length !== docB.getArray('items').length) throw new Error('y-protocols baseline did not sync')
      if (logged !== n || loggedB !== n) throw new Error(`y-protocols baseline logged ${logged} and ${loggedB} of ${n} updates`)
    },
    stop: async () => {
      await a.stop()
      await b.stop()
      await Promise.all([dbA!.close(), dbB!.close()])
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The same through the coordinator: an edit on b's Yjs document, then `a` syncs (or exchanges) with b. */
async function coordinatorYjsSyncer(how: 'sync' | 'exchange'): Promise<YjsSyncer> {
  const { runtimes, coordinators } = await tcpPair()
  const [a, b] = coordinators as [CrdtCoordinator, CrdtCoordinator]
  a.yjs('doc')
  const docB = b.yjs('doc').doc
  const peer = runtimes[1]!.peerId
  let n = 0
  return {
    once: async () => {
      docB.getArray<number>('items').push([n++])
      await (how === 'sync' ? a.syncWithPeer(peer) : a.exchange(peer))
    },
    check: () => {
      if (a.yjs('doc').doc.getArray('items').length !== docB.getArray('items').length) throw new Error('coordinator yjs sync did not converge')
    },
    stop: async () => {
      for (const r of runtimes) await r.stop()
    },
  }
}

/**
 * p50 of each syncer, interleaved one sync each in turn after a warm-up of each: whatever else the
 * machine does in a stretch of the run weighs on all alike. Each leaves a queued LMDB write
 * behind, which commits during the next one's sample; the order rotates every round (as the
 * session bench's does), so no syncer always runs after the same one and takes its leftovers.
 */
async function p50Each(syncers: YjsSyncer[], iterations: number, warmup: number): Promise<number[]> {
  const samples = syncers.map((): number[] => [])
  for (let i = -warmup; i < iterations; i++) {
    for (let j = 0; j < syncers.length; j++) {
      const k = (i + warmup + j) % syncers.length
      const t0 = performance.now()
      await syncers[k]!.once()
      if (i >= 0) samples[k]!.push(performance.now() - t0)
    }
  }
  for (const syncer of syncers) syncer.check()
  return samples.map((s) => quantile(s, 0.5))
}

async function tcpPair(): Promise<{ runtimes: Runtime[]; coordinators: CrdtCoordinator[] }> {
  const runtimes = await Promise.all([0, 1].map(() => createRuntime({ transport: 'tcp' })))
  await runtimes[0]!.connect(runtimes[1]!.addresses()[0]!)
  const coordinators = await sharing(Promise.all(runtimes.map((r) => CrdtCoordinator.attach(r))))
  return { runtimes, coordinators }
}

/** A bare router request/reply between two runtimes: the floor under every sync. */
async function routerRoundTrip(): Promise<number> {
  const runtimes = await Promise.all([0, 1].map(() => createRuntime({ transport: 'tcp' })))
  await runtimes[0]!.connect(runtimes[1]!.addresses()[0]!)
  // Replies travel on the family's protocol, so the asking side registers the family too.
  await componentsOf(runtimes[0]!).router.register('crdt', {})
  await componentsOf(runtimes[1]!).router.register('crdt', { sync: () => ({ docs: [] }) })
  const payload = { all: true, docs: [{ name: 'counter', kind: 'cv', type: 'pn-counter', version: { a: 1 } }] }
  const samples = await sample(PINGS, () => componentsOf(runtimes[0]!).router.request(runtimes[1]!.peerId, 'crdt', { kind: 'sync', payload }, 5_000), 100)
  for (const r of runtimes) await r.stop()
  return quantile(samples, 0.5)
}

/** Pulls `a` makes of `b`'s counter, `b` incrementing before each (timed: the pull only). */
async function timedPulls(b: CrdtCoordinator, pull: () => Promise<unknown>): Promise<number[]> {
  const out: number[] = []
  for (let i = -PULL_WARMUP; i < SYNCS; i++) {
    await b.mutate<PNCounterState>('counter', (s, r) => pnCounter.increment(s, r))
    const t0 = performance.now()
    await pull()
    if (i >= 0) out.push(performance.now() - t0)
  }
  return out
}

/** Runs `count` operations with `width` in flight; returns operations per second. */
async function throughput(count: number, width: number, op: (lane: number) => Promise<unknown>): Promise<number> {
  let started = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: width }, async (_, lane) => {
      while (started < count) {
        started += 1
        await op(lane)
      }
    }),
  )
  return (count / (performance.now() - t0)) * 1000
}

async function crdtSyncOverTcp(report: BenchReport, pingP50: number): Promise<void> {
  const routerP50 = await routerRoundTrip()
  report.add('crdt.router.tcp.p50_ms', routerP50, 'ms', 'router request/reply, small payload, no coordinator')
  const { runtimes, coordinators } = await tcpPair()
  const [a, b] = coordinators as [CrdtCoordinator, CrdtCoordinator]
  a.cv('counter', pnCounter)
  b.cv('counter', pnCounter)
  const peer = runtimes[1]!.peerId
  const syncOnly = await timedPulls(b, () => a.syncWithPeer(peer))
  if (pnCounter.value(a.state('counter')) !== pnCounter.value(b.state('counter'))) throw new Error('sync bench did not converge')
  const p50 = quantile(syncOnly, 0.5)
  const total = syncOnly.reduce((x, y) => x + y, 0)
  report.add(
    'crdt.sync.tcp.p50_ms',
    p50,
    'ms',
    'PN-Counter pull+apply, LMDB write queued (not awaited: the peer still holds what we pulled), 2 runtimes, loopback TCP',
  )
  report.add('crdt.sync.tcp.p99_ms', quantile(syncOnly, 0.99), 'ms')
  report.add('crdt.sync.tcp.per_s', (SYNCS / total) * 1000, 'syncs/s', 'sequential: one sync at a time, latency-bound')
  report.add('crdt.sync.tcp.ratio_vs_pingpong', p50 / pingP50, 'x', `raw Libp2pNetwork frame echo p50 ${pingP50.toFixed(3)} ms`)
  report.add('crdt.sync.tcp.ratio_vs_router', p50 / routerP50, 'x', `bare router request p50 ${routerP50.toFixed(3)} ms`)

  // The same pull-apply-push without the per-peer sync actor (as anti-entropy runs it): the
  // difference is what the statechart round costs.
  const exchanges = await timedPulls(b, () => a.exchange(peer))
  const exchangeP50 = quantile(exchanges, 0.5)
  report.add('crdt.exchange.tcp.p50_ms', exchangeP50, 'ms', 'exchange(): same round, no sync actor')
  report.add('crdt.sync.tcp.ratio_vs_exchange', p50 / exchangeP50, 'x', 'syncWithPeer over exchange(): what the statechart round adds')

  // Several exchanges in flight to one peer, the peer changing all the while.
  const handler = b.handler('counter') as { mutate(m: (s: PNCounterState) => PNCounterState): unknown }
  const perSecond = await throughput(CONCURRENT_SYNCS, IN_FLIGHT, async () => {
    handler.mutate((s) => pnCounter.increment(s, b.peerId))
    b.changed('counter')
    await a.exchange(peer)
  })
  report.add(`crdt.exchange.tcp.per_s_${IN_FLIGHT}_in_flight`, perSecond, 'syncs/s', `${IN_FLIGHT} exchange() rounds in flight to one peer`)
  // One caller keeping IN_FLIGHT syncWithPeer calls in flight, the peer changing before each:
  // calls that arrive while a round runs share the next round (each still gets a round that
  // started after it was made), so throughput grows with pipelining, latency does not.
  const pipelinedSync = async () => {
    handler.mutate((s) => pnCounter.increment(s, b.peerId))
    b.changed('counter')
    await a.syncWithPeer(peer)
  }
  // unmeasured first: the exchanges above leave their queued writes committing
  await throughput(PIPELINED_WARMUP, IN_FLIGHT, pipelinedSync)
  const pipelined = await throughput(CONCURRENT_SYNCS, IN_FLIGHT, pipelinedSync)
  report.add(`crdt.sync.tcp.per_s_pipelined_${IN_FLIGHT}`, pipelined, 'syncs/s', `syncWithPeer, ${IN_FLIGHT} calls in flight from one caller; goal >= 5,000`)
  await a.exchange(peer)
  if (pnCounter.value(a.state('counter')) !== pnCounter.value(b.state('counter'))) throw new Error('concurrent exchanges did not converge')
  for (const r of runtimes) await r.stop()
  await syncsWithPeers(report)
}

/** One runtime syncing with several peers at once, each through its own sync actor. */
async function syncsWithPeers(report: BenchReport): Promise<void> {
  const runtimes = await Promise.all(Array.from({ length: PEERS + 1 }, () => createRuntime({ transport: 'tcp' })))
  for (const r of runtimes.slice(1)) await runtimes[0]!.connect(r.addresses()[0]!)
  const coordinators = await sharing(Promise.all(runtimes.map((r) => CrdtCoordinator.attach(r))))
  for (const c of coordinators) c.cv('counter', pnCounter)
  const [a, ...others] = coordinators as [CrdtCoordinator, ...CrdtCoordinator[]]
  const lanes = others.map((c, i) => ({
    c,
    peer: runtimes[i + 1]!.peerId,
    handler: c.handler('counter') as { mutate(m: (s: PNCounterState) => PNCounterState): unknown },
  }))
  let increments = 0
  const run = (count: number) =>
    throughput(count, PEERS, async (lane) => {
      const { c, peer, handler } = lanes[lane]!
      handler.mutate((s) => pnCounter.increment(s, c.peerId))
      increments += 1
      c.changed('counter')
      await a.syncWithPeer(peer)
    })
  await run(200)
  const perSecond = await run(CONCURRENT_SYNCS)
  report.add(`crdt.sync.tcp.per_s_${PEERS}_peers`, perSecond, 'syncs/s', `syncWithPeer with ${PEERS} peers at once, one round (pull + push) in flight per peer`)
  if (pnCounter.value(a.state('counter')) !== increments) throw new Error('multi-peer syncs did not converge')
  for (const r of runtimes) await r.stop()
}

export const crdtBench = {
  name: 'crdt',
  run: async (report: BenchReport): Promise<void> => {
    const ping = await pingPong()
    report.add('crdt.pingpong.tcp.p50_ms', ping.p50, 'ms', 'Libp2pNetwork frame echo')
    await crdtSyncOverTcp(report, ping.p50)
    const syncers = [await yProtocolsSyncer(), await coordinatorYjsSyncer('sync'), await coordinatorYjsSyncer('exchange')]
    const [yProtocols, sync, exchange] = (await p50Each(syncers, YJS_SYNCS, YJS_WARMUP)) as [number, number, number]
    for (const syncer of syncers) await syncer.stop()
    const coordinator = { sync, exchange }
    report.add(
      'crdt.yjs.ratio_vs_y_protocols',
      coordinator.sync / yProtocols,
      'x',
      `coordinator p50 ${coordinator.sync.toFixed(3)} ms vs y-protocols step1/2 p50 ${yProtocols.toFixed(3)} ms`,
    )
    report.add(
      'crdt.yjs.exchange_ratio_vs_y_protocols',
      coordinator.exchange / yProtocols,
      'x',
      `exchange() (no sync actor) p50 ${coordinator.exchange.toFixed(3)} ms`,
    )
  },
}
