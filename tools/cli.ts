// `npm start`: a real multi-peer cluster on loopback. Starts N peers as N OS processes (libp2p
// TCP + noise + yamux, each with its own LMDB folder), runs a threshold ceremony session across
// them under a coordinated deadline, shows progress, prints a summary and exits.
//
//   npm start                      3 peers
//   npm start -- --peers 5         5 peers
//   npm start -- --kill-one        SIGKILL one peer (the last, never the leader) mid-session: the others must end Failed
//                                  (timeout) at the deadline, never hang
//   npm start -- --data ./data     keep the LMDB folders under ./data (default: a temp folder)
//   npm start -- --dashboard       serve a live dashboard on 127.0.0.1 (stays up until Ctrl+C)
//   npm start -- --inspect         connect every actor to the Stately inspector (relay on :8080)

import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, mkdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { z } from 'zod'
import { startCliDashboard } from './dashboard/terminal.js'
import { createInspector } from '../runtime/core/inspection.js'

const here = dirname(fileURLToPath(import.meta.url))

const cliSchema = z.object({
  peers: z.coerce.number().int().min(2).max(16),
  'kill-one': z.boolean(),
  'timeout-ms': z.coerce.number().int().min(500).max(600_000),
  'step-delay-ms': z.coerce.number().int().min(0).max(10_000),
  data: z.string().optional(),
  dashboard: z.boolean(),
  inspect: z.boolean(),
})

interface Peer {
  index: number
  process: ChildProcess
  peerId: string
  addresses: string[]
  result?: { status: string; outcome: { kind: string; results?: Record<string, Record<string, unknown>> } }
  metrics?: { messagesSent: number; messagesReceived: number; bytesSent: number; errorCount: number; latency: Record<string, { p50: number; p99: number }> }
  killed?: boolean
}

function parseCli() {
  const { values } = parseArgs({
    options: {
      peers: { type: 'string', default: '3' },
      'kill-one': { type: 'boolean', default: false },
      'timeout-ms': { type: 'string', default: '' },
      'step-delay-ms': { type: 'string', default: '' },
      data: { type: 'string' },
      dashboard: { type: 'boolean', default: false },
      inspect: { type: 'boolean', default: false },
    },
  })
  const killOne = values['kill-one'] ?? false
  const parsed = cliSchema.safeParse({
    ...values,
    'kill-one': killOne,
    // A killed peer leaves the others waiting for the deadline: keep it short so the demo is quick.
    'timeout-ms': values['timeout-ms'] || (killOne ? '4000' : '15000'),
    'step-delay-ms': values['step-delay-ms'] || (killOne ? '150' : '20'),
  })
  if (!parsed.success) {
    console.error(`invalid arguments: ${parsed.error.issues.map((i) => `--${i.path.join('.')}: ${i.message}`).join('; ')}`)
    process.exit(2)
  }
  return parsed.data
}

