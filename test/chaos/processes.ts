// The real-process chaos campaign: 5 peer processes on TCP, each with its own LMDB folder, write
// replicated keys under the quorum and all policies and bump a PN-Counter, while seeded SIGKILLs
// take peers down and restarts bring them back from their folders. Then the killing stops, every
// peer runs, and the cluster is left to repair and reconcile; the history of acknowledged
// operations is checked against what each peer holds: lost_acked_writes and diverged must be 0.

import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { SeededRandom } from '../../effects/random/index.js'

const PEER = fileURLToPath(new URL('../fixtures/cluster-peer-process.ts', import.meta.url))

export interface ProcessCampaignOptions {
  peers?: number
  /** acknowledged writes to reach before the killing stops */
  keys?: number
  seed?: number
  /** ms allowed for the cluster to converge once every peer runs again */
  settleMs?: number
}

export interface ProcessCampaignReport {
  seed: number
  ackedWrites: number
  ackedIncrements: number
  kills: number
  lostAckedWrites: number
  diverged: number
  counterMismatch: number
  convergedAfterMs: number
  violations: string[]
  ms: number
}

type Message = Record<string, unknown> & { type: string }

interface Peer {
  index: number
  port: number
  dir: string
  peerId: string
  child: ChildProcess | undefined
  listeners: Set<(m: Message) => void>
  /** grants this peer issued to each other peer (kept by the parent, re-sent after restarts) */
  grants: { storage: Record<string, unknown>; crdt: Record<string, unknown> } | undefined
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms))

