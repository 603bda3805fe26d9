// Property-testing a user's own choreography: `checkProtocol(choreography, options)` runs it in the
// simulator (one peer per role, the first role's peer leads) under fault schedules drawn by
// fast-check, and checks the laws every session must keep plus the caller's invariants. A failure
// throws fast-check's report: the seed and the shrunk fault schedule, which replay the run exactly.
//
// Laws checked on every run:
//   ends        every peer ends the session (completed, failed or cancelled), and only once
//   agrees      every peer ends it the same way (status and outcome kind)
//   lifecycle   no peer's session actor takes a transition its statechart does not have
//   lossless    with no loss and no partition, and time enough, every peer completes

import fc from 'fast-check'
import type { Choreography } from '../sessions/choreography.js'
import { sessionMachine } from '../../machines/session.js'
import type { SessionOutcome } from '../../machines/session.js'
import type { Session } from '../sessions/session-manager.js'
import { Simulation, type TraceEvent } from './simulation.js'
import { finalEntries, lifecycleViolations } from './trace-check.js'

/** One run's faults: rates and delays for the whole run, and at most one partition that heals. */
export interface FaultSchedule {
  dropRate: number
  duplicateRate: number
  minDelayMs: number
  maxDelayMs: number
  reorder: boolean
  /** the peer at index `victim` is cut off from the others from `atMs` for `forMs` */
  partition?: { atMs: number; forMs: number; victim: number }
}

/**
 * Fault schedules for `peers` peers; bounds are options (defaults: up to 30% loss, 100 ms delay).
 * @example
 * await checkProtocol(greeting, { faults: faultSchedule(2, { maxDropRate: 0.3, partitions: true }) })
 */
export function faultSchedule(peers: number, bounds: { maxDropRate?: number; maxDelayMs?: number; partitions?: boolean } = {}): fc.Arbitrary<FaultSchedule> {
  const maxDrop = bounds.maxDropRate ?? 0.3
  const maxDelay = bounds.maxDelayMs ?? 100
  return fc.record(
    {
      dropRate: fc.oneof(fc.constant(0), fc.double({ min: 0, max: maxDrop, noNaN: true })),
      duplicateRate: fc.double({ min: 0, max: 0.2, noNaN: true }),
      minDelayMs: fc.integer({ min: 0, max: Math.min(5, maxDelay) }),
      maxDelayMs: fc.integer({ min: Math.min(5, maxDelay), max: maxDelay }),
      reorder: fc.boolean(),
      partition:
        bounds.partitions === false
          ? fc.constant(undefined)
          : fc.option(
              fc.record({ atMs: fc.integer({ min: 0, max: 500 }), forMs: fc.integer({ min: 1, max: 3_000 }), victim: fc.integer({ min: 0, max: peers - 1 }) }),
              { nil: undefined },
            ),
    },
    { requiredKeys: ['dropRate', 'duplicateRate', 'minDelayMs', 'maxDelayMs', 'reorder'] },
  )
}

/** What one run left behind, for the caller's invariants. */
export interface ProtocolRun {
  seed: number
  faults: FaultSchedule
  /** per role: how its peer ended the session (undefined if it never heard of it) */
  outcomes: Record<string, { status: string; outcome: SessionOutcome | null } | undefined>
  trace: readonly TraceEvent[]
}

/** An invariant: throw, or return a message, when the run breaks it. */
export type ProtocolInvariant = (run: ProtocolRun) => void | string | undefined

export interface CheckProtocolOptions {
  /** fault-schedule runs (default 50) */
  runs?: number
  /** fast-check seed (default: fast-check's global configuration) */
  seed?: number
  faults?: fc.Arbitrary<FaultSchedule>
  /** the session's timeout (default 2,000 virtual ms) */
  timeoutMs?: number
  invariants?: ProtocolInvariant[]
}

const FINALS = ['completed', 'failed', 'cancelled']
/** How long participants keep asking a leader cut off for good (virtual ms): short, so runs end. */
const VERDICT_GRACE_MS = 2_000

/**
 * Runs `choreography` in the simulator under `runs` fault schedules and checks the built-in trace
 * laws (legal transitions, one final state per session, every peer ends the same way) and your
 * invariants; throws with the seed and the schedule of the first run that breaks one.
 * @example
 * await checkProtocol(greeting, {
 *   runs: 50,
 *   seed: 42,
 *   invariants: [(run) => (run.outcomes.server?.status === 'completed' && run.outcomes.client?.status !== 'completed' ? 'the server finished alone' : undefined)],
 * })
 */
