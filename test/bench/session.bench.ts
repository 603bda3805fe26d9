// Foundation figures: a session round trip over libp2p TCP against a raw libp2p stream
// ping-pong on the same machine, and a runtime-routed local message against raw actor.send.

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { yamux } from '@libp2p/yamux'
import { lpStream } from '@libp2p/utils'
import { createLibp2p } from 'libp2p'
import { open } from 'lmdb'
import { assign, createActor, setup } from 'xstate'
import { z } from 'zod'
import { createRuntime, type Runtime } from '../../runtime/core/runtime.js'
import { defineChoreography, type ChoreographyDefinition } from '../../runtime/sessions/choreography.js'
import { quantile, sample, type BenchReport } from './report.js'
import { componentsOf } from '../../runtime/core/components.js'

const SESSIONS = 200
const CONCURRENT = 100
const PINGS = 2_000
const LOCAL_MESSAGES = 50_000

async function rawPingPongMs(): Promise<number> {
  const make = () =>
    createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
  const [a, b] = await Promise.all([make(), make()])
  await b.handle('/bench/ping/1.0.0', async (stream) => {
    const lp = lpStream(stream)
    for (;;) {
      const message = await lp.read().catch(() => undefined)
      if (!message) return
      await lp.write(message.subarray())
    }
  })
  const lp = lpStream(await a.dialProtocol(b.getMultiaddrs()[0]!, '/bench/ping/1.0.0'))
  const payload = new Uint8Array(64)
  const samples = await sample(
    PINGS,
    async () => {
      await lp.write(payload)
      await lp.read()
    },
    200,
  )
  await a.stop()
  await b.stop()
  return quantile(samples, 0.5)
}

interface RawSession {
  once: () => Promise<void>
  stop: () => Promise<void>
}

type Db = ReturnType<typeof open>

/** Where a hand-written session may write its state: before it answers, or in the background. */
type FloorPoint = 'created' | 'invited' | 'joined' | 'pinged' | 'done' | 'ponged' | 'completed'
interface Durability {
  awaited: ReadonlySet<FloorPoint>
  clientCreated: 'awaited' | 'queued'
  serverCompleted: 'awaited' | 'queued'
}

const floorMessage = (label: string, n: number) => new TextEncoder().encode(JSON.stringify({ label, n, session: 'x'.repeat(32) }))

/**
 * A 2-party session written by hand: two libp2p nodes with one raw TCP stream (noise, yamux)
 * between them and an LMDB environment each. The frames are invite, join, ping, two answers
 * (`answers`: the server's second and third frame) and the verdict; `durability` says at which
 * points a put is awaited, and whether the client's first and the server's last state are
 * written awaited or in the background. No envelopes, no validation, no actors.
 */
async function handWrittenSession(protocol: string, answers: readonly [string, string], durability: Durability): Promise<RawSession> {
  const make = () =>
    createLibp2p({ addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] }, transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
  const [a, b] = await Promise.all([make(), make()])
  const dirs = [mkdtempSync(join(tmpdir(), 'aura-floor-')), mkdtempSync(join(tmpdir(), 'aura-floor-'))]
  const [clientDb, serverDb] = dirs.map((path) => open({ path })) as [Db, Db]
  const put = (db: Db, key: string, point: FloorPoint) => (durability.awaited.has(point) ? db.put(key, point) : undefined)
  const write = (db: Db, key: string, point: FloorPoint, how: 'awaited' | 'queued') =>
    how === 'awaited' ? db.put(key, point) : void db.put(key, point).catch(() => undefined)
  await b.handle(protocol, async (stream) => {
    const lp = lpStream(stream)
    for (let n = 0; ; n++) {
      if (!(await lp.read().catch(() => undefined))) return // invite (none: the client is gone)
      const key = `s${n}`
      await put(serverDb, key, 'invited')
      await lp.write(floorMessage('join', n))
      await lp.read() // ping
      await put(serverDb, key, 'pinged')
      await lp.write(floorMessage(answers[0], n))
      await put(serverDb, key, 'done')
      await lp.write(floorMessage(answers[1], n))
      await lp.read() // verdict
      await write(serverDb, key, 'completed', durability.serverCompleted)
    }
  })
  const lp = lpStream(await a.dialProtocol(b.getMultiaddrs()[0]!, protocol))
  let n = 0
  return {
    once: async () => {
      const key = `c${++n}`
      await write(clientDb, key, 'created', durability.clientCreated)
      await lp.write(floorMessage('invite', n))
      await lp.read() // join
      await put(clientDb, key, 'joined')
      await lp.write(floorMessage('ping', n))
      await lp.read() // the server's first answer
      await put(clientDb, key, 'ponged')
      await lp.read() // its second
      await clientDb.put(key, 'completed') // the verdict is durable before it is given
      await lp.write(floorMessage('verdict', n))
    },
    stop: async () => {
      await a.stop()
      await b.stop()
      for (const db of [clientDb, serverDb]) await db.close()
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
    },
  }
}

