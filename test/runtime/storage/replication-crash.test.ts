// A quorum-acknowledged write must reach the peer that missed it even when the origin dies
// before the replication settles (issue 10, hole 2). Real processes (libp2p TCP, LMDB): the origin
// writes with quorum 1 of {B, C}; B acks, C is up but stuck (never answers); the origin is
// SIGKILLed the moment the quorum is met, long before C's attempts run out. C is restarted
// answering; the origin restarts from its folder, finds the repair intent it persisted before
// sending, and repair() delivers the write to C.
import { afterEach, describe, expect, it } from 'vitest'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const PEER = fileURLToPath(new URL('../../fixtures/replication-peer-process.ts', import.meta.url))
const children: ChildProcess[] = []
const dirs: string[] = []
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

interface Peer {
  child: ChildProcess
  peerId: string
  addresses: string[]
  call<T = unknown>(op: string, args?: Record<string, unknown>): Promise<T>
}

let nextId = 0

function start(dataDir: string, silent = false): Promise<Peer> {
  const child = fork(PEER, ['--data', dataDir, ...(silent ? ['--silent'] : [])], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  })
  children.push(child)
  const call = <T>(op: string, args: Record<string, unknown> = {}) =>
    new Promise<T>((resolve, reject) => {
      const id = ++nextId
      const onMessage = (m: { id?: number; result?: T; error?: string }) => {
        if (m.id !== id) return
        child.off('message', onMessage)
        if (m.error !== undefined) reject(new Error(m.error))
        else resolve(m.result as T)
      }
      child.on('message', onMessage)
      child.send({ id, op, ...args })
    })
  return new Promise((resolve, reject) => {
    child.on('message', (m: { type?: string; peerId?: string; addresses?: string[]; message?: string }) => {
      if (m.type === 'ready') resolve({ child, peerId: m.peerId!, addresses: m.addresses!, call })
      if (m.type === 'failure') reject(new Error(m.message))
    })
    child.once('exit', (code) => reject(new Error(`peer exited with ${code}`)))
  })
}

async function kill(peer: Peer): Promise<void> {
  const exited = new Promise((resolve) => peer.child.once('exit', resolve))
  peer.child.kill('SIGKILL')
  await exited
}

/** Polls `read` until it gives `expected`; a bounded wait, not a timed assertion. */
async function eventually<T>(read: () => Promise<T>, expected: T, attempts = 100): Promise<T> {
  let last = await read()
  for (let i = 0; i < attempts && JSON.stringify(last) !== JSON.stringify(expected); i++) {
    await new Promise((r) => setTimeout(r, 100))
    last = await read()
  }
  return last
}

describe('repair intent survives the origin dying before replication settles (real processes, SIGKILL)', () => {
  it('a quorum-acknowledged write reaches the peer that missed it after the origin restarts', async () => {
    const [originDir, bDir, cDir] = [0, 1, 2].map(() => mkdtempSync(join(tmpdir(), 'aura-repl-crash-')))
    dirs.push(originDir!, bDir!, cDir!)
    const [origin, b, c] = await Promise.all([start(originDir!), start(bDir!), start(cDir!, true)])
    await origin.call('connect', { addresses: [b.addresses[0], c.addresses[0]] })
    const capability = {
      [b.peerId]: await b.call('grant', { audience: origin.peerId, namespace: 'docs' }),
      [c.peerId]: await c.call('grant', { audience: origin.peerId, namespace: 'docs' }),
    }

    // C never answers, so the replication cannot settle before its deadline (minutes away)
    const acked = await origin.call<string[]>('write', {
      namespace: 'docs',
      key: 'k',
      value: 'quorum-acked',
      peers: [b.peerId, c.peerId],
      k: 1,
      capability,
      timeoutMs: 300_000,
    })
    expect(acked).toEqual([b.peerId])
    await kill(origin)
    expect(await b.call('read', { namespace: 'docs', key: 'k' })).toBe('quorum-acked')

    await kill(c)
    const cAgain = await start(cDir!)
    expect(cAgain.peerId).toBe(c.peerId)
    expect(await cAgain.call('read', { namespace: 'docs', key: 'k' })).toBeNull()

    const originAgain = await start(originDir!)
    expect(originAgain.peerId).toBe(origin.peerId)
    // B's entry may still be there too: its clearing after the ack can be cut short by the kill
    expect(await originAgain.call('pending')).toContainEqual({ peer: c.peerId, namespace: 'docs', key: 'k' })
    await originAgain.call('connect', { addresses: [b.addresses[0], cAgain.addresses[0]] })
    expect(await originAgain.call('repair', { capability })).toMatchObject({ remaining: 0 })
    expect(await eventually(() => cAgain.call('read', { namespace: 'docs', key: 'k' }), 'quorum-acked')).toBe('quorum-acked')
    expect(await originAgain.call('pending')).toEqual([])
  }, 120_000)
})
