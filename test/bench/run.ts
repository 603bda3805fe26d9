// `npm run bench`: runs every benchmark, prints one table, writes bench-results.json.
// `npm run bench -- session` runs only the benches whose name contains "session"
// (`-- anti-entropy`: the anti-entropy rounds and convergence alone; `-- session,transport`: those
// two in their usual order).
//
// Each bench runs in a process of its own (this file again, with `--bench <name>`), one after the
// other, and each baseline in the same process as what it is compared with. Run in one process,
// a bench's figures depended on which benches ran before it: after the timeout bench, say,
// crdt.yjs.ratio_vs_y_protocols read 1.49-1.56 where the crdt bench alone read 1.36-1.42. It is
// not the earlier bench's garbage (with a GC forced in between it read 1.56); most likely the code
// paths the runtime shares with what ran before (xstate, msgpackr, the router) carry their type
// feedback, and y-protocols shares none of it. A bench's figures should not depend on its
// neighbours. `--in-process` runs them all in this process, as before.

import '../../effects/network/polyfill.js'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BenchReport } from './report.js'
import { benches } from './index.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const args = process.argv.slice(2)
const flag = (name: string): string | undefined => {
  const at = args.indexOf(name)
  return at >= 0 ? args[at + 1] : undefined
}

const child = flag('--bench')
if (child !== undefined) {
  // a child: one bench, its figures to the parent's file
  const report = new BenchReport()
  await benches.find((bench) => bench.name === child)!.run(report)
  writeFileSync(flag('--out')!, JSON.stringify([...report.figures]))
  process.exit(0)
}

const inProcess = args.includes('--in-process')
const filters = (args.find((a) => !a.startsWith('--')) ?? '').split(',').filter((f) => f.length > 0)
const report = new BenchReport()
const scratch = mkdtempSync(join(tmpdir(), 'aura-bench-run-'))
for (const bench of benches) {
  if (filters.length > 0 && !filters.some((f) => bench.name.includes(f))) continue
  console.log(`running ${bench.name}… (heap ${Math.round(process.memoryUsage().heapUsed / 2 ** 20)} MiB)`)
  if (inProcess) {
    await bench.run(report)
    continue
  }
  const out = join(scratch, `${bench.name}.json`)
  const run = spawnSync(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), '--bench', bench.name, '--out', out], { stdio: 'inherit' })
  if (run.status !== 0) throw new Error(`bench ${bench.name} failed (exit ${run.status ?? run.signal})`)
  for (const [key, figure] of JSON.parse(readFileSync(out, 'utf8')) as Array<[string, { value: number; unit: string; note?: string }]>) {
    report.figures.set(key, figure)
  }
}
rmSync(scratch, { recursive: true, force: true })
console.log('')
report.print()
console.log(`\nwrote ${report.write(root)}`)
process.exit(0)
