// The README's embedding example must run as written: extract the block, point its import at
// this checkout, run it with tsx, and check what it prints.
import { describe, expect, it } from 'vitest'
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs'
import { execFileSync } from 'node:child_process'
import { join, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const root = join(dirname(fileURLToPath(import.meta.url)), '..')

/** Runs the README block marked `<!-- example:<name> -->` against this checkout; returns what it printed. */
function runBlock(name: string): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  const match = new RegExp(`<!-- example:${name}[^>]*-->\\s*\`\`\`ts\\n([\\s\\S]*?)\`\`\``).exec(readme)
  if (!match) throw new Error(`no README block example:${name}`)
  const source = match[1]!
    .replace("from 'aura-orchestration/testing'", `from ${JSON.stringify(join(root, 'runtime', 'testing', 'index.ts'))}`)
    .replace("from 'aura-orchestration'", `from ${JSON.stringify(join(root, 'runtime', 'index.ts'))}`)
  const dir = mkdtempSync(join(root, '.tmp-readme-'))
  try {
    const file = join(dir, 'example.ts')
    writeFileSync(file, source)
    return execFileSync(process.execPath, ['--import', 'tsx', file], { cwd: root, encoding: 'utf8', timeout: 60_000 })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

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

  it('checkProtocol example runs as written', () => {
    const output = runBlock('check-protocol')
    expect(output).toMatch(/^greeting holds$/m)
  })

  it('services example runs as written', () => {
    const output = runBlock('services')
    expect(output).toMatch(/^differing 1 visits 3$/m)
  })

  it('embedding example runs as written', () => {
    const output = runBlock('embedding')
    expect(output).toMatch(/^completed \{"kind":"success"/m)
    expect(output).toMatch(/welcome, you said hello/)
    expect(output).toMatch(/^42 \d+/m)
  })
})