/**
 * The floor under a 2-party session: the frames the runtime exchanges for one (the server's
 * answers to the ping are its ack and the pong carrying its done report), with the runtime's
 * durability: an awaited put wherever the runtime must be durable before it acknowledges (the
 * invitee before its join, the receiver of the ping before its ack, the leader's verdict before
 * it is given), and a put nobody awaits for each state the runtime writes later (the leader's
 * new session, the participant's end).
 */
const sessionFloor = () =>
  handWrittenSession('/bench/floor/1.0.0', ['ack', 'pong'], { awaited: new Set(['invited', 'pinged']), clientCreated: 'queued', serverCompleted: 'queued' })

/**
 * The same exchange (the answers being pong and report) with an awaited put at every step on
 * both sides, a hand-written protocol that makes each state durable before it moves on: more
 * durability than the runtime needs, shown for comparison with earlier runs, whose goal it was.
 */
const sessionFloorPutPerStep = () =>
  handWrittenSession('/bench/floor-per-step/1.0.0', ['pong', 'report'], {
    awaited: new Set(['invited', 'pinged', 'done', 'joined', 'ponged']),
    clientCreated: 'awaited',
    serverCompleted: 'awaited',
  })

/** The 2-party session the session figures run (`npm run bench:ab` runs it on another tree's runtime too). */
export const pingPongDefinition: ChoreographyDefinition = {
  name: 'bench-ping-pong',
  roles: ['client', 'server'],
  steps: [
    { label: 'ping', from: 'client', to: ['server'], payload: z.object({ n: z.number() }), produce: () => ({ n: 1 }) },
    { label: 'pong', from: 'server', to: ['client'], payload: z.object({ n: z.number() }), produce: () => ({ n: 2 }) },
  ],
}
const pingPong = defineChoreography(pingPongDefinition)

