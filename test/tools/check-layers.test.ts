// The layering rule CI enforces (tools/check-layers.ts): this tree keeps it, and each kind of
// violation, planted in a scratch tree, is reported with its file and line.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { checkLayers } from '../../tools/check-layers.js'

const trees: string[] = []
afterEach(() => {
  for (const dir of trees.splice(0)) rmSync(dir, { recursive: true, force: true })
})

function tree(files: Record<string, string>): string {
  const root = mkdtempSync(join(tmpdir(), 'aura-layers-'))
  trees.push(root)
  for (const dir of ['machines', 'effects/time', 'runtime']) mkdirSync(join(root, dir), { recursive: true })
  for (const [path, text] of Object.entries(files)) writeFileSync(join(root, path), text)
  return root
}

describe('layering rule', () => {
  it('this repository keeps it', () => {
    expect(checkLayers()).toEqual([])
  })

  it('reports machines importing runtime or an effect implementation, impure calls in machines, and effects importing runtime', () => {
    const root = tree({
      'machines/ok.ts': "import { setup } from 'xstate'\nimport type { Clock } from '../effects/time/index.js'\n// Date.now() in a comment is fine\n",
      'machines/bad.ts': "import { setup } from 'xstate'\nimport { Router } from '../runtime/router.js'\nimport { SystemClock } from '../effects/time/system.js'\nconst t = Date.now()\nsetTimeout(() => {}, 1)\n",
      'effects/time/system.ts': "import type { Router } from '../../runtime/router.js'\n",
    })
    const found = checkLayers(root).map((v) => `${v.file}:${v.line}`)
    expect(found.sort()).toEqual(['effects/time/system.ts:1', 'machines/bad.ts:2', 'machines/bad.ts:3', 'machines/bad.ts:4', 'machines/bad.ts:5'])
  })
})
