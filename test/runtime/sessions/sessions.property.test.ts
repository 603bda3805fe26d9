// Properties of sessions under random network faults in the simulator (fixed fast-check seed,
// see test/setup.ts; a failure prints the seed and path to replay it).
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Simulation } from '../../../runtime/testing/simulation.js'
import { thresholdCeremony } from '../../../runtime/sessions/protocols/threshold-ceremony.js'
import { sessionMachine } from '../../../machines/session.js'
import { finalEntries, lifecycleViolations } from '../../../runtime/testing/trace-check.js'
import type { Session } from '../../../runtime/sessions/session-manager.js'

const FINALS = ['completed', 'failed', 'cancelled']
const PEERS = 3
const VERDICT_SLACK_MS = 5_000

const scenario = fc.record({
  seed: fc.integer({ min: 0, max: 1_000_000 }),
  dropRate: fc.oneof(fc.constant(0), fc.double({ min: 0, max: 0.3, noNaN: true })),
  duplicateRate: fc.double({ min: 0, max: 0.2, noNaN: true }),
  minDelayMs: fc.integer({ min: 0, max: 5 }),
  extraDelayMs: fc.integer({ min: 0, max: 150 }),
  reorder: fc.boolean(),
  partition: fc.option(
    fc.record({ atMs: fc.integer({ min: 0, max: 400 }), forMs: fc.integer({ min: 1, max: 4_000 }), victim: fc.integer({ min: 0, max: PEERS - 1 }) }),
    { nil: undefined },
  ),
  timeoutMs: fc.integer({ min: 800, max: 3_000 }),
})

describe('session properties in the simulator', () => {
  it('law: under drops, delays, duplicates, reordering and partitions a session ends exactly once and the same way on every peer, Completed only with every message before the deadline, and the trace never breaks the statechart', async () => {
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const protocol = thresholdCeremony(PEERS)
        const sim = await Simulation.create({
          seed: s.seed,
          peers: PEERS,
          faults: {
            dropRate: s.dropRate,
            duplicateRate: s.duplicateRate,
            minDelayMs: s.minDelayMs,
            maxDelayMs: s.minDelayMs + s.extraDelayMs,
            reorder: s.reorder,
          },
          runtime: { protocols: [protocol], sessions: { autoJoin: true } },
        })
        try {
          const [leader, ...rest] = sim.runtimes
          for (const r of rest)
            r.sessions.invitations$.subscribe((invite) => void r.sessions.executeProtocol(invite.sessionId, protocol.name).catch(() => undefined))
          const roster = sim.runtimes.map((r, i) => ({ peerId: r.peerId, role: `p${i + 1}` }))
          let session: Session | undefined
          let createError: unknown
          leader!.sessions.createSession('ceremony', roster, { timeoutMs: s.timeoutMs, protocol: protocol.name }).then(
            (created) => {
              session = created
              void created.executeProtocol()
            },
            (error) => (createError = error),
          )
          if (s.partition) {
            const victim = sim.runtimes[s.partition.victim]!.peerId
            sim.clock.setTimeout(() => sim.hub.partition([sim.runtimes.map((r) => r.peerId).filter((p) => p !== victim), [victim]]), s.partition.atMs)
            sim.clock.setTimeout(() => sim.hub.heal(), s.partition.atMs + s.partition.forMs)
          }
          const deadlineAt = sim.clock.now() + s.timeoutMs
          // A participant ends when the leader's verdict reaches it: after the deadline, or after a
          // partition that outlasts it heals, by a few request timeouts (1 s each) lost to drops.
          const healedAt = s.partition ? sim.clock.now() + s.partition.atMs + s.partition.forMs : 0
          const endBy = Math.max(deadlineAt, healedAt) + VERDICT_SLACK_MS
          const sessionsOf = () => sim.runtimes.map((r) => (session ? r.sessions.get(session.id) : undefined))
          const allEnded = () =>
            createError !== undefined || (session !== undefined && sessionsOf().every((x) => x === undefined || FINALS.includes(x.state().status)))
          // Liveness: everything ends by then, never later.
          const ended = await sim.runUntil(allEnded, endBy - sim.clock.now())
          expect(ended).toBe(true)
          if (createError !== undefined) {
            // invites could not be delivered before the deadline: a typed timeout, nothing half-created on the leader
            expect(createError).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
            return
          }
          for (const [index, handle] of sessionsOf().entries()) {
            if (!handle) continue // never received its invite
            const view = handle.state()
            if (view.status === 'completed') {
              // Completed ⇒ every message addressed to this peer arrived (and before the deadline)
              const results = (view.outcome as { results: Record<string, Record<string, unknown>> }).results
              const received = Object.values(results).reduce((n, byPeer) => n + Object.keys(byPeer).length, 0)
              expect(received).toBe(protocol.steps.filter((step) => step.to.includes(`p${index + 1}`)).length)
            } else {
              expect(['timeout', 'failure', 'cancelled']).toContain(view.outcome?.kind)
            }
          }
          // Agreement: every peer that knows the session ended it with the same status and kind.
          const endings = new Set(sessionsOf().flatMap((x) => (x ? [`${x.state().status}/${x.state().outcome?.kind}`] : [])))
          expect([...endings]).toHaveLength(1)
          // no loss at all ⇒ everybody completes
          const lossless = s.dropRate === 0 && s.partition === undefined && s.timeoutMs >= 5 * (s.minDelayMs + s.extraDelayMs) * 4
          if (lossless) for (const handle of sessionsOf()) expect(handle?.state().status).toBe('completed')
          for (const entries of finalEntries(sim.trace, 'session', FINALS).values()) expect(entries).toHaveLength(1)
          expect(lifecycleViolations(sim.trace, sessionMachine, 'session')).toEqual([])
          const lastFinal = Math.max(...sim.trace.filter((e) => e.type === 'transition' && FINALS.includes(String(e.state))).map((e) => e.t))
          expect(lastFinal).toBeLessThanOrEqual(endBy)
        } finally {
          await sim.stop()
        }
      }),
      { numRuns: Number(process.env.FC_RUNS ?? 25) },
    )
  })
})
