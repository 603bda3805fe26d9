// Durable sessions with real processes: each peer is an OS process (tools/peer-process.ts) with
// libp2p TCP and its own LMDB folder. A participant is SIGKILLed mid-session and restarted from
// the same folder — before the deadline the session completes; after it, every peer ends Failed
// with a timeout and nobody waits forever.
import { afterEach, describe, expect, it } from 'vitest'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const peerProcess = join(dirname(fileURLToPath(import.meta.url)), '..', '..', 'tools', 'peer-process.ts')

type Message = { type: string; [key: string]: unknown }
interface Peer {
  child: ChildProcess
  peerId: string
  addresses: string[]
  messages: Message[]
  resumed: string[]
}

const children: ChildProcess[] = []
const dirs: string[] = []
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null) child.kill('SIGKILL')
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function start(dataDir: string, stepDelayMs: number): Promise<Peer> {
  const child = fork(peerProcess, ['--data', dataDir, '--parties', '3', '--step-delay-ms', String(stepDelayMs)], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  children.push(child)
  const messages: Message[] = []
  return new Promise((resolve, reject) => {
    child.on('message', (m: Message) => {
      messages.push(m)
      if (m.type === 'ready') resolve({ child, peerId: m.peerId as string, addresses: m.addresses as string[], messages, resumed: m.resumed as string[] })
      if (m.type === 'failure' && !messages.some((x) => x.type === 'ready')) reject(new Error(String(m.message)))
    })
    child.once('exit', (code) => reject(new Error(`peer exited with ${code}`)))
  })
}

function waitFor(peer: Peer, predicate: (m: Message) => boolean, ms: number): Promise<Message> {
  return new Promise((resolve, reject) => {
    const found = peer.messages.find(predicate)
    if (found) return resolve(found)
    const timer = setTimeout(() => reject(new Error(`timed out waiting for a message (have ${peer.messages.map((m) => m.type).join(',')})`)), ms)
    const onMessage = (m: Message) => {
      if (!predicate(m)) return
      clearTimeout(timer)
      peer.child.off('message', onMessage)
      resolve(m)
    }
    peer.child.on('message', onMessage)
  })
}

async function connectAll(peers: Peer[]): Promise<void> {
  const all = peers.flatMap((p) => p.addresses)
  await Promise.all(
    peers.map((peer) => {
      const reply = waitFor(peer, (m) => m.type === 'connected' && !peer.messages.slice(0, -1).includes(m), 10_000)
      peer.child.send({ type: 'connect', addresses: all.filter((a) => !peer.addresses.includes(a)) })
      return reply
    }),
  )
}

type Result = { status: string; outcome: { kind: string; results?: Record<string, Record<string, { groupKey?: string }>> } }
const resultOf = (m: Message) => m.result as Result

async function scenario(timeoutMs: number, restartAfterMs: (deadlineIn: number) => number) {
  const folders = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), 'aura-durable-')))
  dirs.push(...folders)
  const peers = await Promise.all(folders.map((dir) => start(dir, 250)))
  await connectAll(peers)
  const roster = peers.map((p, i) => ({ peerId: p.peerId, role: `p${i + 1}` }))
  const createdAt = Date.now()
  peers[0]!.child.send({ type: 'create', participants: roster, timeoutMs, protocol: 'threshold-ceremony-3' })
  const { sessionId } = (await waitFor(peers[0]!, (m) => m.type === 'created', 10_000)) as { sessionId: string } & Message
  const victim = peers[2]!
  await waitFor(victim, (m) => m.type === 'progress' && m.what === 'step-sent', 10_000)
  victim.child.kill('SIGKILL')
  await new Promise((r) => victim.child.once('exit', r))
  await new Promise((r) => setTimeout(r, restartAfterMs(createdAt + timeoutMs - Date.now())))
  const restarted = await start(folders[2]!, 250)
  expect(restarted.peerId).toBe(victim.peerId) // identity kept in LMDB
  expect(restarted.resumed).toContain(sessionId)
  return { peers: [peers[0]!, peers[1]!, restarted], sessionId, deadlineAt: createdAt + timeoutMs }
}

describe('durable sessions across SIGKILL (real processes, TCP, LMDB)', () => {
  it('a participant killed mid-session and restarted before the deadline: the session completes', async () => {
    const { peers, sessionId } = await scenario(20_000, () => 300)
    const results = await Promise.all(peers.map((p) => waitFor(p, (m) => m.type === 'result' && m.sessionId === sessionId, 30_000)))
    const keys = new Set<string>()
    for (const message of results) {
      const result = resultOf(message)
      expect(result.status).toBe('completed')
      for (const byPeer of Object.values(result.outcome.results ?? {})) for (const p of Object.values(byPeer)) if (p.groupKey) keys.add(p.groupKey)
    }
    expect(keys.size).toBe(1)
  }, 90_000)

  it('restarted after the deadline: every peer ends Failed with a timeout, none waits forever', async () => {
    const { peers, sessionId, deadlineAt } = await scenario(3_000, (deadlineIn) => deadlineIn + 500)
    const results = await Promise.all(peers.map((p) => waitFor(p, (m) => m.type === 'result' && m.sessionId === sessionId, 15_000)))
    for (const message of results) {
      const result = resultOf(message)
      expect(result.status).toBe('failed')
      expect(result.outcome.kind).toBe('timeout')
    }
    expect(Date.now() - deadlineAt).toBeLessThan(10_000)
  }, 90_000)
})
