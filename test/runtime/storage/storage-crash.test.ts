// Persistence under SIGKILL: a real process writes a burst through the StorageCoordinator on LMDB
// and reports every acknowledged write; it is killed mid-burst, the folder is reopened, and every
// acknowledged key must be there with its value intact (and no value anywhere may be torn).
// Twice, so the second round also checks that a restarted peer writes on after a crash.
import { afterEach, describe, expect, it } from 'vitest'
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { Ed25519Crypto } from '../../../effects/crypto/ed25519.js'
import { LmdbStorage } from '../../../effects/storage/index.js'
import { SystemClock } from '../../../effects/time/index.js'
import { StorageCoordinator } from '../../../runtime/storage/storage-coordinator.js'
import { isIntact, writerSeed } from '../../fixtures/storage-writer-values.js'

const WRITER = fileURLToPath(new URL('../../fixtures/storage-writer-process.ts', import.meta.url))
const dirs: string[] = []
const children: ChildProcess[] = []
afterEach(() => {
  for (const child of children.splice(0)) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

/** Runs the writer until `acks` keys are acknowledged, then SIGKILLs it; resolves with the acknowledged keys. */
function burstAndKill(dataDir: string, start: number, acks: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    const child = fork(WRITER, ['--data', dataDir, '--start', String(start)], { execArgv: ['--import', 'tsx'], stdio: ['ignore', 'ignore', 'pipe', 'ipc'] })
    children.push(child)
    const acked: string[] = []
    let stderr = ''
    let killed = false
    child.stderr?.on('data', (chunk) => (stderr += String(chunk)))
    child.on('message', (message: { type: string; keys?: string[]; message?: string }) => {
      if (message.type === 'failure') reject(new Error(message.message))
      if (message.type !== 'ack' || killed) return
      acked.push(...message.keys!)
      if (acked.length >= acks) {
        killed = true
        child.kill('SIGKILL')
      }
    })
    child.on('exit', (code, signal) => {
      if (signal === 'SIGKILL') resolve(acked)
      else reject(new Error(`writer exited (${code}) before it was killed: ${stderr.slice(-2000)}`))
    })
  })
}

async function reopen(dataDir: string) {
  const crypto = await Ed25519Crypto.fromSeed(writerSeed)
  const storage = new LmdbStorage({ path: dataDir })
  const coordinator = new StorageCoordinator(crypto.peerId, storage, { crypto, clock: new SystemClock() })
  const cap = await coordinator.grant({ audience: crypto.peerId, namespace: 'burst', rights: ['read'], expiresAt: Date.now() + 3_600_000 })
  return { storage, coordinator, cap }
}

const indexOf = (key: string): number => Number(key.slice(1))

describe('storage survives SIGKILL mid-write', () => {
  it('every acknowledged key is present and intact after a restart; no value is torn', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'aura-crash-'))
    dirs.push(dataDir)
    let allAcked: string[] = []
    for (const [round, start] of [0, 1_000_000].entries()) {
      const acked = await burstAndKill(dataDir, start, 400 + round * 200)
      expect(acked.length).toBeGreaterThanOrEqual(400)
      allAcked = [...allAcked, ...acked]

      const { storage, coordinator, cap } = await reopen(dataDir)
      const values = await coordinator.retrieveMany('burst', allAcked, cap)
      const missing = allAcked.filter((_, j) => values[j] === undefined)
      expect(missing).toEqual([])
      const torn = allAcked.filter((key, j) => !isIntact(values[j], indexOf(key)))
      expect(torn).toEqual([])
      // writes that were in flight at the kill may or may not have landed, but never half
      const everything = await coordinator.list('burst', '', cap)
      expect(everything.length).toBeGreaterThanOrEqual(allAcked.length)
      expect(everything.filter((e) => !isIntact(e.value, indexOf(e.key as string))).map((e) => e.key)).toEqual([])
      await storage.close()
    }
  })
})