function startPeer(index: number, dataDir: string, parties: number, stepDelayMs: number, extra: string[]): Promise<Peer> {
  const child = fork(join(here, 'peer-process.ts'), ['--data', dataDir, '--parties', String(parties), '--step-delay-ms', String(stepDelayMs), ...extra], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  return new Promise((resolvePeer, reject) => {
    const onMessage = (message: { type: string; peerId?: string; addresses?: string[]; message?: string }) => {
      if (message.type === 'ready') {
        child.off('message', onMessage)
        resolvePeer({ index, process: child, peerId: message.peerId!, addresses: message.addresses! })
      } else if (message.type === 'failure') reject(new Error(`peer ${index} failed to start: ${message.message}`))
    }
    child.on('message', onMessage)
    child.once('exit', (code) => reject(new Error(`peer ${index} exited with ${code} before it was ready`)))
  })
}

/** `{"active":{"running":"sending"}}` + step → `active/running/sending (commit)` */
function describeState(state: unknown, step: unknown): string {
  const parts: string[] = []
  let value = state
  while (value && typeof value === 'object') {
    const [key, inner] = Object.entries(value as Record<string, unknown>)[0] ?? []
    if (key === undefined) break
    parts.push(key)
    value = inner
  }
  if (typeof value === 'string') parts.push(value)
  const path = parts.join('/')
  return path.startsWith('active/running') && typeof step === 'string' ? `${path} (${step})` : path
}

const short = (peerId: string) => `${peerId.slice(0, 6)}…${peerId.slice(-4)}`

async function main(): Promise<void> {
  const options = parseCli()
  const base = options.data ? resolve(options.data) : mkdtempSync(join(tmpdir(), 'aura-cluster-'))
  const started = Date.now()
  console.log(`aura-orchestration: ${options.peers} peers on 127.0.0.1 (libp2p TCP + noise + yamux, LMDB under ${base})`)

  const inspector = options.inspect ? createInspector({ port: 8080 }) : undefined
  if (inspector) console.log(`  Stately inspector relay: ${inspector.url} (open ${inspector.pageUrl})`)
  const childArgs = [...(options.dashboard ? ['--metrics-every-ms', '500'] : []), ...(inspector ? ['--inspect-url', inspector.url] : [])]
  const peers = await Promise.all(
    Array.from({ length: options.peers }, (_, i) => {
      const dir = join(base, `peer-${i + 1}`)
      mkdirSync(dir, { recursive: true })
      return startPeer(i, dir, options.peers, options['step-delay-ms'], childArgs)
    }),
  )
  for (const peer of peers) console.log(`  p${peer.index + 1}  ${short(peer.peerId)}  ${peer.addresses[0]}  (pid ${peer.process.pid})`)
  const dashboard = options.dashboard ? await startCliDashboard(peers) : undefined

  const all = peers.flatMap((p) => p.addresses)
  await Promise.all(
    peers.map(
      (peer) =>
        new Promise<void>((done) => {
          const onMessage = (m: { type: string }) => {
            if (m.type === 'connected') {
              peer.process.off('message', onMessage)
              done()
            }
          }
          peer.process.on('message', onMessage)
          peer.process.send({ type: 'connect', addresses: all.filter((a) => !peer.addresses.includes(a)) })
        }),
    ),
  )

  const victim = options['kill-one'] ? peers[peers.length - 1]! : undefined
  let stepsSeen = 0
  const finished = new Promise<void>((done) => {
    const check = () => {
      if (peers.every((p) => p.result || p.killed)) done()
    }
    for (const peer of peers) {
      peer.process.on('message', (m: Record<string, unknown>) => {
        if (m.type === 'progress' && m.what === 'transition') {
          console.log(`  [${((Date.now() - started) / 1000).toFixed(2)}s] p${peer.index + 1} ${describeState(m.state, m.step)}`)
        } else if (m.type === 'progress' && m.what === 'step-sent') {
          stepsSeen++
          if (victim && !victim.killed && stepsSeen === options.peers) {
            console.log(`  [${((Date.now() - started) / 1000).toFixed(2)}s] --kill-one: SIGKILL p${victim.index + 1} (pid ${victim.process.pid})`)
            victim.killed = true
            victim.process.kill('SIGKILL')
            check()
          }
        } else if (m.type === 'result') {
          peer.result = m.result as Peer['result']
          peer.metrics = m.metrics as Peer['metrics']
          check()
        } else if (m.type === 'failure') console.error(`  p${peer.index + 1} error: ${String(m.message)}`)
      })
    }
  })

  const roster = peers.map((p) => ({ peerId: p.peerId, role: `p${p.index + 1}` }))
  const sessionStart = Date.now()
  peers[0]!.process.send({ type: 'create', participants: roster, timeoutMs: options['timeout-ms'], protocol: `threshold-ceremony-${options.peers}` })
  const guard = setTimeout(
    () => {
      console.error('cluster did not finish within twice the session deadline')
      process.exit(1)
    },
    options['timeout-ms'] * 2 + 10_000,
  )
  await finished
  clearTimeout(guard)
  const elapsed = Date.now() - sessionStart

  console.log('\nsummary')
  const keys = new Set<string>()
  for (const peer of peers) {
    if (peer.killed) {
      console.log(`  p${peer.index + 1}  killed`)
      continue
    }
    const outcome = peer.result!.outcome
    const confirms = Object.values(outcome.results ?? {}).flatMap((byPeer) => Object.values(byPeer)) as Array<{ groupKey?: string }>
    for (const c of confirms) if (c.groupKey) keys.add(c.groupKey)
    const m = peer.metrics!
    const duration = m.latency['session.duration']
    console.log(
      `  p${peer.index + 1}  ${peer.result!.status.padEnd(9)} outcome=${outcome.kind.padEnd(8)} sent=${m.messagesSent} received=${m.messagesReceived} bytes=${m.bytesSent} errors=${m.errorCount}` +
        (duration ? ` session=${duration.p50.toFixed(0)}ms` : ''),
    )
  }
  const survivors = peers.filter((p) => !p.killed)
  const allCompleted = survivors.every((p) => p.result!.status === 'completed')
  console.log(
    `  outcome: ${allCompleted ? 'completed' : 'failed'}${allCompleted ? `, group key agreed: ${keys.size === 1 ? [...keys][0]!.slice(0, 16) + '…' : 'NO'}` : ''}`,
  )
  console.log(`  session wall time: ${elapsed} ms`)

  if (dashboard) {
    console.log(`  dashboard still serving at ${dashboard.url} — Ctrl+C to stop`)
    await new Promise((resolve) => process.once('SIGINT', resolve))
    await dashboard.close()
  }
  inspector?.stop()
  for (const peer of survivors) peer.process.send({ type: 'stop' })
  await Promise.all(survivors.map((p) => new Promise((r) => (p.process.exitCode !== null ? r(null) : p.process.once('exit', r)))))
  if (!options.data) rmSync(base, { recursive: true, force: true })
  // With --kill-one, reaching this line is the success: every survivor ended instead of hanging.
  const ok = options['kill-one'] ? true : allCompleted && keys.size === 1
  process.exit(ok ? 0 : 1)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
