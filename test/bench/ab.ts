// `npm run bench:ab -- <git ref> [session|yjs] [rounds]`: this working tree against <ref>, in one
// process. Both trees' runtimes run side by side and take turns, one timed round each (in
// alternating order), so a slow stretch of the machine weighs on both alike. Across separate
// `npm run bench` runs the same code moves by 10% or more on these machines; here an A/A run
// gives 1.00 ± 0.03, enough to see a change of a few percent (run it two or three times).
//
//   session  a 2-party ping-pong session over TCP, create to completed (the session bench's)
//   yjs      an edit on one peer's Yjs document, then the other's syncWithPeer (the crdt bench's)
//
// <ref> is checked out into a temporary git worktree (sharing this tree's node_modules) and
// removed afterwards.

import '../../effects/network/polyfill.js'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Runtime } from '../../runtime/core/runtime.js'
import { quantile } from './report.js'
import { pingPongDefinition } from './session.bench.js'

type Round = () => Promise<number>
interface Contender {
  round: Round
  stop: () => Promise<void>
}

const here = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

/** The 2-party session of the session bench, on `root`'s runtime. */
async function sessionContender(root: string): Promise<Contender> {
  const { createRuntime } = await import(join(root, 'runtime/core/runtime.ts'))
  const { defineChoreography } = await import(join(root, 'runtime/sessions/choreography.ts'))
  const pingPong = defineChoreography(pingPongDefinition)
  const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), 'aura-ab-')))
  const runtimes: Runtime[] = []
  for (const dataDir of dirs) runtimes.push(await createRuntime({ dataDir, protocols: [pingPong], sessions: { autoJoin: true } }))
  const [client, server] = runtimes
  server.sessions.invitations$.subscribe(
    (invite: { sessionId: string; protocol?: string }) => void server.sessions.executeProtocol(invite.sessionId, invite.protocol),
  )
  await client.connect(server.addresses()[0])
  const roster = [
    { peerId: client.peerId, role: 'client' },
    { peerId: server.peerId, role: 'server' },
  ]
  return {
    round: async () => {
      const start = performance.now()
      const session = await client.sessions.createSession('bench', roster, { timeoutMs: 10_000, protocol: pingPong.name })
      const result = await session.executeProtocol()
      if (result.status !== 'completed') throw new Error(`session ${result.status}`)
      return performance.now() - start
    },
    stop: async () => {
      for (const runtime of runtimes) await runtime.stop()
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
    },
  }
}

/** The crdt bench's Yjs round on `root`'s coordinator: an edit on b, then a syncs with b. */
async function yjsContender(root: string): Promise<Contender> {
  const { createRuntime } = await import(join(root, 'runtime/core/runtime.ts'))
  const { CrdtCoordinator } = await import(join(root, 'runtime/crdt/crdt-coordinator.ts'))
  const { sharing } = await import(join(root, 'test/fixtures/crdt-access.ts'))
  const runtimes = await Promise.all([0, 1].map(() => createRuntime({ transport: 'tcp' })))
  await runtimes[0].connect(runtimes[1].addresses()[0])
  const [a, b] = await sharing(Promise.all(runtimes.map((r) => CrdtCoordinator.attach(r))))
  a.yjs('doc')
  const items = b.yjs('doc').doc.getArray('items')
  const peer = runtimes[1].peerId
  let n = 0
  return {
    round: async () => {
      const start = performance.now()
      items.push([n++])
      await a.syncWithPeer(peer)
      return performance.now() - start
    },
    stop: async () => {
      for (const runtime of runtimes) await runtime.stop()
    },
  }
}

const [ref, which = 'session', roundsArg] = process.argv.slice(2)
if (!ref || !['session', 'yjs'].includes(which)) {
  console.error('usage: npm run bench:ab -- <git ref> [session|yjs] [rounds]')
  process.exit(2)
}
const rounds = Number(roundsArg ?? (which === 'session' ? 400 : 2_000))
const commit = execFileSync('git', ['rev-parse', '--verify', `${ref}^{commit}`], { cwd: here, encoding: 'utf8' }).trim()
const base = mkdtempSync(join(tmpdir(), 'aura-ab-tree-'))
execFileSync('git', ['worktree', 'add', '--detach', '--force', base, commit], { cwd: here, stdio: 'ignore' })
try {
  symlinkSync(join(here, 'node_modules'), join(base, 'node_modules'), 'dir')
  const make = which === 'session' ? sessionContender : yjsContender
  const contenders = [await make(base), await make(here)]
  const samples: number[][] = [[], []]
  const paired: number[] = []
  const warmup = which === 'session' ? 30 : 300
  for (let i = -warmup; i < rounds; i++) {
    const times: number[] = [0, 0]
    // alternate who goes first: each one's leftovers land in the other's round as often as in its own
    for (const k of i % 2 === 0 ? [0, 1] : [1, 0]) times[k] = await contenders[k]!.round()
    if (i < 0) continue
    samples[0]!.push(times[0]!)
    samples[1]!.push(times[1]!)
    paired.push(times[1]! / times[0]!)
  }
  for (const contender of contenders) await contender.stop()
  const [p50Base, p50Here] = samples.map((s) => quantile(s, 0.5)) as [number, number]
  console.log(`${which}, ${rounds} rounds each: ${ref} (${commit.slice(0, 7)}) p50 ${p50Base.toFixed(3)} ms, working tree p50 ${p50Here.toFixed(3)} ms`)
  console.log(`working tree / ${ref}: ${(p50Here / p50Base).toFixed(3)} (p50s), ${quantile(paired, 0.5).toFixed(3)} (median of round-by-round ratios)`)
} finally {
  // the link first, so removing the worktree cannot reach into this tree's node_modules
  rmSync(join(base, 'node_modules'), { force: true })
  execFileSync('git', ['worktree', 'remove', '--force', base], { cwd: here, stdio: 'ignore' })
  rmSync(base, { recursive: true, force: true })
}
process.exit(0)
