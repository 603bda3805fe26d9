// The layering rule, checked in CI (`npm run check:layers`): dependencies point one way,
// tools → runtime → machines → effects (interfaces only), and machines stay pure.
//
//   machines/  may import xstate, zod, each other, effects/errors.ts and effect *interfaces*
//              (the file an effect's index.ts re-exports with `export *`, e.g. effects/time/clock.ts;
//              the index itself only with `import type`); never runtime/, tools/ or an effect
//              implementation (effects/network/libp2p.ts, ...). No Date.now(), Math.random(),
//              performance.now() or timers: time and randomness come in as injected actors.
//   effects/   never import runtime/, machines/ or tools/; effects/<name>/index.ts only re-exports.
//   runtime/   never imports tools/ or test/.
//   runtime/crdt/lattices/  pure data: imports only itself, effects/errors.ts, zod, yjs, node:crypto.
//
// Prints one line per violation (file:line: why) and exits 1 if there is any.

import { readdirSync, readFileSync } from 'node:fs'
import { join, relative, resolve, dirname } from 'node:path'
import { fileURLToPath } from 'node:url'

const repository = resolve(dirname(fileURLToPath(import.meta.url)), '..')

interface Violation {
  file: string
  line: number
  why: string
}

const IMPORT = /(?:^|[\s;])(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)|^\s*import\s*['"]([^'"]+)['"]/gm
const IMPURE = [
  /\bDate\.now\s*\(/,
  /\bMath\.random\s*\(/,
  /\bperformance\.now\s*\(/,
  /\bsetTimeout\s*\(/,
  /\bsetInterval\s*\(/,
  /\bsetImmediate\s*\(/,
  /\bnew Date\s*\(\s*\)/,
]
const MACHINE_PACKAGES = new Set(['xstate', 'zod'])

function* sources(dir: string): Generator<string> {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name)
    if (entry.isDirectory()) yield* sources(path)
    else if (entry.name.endsWith('.ts')) yield path
  }
}

/** The file's text with comments blanked (line breaks kept, so line numbers stay right). */
function withoutComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, (c) => c.replace(/[^\n]/g, ' ')).replace(/(^|[^:'"`])\/\/.*$/gm, (_, lead: string) => lead)
}

const lineOf = (text: string, index: number) => text.slice(0, index).split('\n').length

/** Where an import lands, relative to the repository root ('runtime/router.ts', 'xstate', ...). */
function target(root: string, file: string, specifier: string): string {
  if (!specifier.startsWith('.')) return specifier
  return relative(root, resolve(dirname(file), specifier)).replace(/\.js$/, '.ts')
}

/** The interface file of each effect: what its index.ts re-exports with `export * from`. */
function effectInterfaces(root: string): Set<string> {
  const out = new Set(['effects/errors.ts'])
  for (const entry of readdirSync(join(root, 'effects'), { withFileTypes: true })) {
    if (!entry.isDirectory()) continue
    const index = join(root, 'effects', entry.name, 'index.ts')
    let text = ''
    try {
      text = readFileSync(index, 'utf8')
    } catch {
      continue
    }
    for (const m of text.matchAll(/export \* from '\.\/([a-z-]+)\.js'/g)) out.add(`effects/${entry.name}/${m[1]}.ts`)
  }
  return out
}

const LATTICE_PACKAGES = new Set(['zod', 'yjs', 'node:crypto'])
const LATTICES = 'runtime/crdt/lattices/'

/** Violations in the tree at `root` (default: this repository). */
export function checkLayers(root: string = repository): Violation[] {
  const out: Violation[] = []
  const interfaces = effectInterfaces(root)
  for (const layer of ['machines', 'effects', 'runtime']) {
    let files: string[]
    try {
      files = [...sources(join(root, layer))]
    } catch {
      continue
    }
    for (const file of files) {
      const text = withoutComments(readFileSync(file, 'utf8'))
      const name = relative(root, file)
      for (const match of text.matchAll(IMPORT)) {
        const specifier = match[1] ?? match[2] ?? match[3]!
        const to = target(root, file, specifier)
        // the pattern may start on the whitespace before `import`: count from the first word
        const at = { file: name, line: lineOf(text, match.index! + Math.max(0, match[0].search(/\S/))) }
        const typeOnly = /^\s*(?:import|export)\s+type\s/.test(match[0])
        if (layer === 'machines') {
          if (to.startsWith('runtime/') || to.startsWith('tools/'))
            out.push({ ...at, why: `machines import ${to}: dependencies point runtime → machines → effects` })
          else if (to.startsWith('effects/') && !interfaces.has(to) && !(typeOnly && /^effects\/[a-z-]+\/index\.ts$/.test(to)))
            out.push({
              ...at,
              why: `machines import the effect implementation ${to}: import its interface (${[...interfaces].filter((i) => i.startsWith(to.split('/').slice(0, 2).join('/') + '/')).join(', ') || 'effects/<name>/<interface>.ts'})`,
            })
          else if (!specifier.startsWith('.') && !MACHINE_PACKAGES.has(specifier))
            out.push({ ...at, why: `machines import the package ${specifier}: only xstate and zod` })
        } else if (layer === 'effects') {
          if (to.startsWith('runtime/') || to.startsWith('machines/') || to.startsWith('tools/'))
            out.push({ ...at, why: `effects import ${to}: effects depend on nothing above them` })
        } else {
          if (to.startsWith('tools/') || to.startsWith('test/'))
            out.push({ ...at, why: `runtime imports ${to}: tools and tests build on the runtime, not the other way` })
          else if (name.startsWith(LATTICES) && specifier.startsWith('.') && !to.startsWith(LATTICES) && to !== 'effects/errors.ts')
            out.push({ ...at, why: `lattices import ${to}: lattices are pure data (themselves, effects/errors.ts, zod, yjs)` })
          else if (name.startsWith(LATTICES) && !specifier.startsWith('.') && !LATTICE_PACKAGES.has(specifier))
            out.push({ ...at, why: `lattices import the package ${specifier}: only zod, yjs and node:crypto` })
        }
      }
      if (layer === 'effects' && /^effects\/[a-z-]+\/index\.ts$/.test(name)) {
        const EXPORT_FROM = /export\s+(?:type\s+)?(?:\*|\{[^}]*\})\s+from\s+'[^']+';?/g
        const stray = text.replace(EXPORT_FROM, (m) => m.replace(/[^\n]/g, ' ')).search(/\S/)
        if (stray >= 0)
          out.push({
            file: name,
            line: lineOf(text, stray),
            why: `an effect's index.ts only re-exports (the interface lives in its own file): ${text.slice(stray).split('\n')[0]}`,
          })
      }
      if (layer === 'machines') {
        for (const pattern of IMPURE) {
          for (const match of text.matchAll(new RegExp(pattern, 'g'))) {
            out.push({
              file: name,
              line: lineOf(text, match.index!),
              why: `machines read time, randomness or timers directly (${match[0].replace(/\s*\($/, '').trim()}()): use the injected clock and random actors`,
            })
          }
        }
      }
    }
  }
  return out
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const violations = checkLayers()
  for (const v of violations) console.log(`${v.file}:${v.line}: ${v.why}`)
  console.log(violations.length === 0 ? 'layers: ok' : `layers: ${violations.length} violation(s)`)
  process.exit(violations.length === 0 ? 0 : 1)
}
