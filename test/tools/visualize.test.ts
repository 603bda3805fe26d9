// The committed visualizations/ must be what `npm run visualize` produces from machines/ now, and
// every exported machine must have its JSON (re-importable), Mermaid and SVG files.
import { mkdtempSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { tmpdir } from 'node:os'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMachine } from 'xstate'
import { allTransitions, chartOf, discoverMachines, walkStates, type DiscoveredMachine } from '../../tools/statecharts/export.js'
import { activePaths } from '../../tools/statecharts/svg.js'
import { MACHINES_DIR, VISUALIZATIONS_DIR, writeVisualizations } from '../../tools/statecharts/visualize.js'

let machines: DiscoveredMachine[]
let fresh: string
beforeAll(async () => {
  machines = await discoverMachines(MACHINES_DIR)
  fresh = mkdtempSync(join(tmpdir(), 'aura-vis-'))
  await writeVisualizations(fresh)
})
afterAll(() => rmSync(fresh, { recursive: true, force: true }))

const committed = (name: string) => readFileSync(join(VISUALIZATIONS_DIR, name), 'utf8')

describe('npm run visualize', () => {
  it('finds every machine exported from machines/*.ts', () => {
    const ids = machines.map((m) => m.machine.id)
    for (const id of ['session', 'retry', 'timeout', 'coordinatedTimeout', 'transport']) expect(ids).toContain(id)
    expect(new Set(ids).size).toBe(ids.length)
  })

  it('committed visualizations/ are up to date (run `npm run visualize` when this fails)', () => {
    const generated = readdirSync(fresh).sort()
    const present = readdirSync(VISUALIZATIONS_DIR)
      .filter((f) => /\.(json|mmd|svg|html)$/.test(f))
      .sort()
    expect(present).toEqual(generated)
    const stale = generated.filter((name) => committed(name) !== readFileSync(join(fresh, name), 'utf8'))
    expect(stale, `stale: ${stale.join(', ')}`).toEqual([])
  })

  it('every machine has its JSON, Mermaid and SVG file, and the index links them', () => {
    const index = committed('index.html')
    for (const { machine } of machines) {
      for (const ext of ['json', 'mmd', 'svg']) {
        expect(readdirSync(VISUALIZATIONS_DIR)).toContain(`${machine.id}.${ext}`)
        expect(index).toContain(`href="${machine.id}.${ext}"`)
      }
    }
  })

  it('the JSON re-imports into createMachine with the same states and transitions', () => {
    for (const { machine } of machines) {
      const original = chartOf(machine)
      const reimported = chartOf(createMachine(JSON.parse(committed(`${machine.id}.json`))))
      expect(reimported).toEqual(original)
      expect([...walkStates(reimported.root)].length).toBeGreaterThan(1)
      expect(allTransitions(reimported).length).toBeGreaterThan(0)
    }
  })

  it('the Mermaid diagram and the SVG name every state', () => {
    for (const { machine } of machines) {
      const chart = chartOf(machine)
      const mermaid = committed(`${machine.id}.mmd`)
      const svg = committed(`${machine.id}.svg`)
      expect(mermaid.startsWith('stateDiagram-v2\n')).toBe(true)
      expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true)
      expect(svg).not.toMatch(/https?:\/\/(?!www\.w3\.org)/)
      for (const state of walkStates(chart.root)) {
        expect(svg).toContain(`data-path="${state.path.join('.')}"`)
        if (state.path.length > 0) expect(mermaid).toContain(state.path.join('__'))
      }
    }
  })

  it('two machines with one id are refused (their files would overwrite each other)', async () => {
    const dir = join(process.cwd(), '.tmp', `dup-machines-${process.pid}`)
    mkdirSync(dir, { recursive: true })
    try {
      const source = (name: string) =>
        `import { createMachine } from 'xstate'\nexport const ${name} = createMachine({ id: 'same', initial: 'a', states: { a: {} } })\n`
      writeFileSync(join(dir, 'a.ts'), source('first'))
      writeFileSync(join(dir, 'b.ts'), source('second'))
      await expect(discoverMachines(dir)).rejects.toThrow(/machine id "same"/)
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })

  it('activePaths lists a state value with its ancestors', () => {
    expect(activePaths({ active: { running: 'sending' } })).toEqual(['', 'active', 'active.running', 'active.running.sending'])
    expect(activePaths('completed')).toEqual(['', 'completed'])
  })
})