export async function processCampaign(options: ProcessCampaignOptions = {}): Promise<ProcessCampaignReport> {
  const started = Date.now()
  const n = options.peers ?? 5
  const target = options.keys ?? 2_000
  const seed = options.seed ?? 1
  const random = new SeededRandom(`processes/${seed}`)
  const peers: Peer[] = []
  for (let index = 0; index < n; index++) {
    peers.push({
      index,
      port: await freePort(),
      dir: mkdtempSync(join(tmpdir(), 'aura-chaos-')),
      peerId: '',
      child: undefined,
      listeners: new Set(),
      grants: undefined,
    })
  }
  const acked = new Map<string, { value: string; origin: number }>()
  let increments = 0
  let kills = 0

  const waitFor = (peer: Peer, type: string) =>
    new Promise<Message>((resolve, reject) => {
      const child = peer.child
      const exited = () => {
        peer.listeners.delete(listener)
        reject(new Error(`peer ${peer.index} exited`))
      }
      const listener = (m: Message) => {
        if (m.type !== type) return
        peer.listeners.delete(listener)
        child?.off('exit', exited)
        resolve(m)
      }
      peer.listeners.add(listener)
      child?.once('exit', exited)
    })

  const start = async (peer: Peer): Promise<void> => {
    const child = fork(PEER, ['--data', peer.dir, '--port', String(peer.port), '--index', String(peer.index)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    })
    peer.child = child
    child.on('message', (m: Message) => {
      if (m.type === 'ack' && m.op === 'write') acked.set(m.key as string, { value: m.value as string, origin: peer.index })
      if (m.type === 'ack' && m.op === 'increment') increments += 1
      for (const listener of [...peer.listeners]) listener(m)
    })
    child.once('exit', () => {
      if (peer.child === child) peer.child = undefined
    })
    const ready = await waitFor(peer, 'ready')
    peer.peerId = ready.peerId as string
  }

  /** Introduces `peer` to the others (it grants them capabilities) and hands it what they granted it. */
  const introduce = async (peer: Peer): Promise<void> => {
    const roster = peers.map((p) => ({ peerId: p.peerId, address: `/ip4/127.0.0.1/tcp/${p.port}` }))
    const granted = waitFor(peer, 'grants')
    peer.child!.send({ type: 'peers', peers: roster })
    peer.grants = (await granted) as unknown as Peer['grants']
  }
  const equip = (peer: Peer): void => {
    const storage: Record<string, unknown> = {}
    const crdt: unknown[] = []
    for (const other of peers) {
      if (other === peer || !other.grants) continue
      storage[other.peerId] = other.grants.storage[peer.peerId]
      crdt.push(other.grants.crdt[peer.peerId])
    }
    peer.child?.send({ type: 'tokens', storage, crdt })
  }

  try {
    await Promise.all(peers.map(start))
    for (const peer of peers) await introduce(peer)
    for (const peer of peers) equip(peer)

    // Workload: each live peer writes batches (policies alternate) and increments, one batch at a time.
    let writing = true
    const workload = peers.map(async (peer) => {
      for (let batch = 0; writing; batch++) {
        if (!peer.child) {
          await sleep(50)
          continue
        }
        const policy = batch % 2 === 0 ? { kind: 'quorum', k: 2 } : { kind: 'all' }
        try {
          const done = waitFor(peer, 'written')
          peer.child.send({ type: 'write', count: 10, policy })
          peer.child.send({ type: 'increment', count: 2 })
          await done
        } catch {
          await sleep(50) // killed mid-batch
        }
      }
    })

    // Killer: seeded SIGKILLs of one peer at a time, each brought back from its folder; at least
    // one, however fast the workload reaches its target (the writes keep going until then).
    while (acked.size < target || kills === 0) {
      await sleep(800 + random.int(1_200))
      if (acked.size >= target && kills > 0) break
      const victim = peers[random.int(n)]!
      if (!victim.child) continue
      victim.child.kill('SIGKILL')
      kills += 1
      await new Promise((r) => (victim.child ? victim.child.once('exit', r) : r(undefined)))
      await sleep(300 + random.int(1_500))
      await start(victim)
      await introduce(victim)
      for (const peer of peers) equip(peer)
    }
    writing = false
    await Promise.all(workload)

    // Quiescence: poll every peer's view until they agree and nothing is left to repair.
    const settleStarted = Date.now()
    const settleMs = options.settleMs ?? 90_000
    let dumps: Message[] = []
    let violations: string[] = []
    while (Date.now() - settleStarted < settleMs) {
      await sleep(1_000)
      dumps = await Promise.all(
        peers.map((p) => {
          const d = waitFor(p, 'dump')
          p.child!.send({ type: 'dump' })
          return d
        }),
      )
      violations = judge(dumps, acked, increments)
      if (violations.length === 0) break
    }
    const convergedAfterMs = Date.now() - settleStarted
    const records = dumps.map((d) => new Map(d.records as Array<[string, unknown]>))
    const lostAckedWrites = [...acked.keys()].filter((key) => records.some((r) => !r.has(key))).length
    const diverged = records.filter((r) => !sameRecords(r, records[0]!)).length
    const counterMismatch = dumps.filter((d) => d.counter !== increments && (d.counter as number) < increments).length
    return {
      seed,
      ackedWrites: acked.size,
      ackedIncrements: increments,
      kills,
      lostAckedWrites,
      diverged,
      counterMismatch,
      convergedAfterMs,
      violations,
      ms: Date.now() - started,
    }
  } finally {
    for (const peer of peers) peer.child?.kill('SIGKILL')
    await sleep(200)
    for (const peer of peers) rmSync(peer.dir, { recursive: true, force: true })
  }
}

function sameRecords(a: Map<string, unknown>, b: Map<string, unknown>): boolean {
  if (a.size !== b.size) return false
  for (const [k, v] of a) if (b.get(k) !== v) return false
  return true
}

function judge(dumps: Message[], acked: Map<string, { value: string }>, increments: number): string[] {
  const out: string[] = []
  const records = dumps.map((d) => new Map(d.records as Array<[string, unknown]>))
  for (const [i, held] of records.entries()) {
    const missing = [...acked].filter(([key, { value }]) => held.get(key) !== value)
    if (missing.length > 0) out.push(`peer ${i} lacks ${missing.length} acknowledged write(s), e.g. ${missing[0]![0]}`)
    if (!sameRecords(held, records[0]!)) out.push(`peer ${i} holds ${held.size} records, peer 0 ${records[0]!.size}: replicas differ`)
    const counter = dumps[i]!.counter as number
    if (counter < increments) out.push(`peer ${i} counts ${counter} of ${increments} acknowledged increments`)
    if ((dumps[i]!.pending as number) > 0) out.push(`peer ${i} still has ${String(dumps[i]!.pending)} repair(s) pending`)
  }
  const counters = new Set(dumps.map((d) => d.counter))
  if (counters.size > 1) out.push(`counters differ: ${[...counters].join(', ')}`)
  return out
}
