// `npm start` as a user runs it: real processes, TCP, LMDB; checks exit code and the summary.
import { describe, expect, it } from 'vitest'
import { spawnSync } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const run = (...args: string[]) =>
  spawnSync(process.execPath, ['--import', 'tsx', join(root, 'tools', 'cli.ts'), ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 })

describe('npm start', () => {
  it('runs a 3-peer ceremony to completion and exits 0', () => {
    const result = run()
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/3 peers on 127\.0\.0\.1/)
    expect(result.stdout).toMatch(/outcome: completed, group key agreed: [0-9a-f]{16}/)
    expect(result.stdout.match(/p\d {2}completed/g)).toHaveLength(3)
  }, 120_000)

  it('--kill-one: the survivors end Failed (timeout) and the cluster exits instead of hanging', () => {
    const result = run('--kill-one')
    expect(result.status, result.stderr).toBe(0)
    expect(result.stdout).toMatch(/SIGKILL p3/)
    expect(result.stdout).toMatch(/p3 {2}killed/)
    expect(result.stdout.match(/p\d {2}failed +outcome=timeout/g)).toHaveLength(2)
  }, 120_000)

  it('rejects bad arguments with a clear message', () => {
    const result = run('--peers', '1')
    expect(result.status).toBe(2)
    expect(result.stderr).toMatch(/--peers/)
  })
})
