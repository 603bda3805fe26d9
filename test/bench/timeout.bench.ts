// Cost of a cancel fan-out to 10 peers: an operation runs on 10 peers, then the origin cancels
// it and waits for every peer to confirm its actors stopped. Simulated (virtual ms, 1–5 ms links)
// and real (11 runtimes over libp2p TCP loopback, wall ms).

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime, type Runtime } from '../../runtime/core/runtime.js'
import { Simulation } from '../../runtime/testing/simulation.js'
import { quantile, type BenchReport } from './report.js'

const FANOUT = 10
const ROUNDS = 20

function hang(runtime: Runtime): void {
  runtime.timeouts.register('hang', async (_payload, ctx) => {
    await ctx.sleep(24 * 3600_000)
  })
}

/** Starts an operation on every other runtime; resolves its id once every callee runs it. */
async function spread(origin: Runtime, callees: Runtime[], tick: () => Promise<void>): Promise<string> {
  let operationId = ''
  void origin.timeouts
    .withTimeout(3600_000, (_signal, ctx) => {
      operationId = ctx.operationId
      return Promise.all(callees.map((c) => ctx.call(c.peerId, 'hang')))
    })
    .catch(() => undefined)
  while (!operationId || callees.some((c) => !c.timeouts.activeOperations().includes(operationId))) await tick()
  return operationId
}

async function simulated(): Promise<number> {
  const sim = await Simulation.create({ seed: 'bench', peers: FANOUT + 1, faults: { minDelayMs: 1, maxDelayMs: 5 } })
  const [origin, ...callees] = sim.runtimes as [Runtime, ...Runtime[]]
  for (const c of callees) hang(c)
  const samples: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const id = await spread(origin, callees, () => sim.run(1))
    const start = sim.clock.now()
    let done = false
    void origin.timeouts.cancel(id).then(() => (done = true))
    await sim.runUntil(() => done, 10_000, 1)
    samples.push(sim.clock.now() - start)
  }
  await sim.stop()
  return quantile(samples, 0.5)
}

async function tcp(): Promise<number> {
  const dirs: string[] = []
  const runtimes: Runtime[] = []
  for (let i = 0; i <= FANOUT; i++) {
    const dataDir = mkdtempSync(join(tmpdir(), 'aura-bench-'))
    dirs.push(dataDir)
    runtimes.push(await createRuntime({ dataDir }))
  }
  const [origin, ...callees] = runtimes as [Runtime, ...Runtime[]]
  for (const c of callees) {
    hang(c)
    await origin.connect(c.addresses()[0]!)
  }
  const samples: number[] = []
  for (let i = 0; i < ROUNDS; i++) {
    const id = await spread(origin, callees, () => new Promise((r) => setImmediate(r)))
    const start = performance.now()
    await origin.timeouts.cancel(id)
    samples.push(performance.now() - start)
  }
  for (const r of runtimes) await r.stop()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
  return quantile(samples, 0.5)
}

export const timeoutBench = {
  name: 'timeout',
  async run(report: BenchReport): Promise<void> {
    report.add('timeout.cancel_fanout_10.sim_ms', await simulated(), 'ms', 'virtual time, links 1–5 ms, until all 10 confirm (p50)')
    report.add('timeout.cancel_fanout_10.tcp_ms', await tcp(), 'ms', '11 runtimes, libp2p TCP loopback, until all 10 confirm (p50)')
  },
}
