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
      'machines/bad.ts':
        "import { setup } from 'xstate'\nimport { Router } from '../runtime/router.js'\nimport { SystemClock } from '../effects/time/system.js'\nconst t = Date.now()\nsetTimeout(() => {}, 1)\n",
      'effects/time/system.ts': "import type { Router } from '../../runtime/core/router.js'\n",
    })
    const found = checkLayers(root).map((v) => `${v.file}:${v.line}`)
    expect(found.sort()).toEqual(['effects/time/system.ts:1', 'machines/bad.ts:2', 'machines/bad.ts:3', 'machines/bad.ts:4', 'machines/bad.ts:5'])
  })

  it('reports runtime importing tools, lattices importing the runtime, and an effect index that declares instead of re-exporting', () => {
    const root = tree({
      'effects/time/index.ts': "// re-exports only\nexport * from './clock.js'\nexport { SystemClock } from './system.js'\nexport const LEAK = 1\n",
      'effects/time/clock.ts': 'export interface Clock { now(): number }\n',
      'machines/ok.ts': "import type { Clock } from '../effects/time/clock.js'\n",
      'runtime/core.ts': "import { startDashboard } from '../tools/dashboard.js'\n",
    })
    mkdirSync(join(root, 'runtime/crdt/lattices'), { recursive: true })
    writeFileSync(
      join(root, 'runtime/crdt/lattices/g-counter.ts'),
      "import { z } from 'zod'\nimport { Router } from '../../core/router.js'\nimport { readFileSync } from 'node:fs'\n",
    )
    const found = checkLayers(root).map((v) => `${v.file}:${v.line}`)
    expect(found.sort()).toEqual([
      'effects/time/index.ts:4',
      'runtime/core.ts:1',
      'runtime/crdt/lattices/g-counter.ts:2',
      'runtime/crdt/lattices/g-counter.ts:3',
    ])
  })
})
