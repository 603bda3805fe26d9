// One seeded chaos run in the simulator: 5 peers on the simulated network (loss, duplication,
// reordering, delay), partitions that heal, peers that crash and come back, while clients write
// replicated storage keys under every policy, bump a PN-Counter, add to an OR-Set and run
// sessions. Then every fault heals, anti-entropy and repair run until the cluster quiesces, and
// the history is checked (history.ts). The same seed replays the same run.
//
// The crash is a real one (Simulation.crash): the peer's runtime dies with everything in its
// memory, its clients die with it (an operation in flight there has an unknown outcome: it is
// recorded as not acknowledged), and only what it had written to its disk survives. The return is
// a real restart (Simulation.restart): a new runtime over the same disk, to which `attachPeer`
// (the onStart hook) attaches the CRDT coordinator, anti-entropy, repair and the session handler
// again, as it did on the first start.

import { SeededRandom } from '../../effects/random/index.js'
import { orSet, pnCounter, type ORSetState, type PNCounterState } from '../../runtime/crdt/lattices/index.js'
import type { CapabilityToken } from '../../runtime/core/capability.js'
import { AntiEntropy } from '../../runtime/anti-entropy/anti-entropy.js'
import { CrdtCoordinator } from '../../runtime/crdt/crdt-coordinator.js'
import { Simulation } from '../../runtime/testing/simulation.js'
import type { Runtime } from '../../runtime/core/runtime.js'
import { History, check, divergence, type Observed, type Operation, type WritePolicy } from './history.js'
import { greeting } from '../fixtures/greeting.js'

export interface RunOptions {
  peers?: number
  /** ms of virtual time during which clients act and faults strike */
  activeMs?: number
  operations?: number
  /** ms of virtual time allowed for quiescence after healing */
  settleMs?: number
}

export interface RunReport {
  seed: number
  operations: number
  acknowledged: number
  violations: string[]
  /** virtual ms the cluster needed to converge after healing (or settleMs if it never did) */
  convergedAfterMs: number
}

const NAMESPACE = 'chaos'
const DAY = 24 * 3_600_000

interface Peer {
  runtime: Runtime
  crdt: CrdtCoordinator
  antiEntropy: AntiEntropy
  /** this peer's own write capability, and the replicate capability each other peer gave it */
  own: CapabilityToken
  toPeers: Record<string, CapabilityToken>
}

export async function simulatedRun(seed: number, options: RunOptions = {}): Promise<RunReport> {
  const n = options.peers ?? 5
  const activeMs = options.activeMs ?? 3_000
  const operations = options.operations ?? 60
  const settleMs = options.settleMs ?? 30_000
  const random = new SeededRandom(`chaos/${seed}`)
  // peers[i] is peer i's current incarnation: onStart replaces it on a restart
  const peers: Peer[] = []
  const sim = await Simulation.create({
    seed,
    peers: n,
    faults: { dropRate: 0.1, duplicateRate: 0.05, reorder: true, minDelayMs: 1, maxDelayMs: 40 },
    // a short verdict grace: a participant whose leader died for good ends (timeout) within the settle window
    runtime: { protocols: [greeting], sessions: { autoJoin: true, verdictGraceMs: 5_000 } },
    onStart: async (runtime, index, { simulation }) => void (peers[index] = await attachPeer(simulation, runtime, peers[index])),
  })
  const history = new History()
  try {
    const ids = sim.runtimes.map((r) => r.peerId)
    const crashed = new Set<number>()
    const clients = new Clients(history, n)
    const restarts = new Map<number, Promise<void>>()
    // One restart per crash, whether the timer or the end of the active phase asks first.
    const comeBack = (index: number): Promise<void> => {
      let restart = restarts.get(index)
      if (restart === undefined) {
        restart = sim.restart(index).then(() => {
          crashed.delete(index)
          restarts.delete(index)
        })
        restarts.set(index, restart)
      }
      return restart
    }

    // Faults: a partition or two that heal, and a crash with a restart, at seeded times.
    for (let i = 0; i < 2; i++) {
      const at = random.int(activeMs)
      const side = random.shuffle(ids).slice(0, 1 + random.int(n - 1))
      sim.clock.setTimeout(() => sim.hub.partition([side]), at)
      sim.clock.setTimeout(() => sim.hub.heal(), at + 200 + random.int(1_500))
    }
    // In half the runs the crashed peer never returns: the survivors must converge without it.
    const victim = random.int(n)
    const crashAt = random.int(activeMs)
    const gone = random.int(2) === 0 ? victim : undefined
    sim.clock.setTimeout(() => {
      crashed.add(victim)
      sim.crash(victim)
      clients.crashed(victim)
    }, crashAt)
    if (gone === undefined) sim.clock.setTimeout(() => void comeBack(victim), crashAt + 300 + random.int(1_500))

    // Clients: operations at seeded times, each recorded with its outcome.
    for (let id = 0; id < operations; id++) {
      const at = random.int(activeMs)
      const peer = random.int(n)
      const draw = random.int(10)
      sim.clock.setTimeout(() => {
        if (crashed.has(peer)) return // a crashed peer has no clients
        void act(id, draw, peer, peers, random, history, clients)
      }, at)
    }

    await sim.run(activeMs + 2_000)
    sim.hub.heal()
    for (const index of [...crashed]) if (index !== gone) await comeBack(index)
    const live = peers.filter((_, i) => i !== gone)
    if (gone !== undefined) for (const p of live) p.crdt.forgetPeer(ids[gone]!)
    for (const a of live)
      for (const b of live)
        if (a !== b && !a.runtime.connectedPeers().includes(b.runtime.peerId)) await a.runtime.connect(b.runtime.addresses()[0]!).catch(() => undefined)
    for (const p of live) p.antiEntropy.start()

    const started = sim.clock.now()
    let converged = false
    // Repairs owed to a peer gone for good are never due; every other one is.
    const owed = (p: Peer) => p.runtime.replication.pendingRepairs().filter((r) => gone === undefined || r.peer !== ids[gone]).length
    while (!converged && sim.clock.now() - started < settleMs) {
      await sim.run(500)
      converged = divergence(await observe(peers, gone)).length === 0 && live.every((p) => owed(p) === 0)
    }
    const convergedAfterMs = sim.clock.now() - started
    const observed = await observe(peers, gone)
    const violations = check(history, observed).map((v) => `seed ${seed}: ${v}`)
    for (const p of live) {
      const left = owed(p)
      if (left > 0) violations.push(`seed ${seed}: ${left} repair(s) still pending on ${p.runtime.peerId.slice(-6)}`)
    }
    const acknowledged = history.operations.filter((o) => o.kind !== 'session' && o.ok).length
    return { seed, operations: history.operations.length, acknowledged, violations, convergedAfterMs }
  } finally {
    await sim.stop()
  }
}

