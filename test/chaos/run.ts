// `npm run chaos`: the fault campaign. Simulated: seeded runs of 5 peers under loss, duplication,
// reordering, partitions and crashes, each checked against its history (simulated.ts, history.ts).
// Prints runs, operations, violations and the seeds that failed (each replays with --seed).
// Real processes: 5 peer processes on TCP with seeded SIGKILLs and restarts while writing 2,000
// replicated keys and CRDT updates (processes.ts).
// Hostile wire: a bare libp2p node floods a peer process with bad frames and streams while a
// legitimate runtime keeps using it (hostile.ts).
//
//   npm run chaos                        1,000 simulated runs from seed 1, then 100,000 hostile frames
//   npm run chaos -- --runs 50 --seed 7  50 runs from seed 7
//   npm run chaos -- --only hostile      one part only (simulated | processes | hostile)
//   npm run chaos -- --keys 500          acknowledged writes the process campaign reaches
import '../../effects/network/polyfill.js'
import { parseArgs } from 'node:util'
import { hostileRun } from './hostile.js'
import { processCampaign } from './processes.js'
import { simulatedRun } from './simulated.js'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '1000' },
    seed: { type: 'string', default: '1' },
    frames: { type: 'string', default: '100000' },
    streams: { type: 'string', default: '300' },
    keys: { type: 'string', default: '2000' },
    only: { type: 'string' },
    quiet: { type: 'boolean', default: false },
  },
})
const runs = Number(values.runs)
const first = Number(values.seed)
if (!Number.isSafeInteger(runs) || runs < 1 || !Number.isSafeInteger(first)) {
  console.error('usage: npm run chaos -- [--runs N] [--seed S]')
  process.exit(2)
}

let violationsTotal = 0
const part = (name: string) => values.only === undefined || values.only === name

if (part('simulated')) violationsTotal += await simulated()
if (part('processes')) violationsTotal += await processes()
if (part('hostile')) violationsTotal += await hostile()
process.exit(violationsTotal === 0 ? 0 : 1)

async function simulated(): Promise<number> {
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
    if (!values.quiet && (seed - first + 1) % 50 === 0)
      console.log(`… ${seed - first + 1}/${runs} runs, ${violations.length} violations, ${Math.round((Date.now() - started) / 1000)} s`)
  }
  settle.sort((a, b) => a - b)
  console.log(
    `simulated: runs=${runs} peers=5 operations=${operations} acknowledged=${acknowledged} violations=${violations.length} failed_seeds=${failed.length ? failed.join(',') : 'none'}`,
  )
  console.log(
    `simulated: converged after heal p50=${settle[Math.floor(settle.length / 2)]} ms p99=${settle[Math.floor(settle.length * 0.99)]} ms (virtual); wall ${Math.round((Date.now() - started) / 1000)} s`,
  )
  return violations.length
}

async function processes(): Promise<number> {
  const r = await processCampaign({ keys: Number(values.keys), seed: first })
  console.log(
    `processes: peers=5 acked_writes=${r.ackedWrites} acked_increments=${r.ackedIncrements} kills=${r.kills} lost_acked_writes=${r.lostAckedWrites} diverged=${r.diverged} counter_mismatch=${r.counterMismatch} converged_after=${r.convergedAfterMs} ms wall ${Math.round(r.ms / 1000)} s`,
  )
  for (const v of r.violations) console.log(`processes violation: ${v}`)
  return r.violations.length
}

async function hostile(): Promise<number> {
  const r = await hostileRun({ frames: Number(values.frames), streams: Number(values.streams), seed: first })
  const growth = r.rssAfterMb - r.rssBeforeMb
  const problems = [
    !r.alive && 'the peer died',
    growth >= 100 && `RSS grew ${growth.toFixed(1)} MB`,
    r.legitDuring.ok === 0 && 'no legitimate request served during the attack',
    (r.legitAfter.ok === 0 || r.legitAfter.failed > 0) && 'legitimate requests failed after the attack',
    JSON.stringify(r.tags) !== JSON.stringify(['kept']) && `the peer's CRDT state changed: ${JSON.stringify(r.tags)}`,
  ].filter((p): p is string => typeof p === 'string')
  const rejected = Object.entries(r.rejected)
    .map(([code, n]) => `${code}=${n}`)
    .join(' ')
  console.log(
    `hostile: frames=${r.framesSent} streams=${r.streamsOpened} alive=${r.alive} rss_growth_mb=${growth.toFixed(1)} legit_during=${r.legitDuring.ok}/${r.legitDuring.ok + r.legitDuring.failed} legit_after=${r.legitAfter.ok}/${r.legitAfter.ok + r.legitAfter.failed} wall ${Math.round(r.ms / 1000)} s`,
  )
  console.log(`hostile: rejected ${rejected}`)
  for (const p of problems) console.log(`hostile violation: ${p}`)
  return problems.length
}
