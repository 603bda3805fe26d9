// The layering rule, checked in CI (`npm run check:layers`): dependencies point one way,
// runtime → machines → effects (interfaces only), and machines stay pure.
//
//   machines/  may import xstate, zod, each other, and effect *interfaces*
//              (effects/<name>/index.ts, effects/errors.ts); never runtime/ or an effect
//              implementation (effects/network/libp2p.ts, ...). No Date.now(), Math.random(),
//              performance.now() or timers: time and randomness come in as injected actors.
//   effects/   never import runtime/ or machines/.
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
const IMPURE = [/\bDate\.now\s*\(/, /\bMath\.random\s*\(/, /\bperformance\.now\s*\(/, /\bsetTimeout\s*\(/, /\bsetInterval\s*\(/, /\bsetImmediate\s*\(/, /\bnew Date\s*\(\s*\)/]
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

const isEffectInterface = (path: string) => /^effects\/[a-z-]+\/index\.ts$/.test(path) || path === 'effects/errors.ts'

/** Violations in the tree at `root` (default: this repository). */
export function checkLayers(root: string = repository): Violation[] {
  const out: Violation[] = []
  for (const layer of ['machines', 'effects']) {
    for (const file of sources(join(root, layer))) {
      const text = withoutComments(readFileSync(file, 'utf8'))
      const name = relative(root, file)
      for (const match of text.matchAll(IMPORT)) {
        const specifier = match[1] ?? match[2] ?? match[3]!
        const to = target(root, file, specifier)
        // the pattern may start on the whitespace before `import`: count from the first word
        const at = { file: name, line: lineOf(text, match.index! + Math.max(0, match[0].search(/\S/))) }
        if (layer === 'machines') {
          if (to.startsWith('runtime/') || to.startsWith('tools/')) out.push({ ...at, why: `machines import ${to}: dependencies point runtime → machines → effects` })
          else if (to.startsWith('effects/') && !isEffectInterface(to)) out.push({ ...at, why: `machines import the effect implementation ${to}: import its interface (effects/<name>/index.ts)` })
          else if (!specifier.startsWith('.') && !MACHINE_PACKAGES.has(specifier)) out.push({ ...at, why: `machines import the package ${specifier}: only xstate and zod` })
        } else if (to.startsWith('runtime/') || to.startsWith('machines/') || to.startsWith('tools/')) {
          out.push({ ...at, why: `effects import ${to}: effects depend on nothing above them` })
        }
      }
      if (layer === 'machines') {
        for (const pattern of IMPURE) {
          for (const match of text.matchAll(new RegExp(pattern, 'g'))) {
            out.push({ file: name, line: lineOf(text, match.index!), why: `machines read time, randomness or timers directly (${match[0].trim()}): use the injected clock and random actors` })
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
