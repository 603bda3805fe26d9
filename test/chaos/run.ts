// `npm run chaos`: the fault campaign. Simulated: seeded runs of 5 peers under loss, duplication,
// reordering, partitions and crashes, each checked against its history (simulated.ts, history.ts).
// Prints runs, operations, violations and the seeds that failed (each replays with --seed).
//
//   npm run chaos                        1,000 simulated runs from seed 1
//   npm run chaos -- --runs 50 --seed 7  50 runs from seed 7
import '../../runtime/polyfill.js'
import { parseArgs } from 'node:util'
import { simulatedRun } from './simulated.js'

const { values } = parseArgs({ options: { runs: { type: 'string', default: '1000' }, seed: { type: 'string', default: '1' }, quiet: { type: 'boolean', default: false } } })
const runs = Number(values.runs)
const first = Number(values.seed)
if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(first)) {
  console.error('usage: npm run chaos -- [--runs N] [--seed S]')
  process.exit(2)
}

const started = Date.now()
let operations = 0
let acknowledged = 0
const failed: number[] = []
const violations: string[] = []
const settle: number[] = []
for (let seed = first; seed < first + runs; seed++) {
  const report = await simulatedRun(seed)
  operations += report.operations
  acknowledged += report.acknowledged
  settle.push(report.convergedAfterMs)
  if (report.violations.length > 0) {
    failed.push(seed)
    violations.push(...report.violations)
    if (!values.quiet) for (const v of report.violations) console.log(v)
  }
  if (!values.quiet && (seed - first + 1) % 50 === 0) console.log(`… ${seed - first + 1}/${runs} runs, ${violations.length} violations, ${Math.round((Date.now() - started) / 1000)} s`)
}
settle.sort((a, b) => a - b)
console.log(`simulated: runs=${runs} peers=5 operations=${operations} acknowledged=${acknowledged} violations=${violations.length} failed_seeds=${failed.length ? failed.join(',') : 'none'}`)
console.log(`simulated: converged after heal p50=${settle[Math.floor(settle.length / 2)]} ms p99=${settle[Math.floor(settle.length * 0.99)]} ms (virtual); wall ${Math.round((Date.now() - started) / 1000)} s`)
process.exit(violations.length === 0 ? 0 : 1)