export async function checkProtocol(choreography: Choreography, options: CheckProtocolOptions = {}): Promise<void> {
  const peers = choreography.roles.length
  const timeoutMs = options.timeoutMs ?? 2_000
  const property = fc.asyncProperty(fc.integer({ min: 0, max: 2 ** 31 - 1 }), options.faults ?? faultSchedule(peers), async (seed, faults) => {
    const run = await runOnce(choreography, seed, faults, timeoutMs)
    const broken = [
      ...laws(run, choreography, timeoutMs),
      ...(options.invariants ?? []).map((check) => check(run)).filter((m): m is string => typeof m === 'string'),
    ]
    if (broken.length > 0) throw new Error(`${choreography.name}: ${broken.join('; ')}`)
  })
  try {
    await fc.assert(property, { numRuns: options.runs ?? 50, ...(options.seed !== undefined ? { seed: options.seed } : {}) })
  } catch (error) {
    // fast-check keeps the broken law in `cause`; say it in the message, beside seed and schedule
    const cause = (error as { cause?: unknown }).cause
    if (!(error instanceof Error) || !(cause instanceof Error)) throw error
    throw new Error(`${error.message}\n${cause.message}`, { cause })
  }
}

async function runOnce(choreography: Choreography, seed: number, faults: FaultSchedule, timeoutMs: number): Promise<ProtocolRun> {
  const { partition, ...rates } = faults
  const sim = await Simulation.create({
    seed,
    peers: choreography.roles.length,
    faults: rates,
    runtime: { protocols: [choreography], sessions: { autoJoin: true, verdictGraceMs: VERDICT_GRACE_MS } },
  })
  try {
    const [leader, ...rest] = sim.runtimes
    for (const r of rest)
      r.sessions.invitations$.subscribe((invite) => void r.sessions.executeProtocol(invite.sessionId, choreography.name).catch(() => undefined))
    const roster = sim.runtimes.map((r, i) => ({ peerId: r.peerId, role: choreography.roles[i]! }))
    let session: Session | undefined
    let refused = false
    leader!.sessions.createSession(choreography.name, roster, { timeoutMs, protocol: choreography.name }).then(
      (created) => {
        session = created
        void created.executeProtocol().catch(() => undefined)
      },
      () => (refused = true),
    )
    if (partition) {
      const victim = sim.runtimes[partition.victim]!.peerId
      sim.clock.setTimeout(() => sim.hub.partition([sim.runtimes.map((r) => r.peerId).filter((p) => p !== victim), [victim]]), partition.atMs)
      sim.clock.setTimeout(() => sim.hub.heal(), partition.atMs + partition.forMs)
    }
    const views = () => sim.runtimes.map((r) => (session ? r.sessions.get(session.id)?.state() : undefined))
    const settled = () => refused || (session !== undefined && views().every((v) => v === undefined || FINALS.includes(v.status)))
    const horizon = timeoutMs + (partition ? partition.atMs + partition.forMs : 0) + VERDICT_GRACE_MS + 5_000
    await sim.runUntil(settled, horizon)
    const outcomes: ProtocolRun['outcomes'] = {}
    for (const [i, view] of views().entries()) outcomes[choreography.roles[i]!] = view ? { status: view.status, outcome: view.outcome } : undefined
    return { seed, faults, outcomes, trace: [...sim.trace] }
  } finally {
    await sim.stop()
  }
}

function laws(run: ProtocolRun, choreography: Choreography, timeoutMs: number): string[] {
  const out: string[] = []
  const known = Object.entries(run.outcomes).filter((e): e is [string, { status: string; outcome: SessionOutcome | null }] => e[1] !== undefined)
  for (const [role, view] of known) if (!FINALS.includes(view.status)) out.push(`ends: ${role} is still ${view.status}`)
  const ways = new Set(known.map(([, v]) => `${v.status}/${v.outcome?.kind ?? ''}`))
  if (ways.size > 1) out.push(`agrees: ${known.map(([role, v]) => `${role} ${v.status}/${v.outcome?.kind ?? '-'}`).join(', ')}`)
  for (const [actor, entries] of finalEntries(run.trace, 'session', FINALS))
    if (entries.length > 1) out.push(`ends once: ${actor} entered ${entries.join(', ')}`)
  out.push(...lifecycleViolations(run.trace, sessionMachine, 'session').map((v) => `lifecycle: ${v}`))
  const f = run.faults
  const lossless = f.dropRate === 0 && f.partition === undefined && timeoutMs >= 20 * Math.max(1, f.maxDelayMs) * (choreography.steps.length + 4)
  if (lossless)
    for (const role of choreography.roles)
      if (run.outcomes[role]?.status !== 'completed') out.push(`lossless: ${role} ended ${run.outcomes[role]?.status ?? 'without the session'}`)
  return out
}