/**
 * Attaches the harness's services to a runtime: on its first start (no `before`), issuing its
 * capabilities; on a restart, to the new runtime, reusing them. CRDT capabilities were persisted
 * by the coordinator (addCapability) and come back with it; the storage ones (own, toPeers) are
 * tokens the harness keeps. The peer's identity is the same, so every token still holds.
 */
async function attachPeer(sim: Simulation, runtime: Runtime, before: Peer | undefined): Promise<Peer> {
  const crdt = await CrdtCoordinator.attach(runtime, { requestTimeoutMs: 300 })
  crdt.cv('hits', pnCounter)
  crdt.cv('tags', orSet)
  const { own, toPeers } = before ?? (await issueCapabilities(sim, runtime, crdt))
  const antiEntropy = await AntiEntropy.attach(runtime, crdt, { syncInterval: 250, peerSelection: { kind: 'random', k: 2 }, requestTimeoutMs: 400 })
  runtime.sessions.invitations$.subscribe((invite) => void runtime.sessions.executeProtocol(invite.sessionId, invite.protocol).catch(() => undefined))
  runtime.replication.repairOn(antiEntropy.rounds$, { capability: toPeers, timeoutMs: 1_000 })
  runtime.replication.reconcileOn(antiEntropy.progress$, { namespaces: [NAMESPACE], capability: toPeers, localCapability: own, timeoutMs: 2_000 })
  return { runtime, crdt, antiEntropy, own, toPeers }
}

/** First start: every other peer lets this one read and replicate its CRDT collection and replicate to its namespace. */
async function issueCapabilities(sim: Simulation, runtime: Runtime, crdt: CrdtCoordinator): Promise<Pick<Peer, 'own' | 'toPeers'>> {
  const now = sim.clock.now()
  const own = await runtime.storage.grant({
    audience: runtime.peerId,
    namespace: NAMESPACE,
    rights: ['read', 'write', 'replicate'],
    notBefore: now,
    expiresAt: now + DAY,
  })
  const toPeers: Record<string, CapabilityToken> = {}
  for (const other of sim.runtimes) {
    if (other === runtime) continue
    crdt.addCapability(
      await other.storage.grant({ audience: runtime.peerId, namespace: crdt.collection, rights: ['read', 'replicate'], notBefore: now, expiresAt: now + DAY }),
    )
    toPeers[other.peerId] = await other.storage.grant({
      audience: runtime.peerId,
      namespace: NAMESPACE,
      rights: ['replicate'],
      notBefore: now,
      expiresAt: now + DAY,
    })
  }
  return { own, toPeers }
}

