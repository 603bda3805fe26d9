// The LMDB folder: a temp folder the runtime made for itself is removed on stop; a dataDir the
// caller gave is never touched.
import { afterEach, describe, expect, it } from 'vitest'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime } from '../../../runtime/core/runtime.js'

const dirs: string[] = []
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('data folder', () => {
  it('the temp folder made when no dataDir is given is removed on stop', async () => {
    const runtime = await createRuntime({ transport: 'memory' })
    const dir = runtime.dataDir!
    dirs.push(dir)
    expect(dir.startsWith(tmpdir())).toBe(true)
    await runtime.storage.store('k', { v: 1 })
    expect(readdirSync(dir).length).toBeGreaterThan(0)
    await runtime.stop()
    expect(existsSync(dir)).toBe(false)
  })

  it('a dataDir given by the caller is kept, with its data, and reopens', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'aura-kept-'))
    dirs.push(dir)
    const first = await createRuntime({ transport: 'memory', dataDir: dir })
    expect(first.dataDir).toBe(dir)
    await first.storage.store('k', { v: 1 })
    await first.stop()
    expect(existsSync(dir)).toBe(true)
    const second = await createRuntime({ transport: 'memory', dataDir: dir })
    try {
      expect(second.peerId).toBe(first.peerId)
      expect(await second.storage.load('k')).toEqual({ v: 1 })
    } finally {
      await second.stop()
    }
    expect(existsSync(dir)).toBe(true)
  })
})
