// The README's embedding example must run as written: extract the block, point its import at
// this checkout, run it with tsx, and check what it prints.
import { describe, expect, it } from 'vitest'
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

describe('README', () => {
  it('shows the two commands first, then npm start', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8')
    const install = readme.indexOf('npm install')
    const test = readme.indexOf('npm test')
    const start = readme.indexOf('npm start')
    expect(install).toBeGreaterThan(0)
    expect(test).toBeGreaterThan(install)
    expect(start).toBeGreaterThan(test)
  })

  it('embedding example runs as written', () => {
    const readme = readFileSync(join(root, 'README.md'), 'utf8')
    const match = /<!-- example:embedding[^>]*-->\s*```ts\n([\s\S]*?)```/.exec(readme)
    expect(match).not.toBeNull()
    const source = match![1]!.replace("from 'aura-orchestration'", `from ${JSON.stringify(join(root, 'runtime', 'index.ts'))}`)
    const dir = mkdtempSync(join(root, '.tmp-readme-'))
    try {
      const file = join(dir, 'example.ts')
      writeFileSync(file, source)
      const output = execFileSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8', timeout: 60_000 })
      expect(output).toMatch(/^completed \{"kind":"success"/m)
      expect(output).toMatch(/welcome, you said hello/)
      expect(output).toMatch(/^42 \d+/m)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
