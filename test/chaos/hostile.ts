// The hostile-wire campaign: a bare libp2p node (not a runtime: nothing of ours checks what it
// sends) dials a peer process and throws malformed, truncated, oversized, spoofed and mutated
// frames at every /aura/* protocol, and opens hundreds of streams, while a legitimate runtime keeps
// writing to and reading from the same peer. Reported: frames sent, whether the peer lived, its RSS
// growth, and the legitimate requests served during and after the attack.

import '../../effects/network/polyfill.js'
import { fork, type ChildProcess } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { noise } from '@libp2p/noise'
import { tcp } from '@libp2p/tcp'
import { lpStream, type LengthPrefixedStream } from '@libp2p/utils'
import { yamux } from '@libp2p/yamux'
import { multiaddr } from '@multiformats/multiaddr'
import { createLibp2p, type Libp2p } from 'libp2p'
import { SeededRandom } from '../../effects/random/index.js'
import { protocolFor, type PatternFamily } from '../../runtime/core/router.js'
import { createRuntime, type Runtime } from '../../runtime/core/runtime.js'
import { encodeEnvelope, type Envelope } from '../../runtime/core/wire.js'

const VICTIM = fileURLToPath(new URL('../fixtures/victim-process.ts', import.meta.url))
const FAMILIES: PatternFamily[] = ['session', 'crdt', 'anti-entropy', 'storage', 'replication', 'transport', 'timeout']
const KINDS: Record<PatternFamily, string[]> = {
  session: ['invite', 'join', 'step', 'report', 'verdict'],
  crdt: ['sync', 'push', 'delta'],
  'anti-entropy': ['digest'],
  storage: ['put', 'putMany', 'get', 'getMany', 'delete', 'list'],
  replication: ['apply', 'digest', 'pull'],
  transport: ['open', 'data', 'close', 'epoch'],
  timeout: ['run', 'cancel'],
}

export interface HostileOptions {
  frames: number
  streams: number
  seed?: number
}

export interface HostileReport {
  framesSent: number
  streamsOpened: number
  alive: boolean
  rssBeforeMb: number
  rssAfterMb: number
  legitDuring: { ok: number; failed: number }
  legitAfter: { ok: number; failed: number }
  /** the victim's error counters (what it rejected, by code) */
  rejected: Record<string, number>
  /** the victim's CRDT set after the attack (must be what it held before) */
  tags: string[]
  ms: number
}

interface Victim {
  child: ChildProcess
  peerId: string
  address: string
  ask<T>(message: unknown, answer: string): Promise<T>
}

async function startVictim(): Promise<Victim> {
  const child = fork(VICTIM, [], { execArgv: ['--import', 'tsx', '--expose-gc'], stdio: ['ignore', 'ignore', 'inherit', 'ipc'] })
  const waiting = new Map<string, (m: unknown) => void>()
  const ready = new Promise<{ peerId: string; address: string }>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`victim exited with ${code} before it was ready`)))
    child.on('message', (m: { type: string; peerId: string; address: string }) => {
      if (m.type === 'ready') resolve(m)
      waiting.get(m.type)?.(m)
      waiting.delete(m.type)
    })
  })
  const { peerId, address } = await ready
  const ask = <T>(message: unknown, answer: string) =>
    new Promise<T>((resolve, reject) => {
      if (child.exitCode !== null) return reject(new Error('victim is gone'))
      waiting.set(answer, resolve as (m: unknown) => void)
      child.send(message as never)
    })
  return { child, peerId, address, ask }
}

/** One hostile frame; the kind of damage cycles so every protocol sees every kind. */
function hostileFrame(i: number, random: SeededRandom, self: string, victim: string): Uint8Array {
  const family = FAMILIES[i % FAMILIES.length]!
  const kinds = KINDS[family]
  const kind = kinds[random.int(kinds.length)]!
  const envelope: Envelope = { v: 1, kind, from: self, to: kind, id: `h${i}`, payload: garbage(random, 3) }
  const valid = () => encodeEnvelope(envelope, 64 * 1024 * 1024)
  switch (i % 8) {
    case 0:
      return random.bytes(1 + random.int(512))
    case 1: {
      const frame = valid()
      return frame.subarray(0, Math.max(1, random.int(frame.length)))
    }
    case 2:
      return encodeEnvelope({ ...envelope, from: random.int(2) === 0 ? victim : `12D3KooW${random.id(20)}` }, 64 * 1024 * 1024)
    case 3: {
      const frame = Uint8Array.from(valid())
      for (let flips = 1 + random.int(4); flips > 0; flips--) frame[random.int(frame.length)] ^= 1 << random.int(8)
      return frame
    }
    case 4: {
      const frame = Uint8Array.from(valid())
      frame[0] = 2 + random.int(200)
      return frame
    }
    case 5:
      // a well-formed request carrying a forged capability and a plausible body
      return encodeEnvelope(
        {
          ...envelope,
          payload: {
            collection: 'crdt.default',
            capability: { v: 1, id: 'x', issuer: victim, audience: self, namespace: '*', rights: ['admin'], notBefore: 0, expiresAt: 9e15, signature: '00' },
            body: { all: true, docs: [] },
          },
        },
        64 * 1024 * 1024,
      )
    case 6:
      return encodeEnvelope({ ...envelope, payload: deep(random.int(400)) }, 64 * 1024 * 1024)
    default:
      return valid()
  }
}