async function sessionRoundTrip(): Promise<{
  p50: number
  p99: number
  floorP50: number
  perStepFloorP50: number
  requestP50: number
  concurrentPerS: number
}> {
  const dirs = [mkdtempSync(join(tmpdir(), 'aura-bench-')), mkdtempSync(join(tmpdir(), 'aura-bench-'))]
  const runtimes: Runtime[] = []
  for (const dataDir of dirs) runtimes.push(await createRuntime({ dataDir, protocols: [pingPong], sessions: { autoJoin: true } }))
  const [client, server] = runtimes as [Runtime, Runtime]
  server.sessions.invitations$.subscribe((invite) => void server.sessions.executeProtocol(invite.sessionId, invite.protocol))
  await client.connect(server.addresses()[0]!)
  // the floor under every pattern: one bare router.request round trip on the same connection
  await componentsOf(server).router.register('timeout', { 'bench-echo': ({ envelope }) => envelope.payload })
  const requests = await sample(PINGS, () => componentsOf(client).router.request(server.peerId, 'timeout', { kind: 'bench-echo', payload: { n: 1 } }), 200)
  const roster = [
    { peerId: client.peerId, role: 'client' },
    { peerId: server.peerId, role: 'server' },
  ]
  // The floors and the session take turns, one of each per round in a rotating order, so
  // whatever else the machine does in a stretch of the run (or one leaves behind for the next)
  // weighs on all alike.
  const floors = [await sessionFloor(), await sessionFloorPutPerStep()]
  const runSession = async () => {
    const session = await client.sessions.createSession('bench', roster, { timeoutMs: 10_000, protocol: pingPong.name })
    const result = await session.executeProtocol()
    if (result.status !== 'completed') throw new Error(`session ${result.status}`)
  }
  const runs = [runSession, floors[0]!.once, floors[1]!.once]
  const samples: number[][] = runs.map(() => [])
  for (let round = -20; round < SESSIONS; round++) {
    for (let k = 0; k < runs.length; k++) {
      const which = (round + 20 + k) % runs.length
      const [ms] = await sample(1, runs[which]!, 0)
      if (round >= 0) samples[which]!.push(ms!) // after a warm-up
    }
  }
  for (const floor of floors) await floor.stop()
  // 100 sessions at once: what group commit and pipelining could win shows here
  const concurrentStart = performance.now()
  const results = await Promise.all(
    Array.from({ length: CONCURRENT }, async () =>
      (await client.sessions.createSession('bench', roster, { timeoutMs: 30_000, protocol: pingPong.name })).executeProtocol(),
    ),
  )
  const concurrentMs = performance.now() - concurrentStart
  if (results.some((r) => r.status !== 'completed')) throw new Error('a concurrent session did not complete')
  for (const runtime of runtimes) await runtime.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  return {
    p50: quantile(samples[0]!, 0.5),
    p99: quantile(samples[0]!, 0.99),
    floorP50: quantile(samples[1]!, 0.5),
    perStepFloorP50: quantile(samples[2]!, 0.5),
    requestP50: quantile(requests, 0.5),
    concurrentPerS: (CONCURRENT / concurrentMs) * 1000,
  }
}

const FAN_PEERS = 8
const FAN_SESSIONS = 50
const fanRoles = Array.from({ length: FAN_PEERS }, (_, i) => `p${i}`)
// the leader pings every other peer at once, each answers it: how a session's cost grows with peers
const fanOut = defineChoreography({
  name: 'bench-fan-out',
  roles: fanRoles,
  steps: [
    { label: 'ping', from: 'p0', to: fanRoles.slice(1), payload: z.object({ n: z.number() }), produce: () => ({ n: 1 }) },
    ...fanRoles.slice(1).map((role) => ({ label: `pong-${role}`, from: role, to: ['p0'], payload: z.object({ n: z.number() }), produce: () => ({ n: 2 }) })),
  ],
})

async function fanOutSessionP50(): Promise<number> {
  const dirs = fanRoles.map(() => mkdtempSync(join(tmpdir(), 'aura-bench-')))
  const runtimes = await Promise.all(dirs.map((dataDir) => createRuntime({ dataDir, protocols: [fanOut], sessions: { autoJoin: true } })))
  const [leader, ...others] = runtimes as [Runtime, ...Runtime[]]
  for (const peer of others) peer.sessions.invitations$.subscribe((invite) => void peer.sessions.executeProtocol(invite.sessionId, invite.protocol))
  // a full mesh: participants tell each other they joined. libp2p resets inbound connections from
  // one host beyond a few per second, and every peer here is 127.0.0.1: pace the dials
  for (const [i, a] of runtimes.entries()) {
    for (const b of runtimes.slice(i + 1)) {
      for (let attempt = 1; ; attempt++) {
        const connected = await a.connect(b.addresses()[0]!).then(
          () => true,
          (error) => (attempt < 10 ? false : Promise.reject(error)),
        )
        if (connected) break
        await new Promise((resolve) => setTimeout(resolve, 300))
      }
    }
  }
  const roster = runtimes.map((runtime, i) => ({ peerId: runtime.peerId, role: fanRoles[i]! }))
  const samples = await sample(
    FAN_SESSIONS,
    async () => {
      const session = await leader.sessions.createSession('bench', roster, { timeoutMs: 10_000, protocol: fanOut.name })
      const result = await session.executeProtocol()
      if (result.status !== 'completed') throw new Error(`session ${result.status}: ${JSON.stringify(result.outcome)}`)
    },
    5,
  )
  for (const runtime of runtimes) await runtime.stop()
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
  return quantile(samples, 0.5)
}

const counterMachine = setup({ types: { events: {} as { type: 'INC' } } }).createMachine({
  context: { n: 0 },
  on: { INC: { actions: assign({ n: ({ context }) => context.n + 1 }) } },
})