/**
 * Client operations in flight, per peer. A client dies with its process: at a crash, each
 * operation in flight on that peer is recorded as not acknowledged (its outcome is unknown — it
 * may or may not have reached the disk), and whatever it settles to later is ignored.
 */
class Clients {
  private readonly open: Array<Map<number, Operation>>

  constructor(
    private readonly history: History,
    peers: number,
  ) {
    this.open = Array.from({ length: peers }, () => new Map())
  }

  /** `unknown` is what is recorded if the peer crashes before the operation settles. */
  begin(peer: number, id: number, unknown: Operation): void {
    this.open[peer]!.set(id, unknown)
  }

  settle(peer: number, id: number, operation: Operation): void {
    if (this.open[peer]!.delete(id)) this.history.record(operation)
  }

  crashed(peer: number): void {
    for (const unknown of this.open[peer]!.values()) this.history.record(unknown)
    this.open[peer]!.clear()
  }
}

const POLICIES: WritePolicy[] = [{ kind: 'all' }, { kind: 'quorum', k: 2 }, { kind: 'async' }]

async function act(id: number, draw: number, index: number, peers: Peer[], random: SeededRandom, history: History, clients: Clients): Promise<void> {
  const peer = peers[index]!
  const others = peers.map((_, i) => i).filter((i) => i !== index)
  if (draw < 5) {
    // Unique keys check acknowledged durability; shared keys check LWW convergence.
    const key = draw < 4 ? `k${id}` : `shared${id % 3}`
    const value = `v${id}`
    const policy = POLICIES[random.int(POLICIES.length)]!
    clients.begin(index, id, { kind: 'write', peer: index, key, value, policy, targets: others, ok: false, acked: [] })
    let ok = false
    let acked: number[] = []
    try {
      await peer.runtime.storage.storeInNamespace(NAMESPACE, key, value, peer.own)
      const result = await peer.runtime.replication.replicateToPeers(
        NAMESPACE,
        [key],
        others.map((i) => peers[i]!.runtime.peerId),
        policy,
        { capability: peer.toPeers, timeoutMs: 800 },
      )
      ok = true
      acked = result.acked.map((p) => peers.findIndex((x) => x.runtime.peerId === p))
    } catch {
      ok = false
    }
    clients.settle(index, id, { kind: 'write', peer: index, key, value, policy, targets: others, ok, acked })
  } else if (draw < 7) {
    clients.begin(index, id, { kind: 'increment', peer: index, by: 1, ok: false })
    const ok = await peer.crdt
      .mutate<PNCounterState>('hits', (s, r) => pnCounter.increment(s, r, 1))
      .then(
        () => true,
        () => false,
      )
    clients.settle(index, id, { kind: 'increment', peer: index, by: 1, ok })
  } else if (draw < 9) {
    const element = `e${id}`
    clients.begin(index, id, { kind: 'add', peer: index, element, ok: false })
    const ok = await peer.crdt
      .mutate<ORSetState>('tags', (s, r) => orSet.add(s, r, element))
      .then(
        () => true,
        () => false,
      )
    clients.settle(index, id, { kind: 'add', peer: index, element, ok })
  } else {
    const partner = others[random.int(others.length)]!
    const roster = [
      { peerId: peer.runtime.peerId, role: 'client' },
      { peerId: peers[partner]!.runtime.peerId, role: 'server' },
    ]
    try {
      const session = await peer.runtime.sessions.createSession('greeting', roster, { timeoutMs: 1_000, protocol: 'greeting' })
      history.record({ kind: 'session', peer: index, sessionId: session.id, peers: [index, partner] })
      await session.executeProtocol().catch(() => undefined)
    } catch {
      // not created (invite undeliverable before its deadline): nothing to check
    }
  }
}

/** What every replica holds; a peer gone for good is marked not live (it is owed nothing). */
async function observe(peers: Peer[], gone: number | undefined): Promise<Observed> {
  const storage: Array<Map<string, unknown>> = []
  for (const p of peers) {
    const listed = await p.runtime.storage.list(NAMESPACE, '', p.own).catch(() => [])
    storage.push(new Map(listed.map((e) => [String(e.key), e.value])))
  }
  const sessions: Observed['sessions'] = new Map()
  for (const [peer, p] of peers.entries()) {
    for (const view of p.runtime.sessions.list()) {
      const views = sessions.get(view.sessionId) ?? []
      views.push({ peer, status: view.status, outcome: view.outcome?.kind })
      sessions.set(view.sessionId, views)
    }
  }
  return {
    live: peers.map((_, i) => i !== gone),
    storage,
    counters: peers.map((p) => pnCounter.value(p.crdt.state<PNCounterState>('hits'))),
    sets: peers.map((p) => orSet.values(p.crdt.state<ORSetState>('tags')).map(String).sort()),
    sessions,
  }
}