function garbage(random: SeededRandom, depth: number): unknown {
  switch (random.int(depth > 0 ? 7 : 5)) {
    case 0:
      return random.int(2 ** 31) - 2 ** 30
    case 1:
      return random.id(1 + random.int(16))
    case 2:
      return random.bytes(random.int(64))
    case 3:
      return null
    case 4:
      return random.float() * 1e300
    case 5:
      return Array.from({ length: random.int(8) }, () => garbage(random, depth - 1))
    default:
      return Object.fromEntries(Array.from({ length: random.int(6) }, () => [random.id(3), garbage(random, depth - 1)]))
  }
}

const deep = (n: number): unknown => {
  let value: unknown = 'bottom'
  for (let i = 0; i < n; i++) value = [value]
  return value
}

async function legitLoop(runtime: Runtime, victim: Victim, token: unknown, counts: { ok: number; failed: number }, until: () => boolean): Promise<void> {
  const remote = runtime.storage.remote(victim.peerId, 5_000)
  for (let i = 0; !until(); i++) {
    try {
      await remote.storeInNamespace('public', `k${i % 50}`, { i }, token as never)
      const back = (await remote.retrieve('public', `k${i % 50}`, token as never)) as { i: number } | undefined
      if (back?.i === i) counts.ok += 1
      else counts.failed += 1
    } catch (error) {
      counts.failed += 1
      if (process.env.HOSTILE_DEBUG) console.log('legit request failed:', error)
    }
    await new Promise((r) => setTimeout(r, 10))
  }
}

/** Legitimate traffic for `ms` of wall time; resolves with its counts once the last request settled. */
async function legitFor(ms: number, runtime: Runtime, victim: Victim, token: unknown): Promise<{ ok: number; failed: number }> {
  const counts = { ok: 0, failed: 0 }
  let done = false
  const serving = legitLoop(runtime, victim, token, counts, () => done)
  await new Promise((r) => setTimeout(r, ms))
  done = true
  await serving
  return counts
}

export async function hostileRun(options: HostileOptions): Promise<HostileReport> {
  const started = Date.now()
  const random = new SeededRandom(`hostile/${options.seed ?? 1}`)
  const victim = await startVictim()
  let exited = false
  victim.child.once('exit', () => (exited = true))
  const legit = await createRuntime({})
  const attacker: Libp2p = await createLibp2p({ transports: [tcp()], connectionEncrypters: [noise()], streamMuxers: [yamux()] })
  try {
    await legit.connect(victim.address)
    const { token } = await victim.ask<{ token: unknown }>({ type: 'grant', peerId: legit.peerId }, 'granted')
    await legitFor(1_000, legit, victim, token) // warm up: what a served peer holds is allocated
    const before = await victim.ask<{ rss: number }>({ type: 'rss' }, 'rss')

    const self = attacker.peerId.toString()
    const target = multiaddr(victim.address)
    const during = { ok: 0, failed: 0 }
    let attacking = true
    const legitDuring = legitLoop(legit, victim, token, during, () => !attacking)

    // Hundreds of streams, each with a few hostile frames, left open.
    const streams: LengthPrefixedStream[] = []
    let framesSent = 0
    for (let s = 0; s < options.streams && !exited; s++) {
      try {
        const stream = await attacker.dialProtocol(target, protocolFor(FAMILIES[s % FAMILIES.length]!), { runOnLimitedConnection: true })
        streams.push(lpStream(stream, { maxDataLength: 64 * 1024 * 1024 }))
      } catch {
        // refused (a stream limit): that is the peer defending itself
      }
    }
    // The flood: round-robin over the open streams; reopen when the peer closes one on us.
    for (let i = 0; framesSent < options.frames && !exited; i++) {
      if (streams.length === 0) break
      const index = i % streams.length
      const frame = i % 5_000 === 4_999 ? random.bytes(2 * 1024 * 1024) : hostileFrame(i, random, self, victim.peerId)
      try {
        await streams[index]!.write(frame)
        framesSent += 1
      } catch {
        try {
          const stream = await attacker.dialProtocol(target, protocolFor(FAMILIES[i % FAMILIES.length]!))
          streams[index] = lpStream(stream, { maxDataLength: 64 * 1024 * 1024 })
        } catch {
          await new Promise((r) => setTimeout(r, 5))
        }
      }
    }
    attacking = false
    await legitDuring

    const after = await legitFor(1_500, legit, victim, token)
    const report = exited
      ? undefined
      : await victim.ask<{ rss: number; errors: Record<string, number>; tags: string[]; memory: unknown }>({ type: 'rss' }, 'rss')
    if (process.env.HOSTILE_DEBUG) console.log(JSON.stringify({ before, after: report }))
    return {
      framesSent,
      streamsOpened: streams.length,
      alive: !exited && report !== undefined,
      rssBeforeMb: before.rss / 2 ** 20,
      rssAfterMb: (report?.rss ?? 0) / 2 ** 20,
      legitDuring: during,
      legitAfter: after,
      rejected: report?.errors ?? {},
      tags: report?.tags ?? [],
      ms: Date.now() - started,
    }
  } finally {
    await Promise.resolve(attacker.stop()).catch(() => undefined)
    await Promise.resolve(legit.stop()).catch(() => undefined)
    if (!exited) {
      victim.child.send({ type: 'stop' })
      await new Promise((r) => {
        victim.child.once('exit', r)
        setTimeout(() => victim.child.kill('SIGKILL'), 5_000)
      })
    }
  }
}