async function localRouting(): Promise<{ rawPerS: number; routedPerS: number }> {
  const raw = createActor(counterMachine).start()
  const rawStart = performance.now()
  for (let i = 0; i < LOCAL_MESSAGES; i++) raw.send({ type: 'INC' })
  const rawMs = performance.now() - rawStart

  const dataDir = mkdtempSync(join(tmpdir(), 'aura-bench-'))
  const runtime = await createRuntime({ dataDir, transport: 'memory' })
  const routed = createActor(counterMachine).start()
  let delivered = 0
  let done: () => void = () => undefined
  const all = new Promise<void>((resolve) => (done = resolve))
  await componentsOf(runtime).router.register('timeout', {
    inc: () => {
      routed.send({ type: 'INC' })
      if (++delivered === LOCAL_MESSAGES) done()
    },
  })
  const routedStart = performance.now()
  for (let i = 0; i < LOCAL_MESSAGES; i++) void componentsOf(runtime).router.send(runtime.peerId, 'timeout', { kind: 'inc', payload: null })
  await all
  const routedMs = performance.now() - routedStart
  if (routed.getSnapshot().context.n !== LOCAL_MESSAGES) throw new Error('lost local messages')
  await runtime.stop()
  rmSync(dataDir, { recursive: true, force: true })
  return { rawPerS: (LOCAL_MESSAGES / rawMs) * 1000, routedPerS: (LOCAL_MESSAGES / routedMs) * 1000 }
}

export const sessionBench = {
  name: 'session',
  async run(report: BenchReport): Promise<void> {
    const ping = await rawPingPongMs()
    const session = await sessionRoundTrip()
    const floor = session.floorP50
    report.add('pingpong.tcp.p50_ms', ping, 'ms', 'raw libp2p stream ping-pong, TCP loopback (baseline)')
    report.add('session.tcp.p50_ms', session.p50, 'ms', '2-party session: create, invite, join, ping, pong, complete')
    report.add('session.tcp.p99_ms', session.p99, 'ms')
    report.add('session.tcp.ratio_vs_pingpong', session.p50 / ping, 'x', 'session round trip / raw ping-pong (p50)')
    report.add(
      'session.floor.tcp.p50_ms',
      floor,
      'ms',
      "the session's 6 frames by hand on a raw stream, an awaited LMDB put where the runtime must be durable before it acknowledges (3)",
    )
    report.add('session.tcp.ratio_vs_floor', session.p50 / floor, 'x', 'session round trip / hand-written floor (p50), goal <= 1.5')
    report.add(
      'session.floor_put_per_step.tcp.p50_ms',
      session.perStepFloorP50,
      'ms',
      'the same frames with an awaited put at every step on both sides (8, 6 of them in series): the floor of earlier runs',
    )
    report.add('session.tcp.ratio_vs_floor_put_per_step', session.p50 / session.perStepFloorP50, 'x', 'session round trip / put-per-step floor (p50)')
    const fan = await fanOutSessionP50()
    report.add('session.tcp.p50_ms_8_peers', fan, 'ms', '8-party session over TCP: the leader pings 7 peers, each answers')
    report.add('session.tcp.ratio_8_vs_2_peers', fan / session.p50, 'x', '8-party session p50 / 2-party session p50')
    report.add('session.tcp.per_s_concurrent_100', session.concurrentPerS, 'sessions/s', '100 sessions created and run at once between 2 runtimes')
    report.add('router.request.tcp.p50_ms', session.requestP50, 'ms', 'bare router.request round trip, TCP loopback')
    report.add('router.request.tcp.ratio_vs_pingpong', session.requestP50 / ping, 'x', 'router.request round trip / raw ping-pong (p50)')
    const local = await localRouting()
    report.add('actor.send.msgs_per_s', local.rawPerS, 'msg/s', 'raw actor.send (baseline)')
    report.add('router.local.msgs_per_s', local.routedPerS, 'msg/s', 'router.send to self → handler → actor.send')
    report.add('router.local.ratio_vs_actor_send', local.rawPerS / local.routedPerS, 'x', 'time per routed message / time per actor.send')
  },
}
