// Timeout coordination across peers in the simulator: deadlines travel with the request and
// shrink as they hop; expiry or cancellation at the origin stops the work on every peer.
import { afterEach, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { z } from 'zod'
import { Simulation } from '../../../runtime/testing/simulation.js'
import { defineChoreography } from '../../../runtime/sessions/choreography.js'
import type { Runtime } from '../../../runtime/core/runtime.js'
import type { OperationContext } from '../../../runtime/timeouts/timeout-coordinator.js'
import { drive } from '../../fixtures/simulation-drive.js'
import { componentsOf } from '../../../runtime/core/components.js'

const sims: Simulation[] = []
afterEach(async () => {
  for (const sim of sims.splice(0)) await sim.stop()
})

async function simulate(seed: number, peers = 3, faults = { minDelayMs: 1, maxDelayMs: 5 }, runtime = {}) {
  const sim = await Simulation.create({ seed, peers, faults, runtime })
  sims.push(sim)
  return sim
}

/** Registers `slow`: sleeps payload.ms on the clock, records when it finished or was cancelled. */
function registerSlow(runtime: Runtime, log: Array<{ peer: string; what: 'done' | 'aborted'; at: number; deadlineAt: number }>) {
  runtime.timeouts.register('slow', async (payload, ctx) => {
    const { ms, then } = payload as { ms: number; then?: { peer: string; ms: number } }
    try {
      await ctx.sleep(ms)
      const nested = then ? await ctx.call(then.peer, 'slow', { ms: then.ms }) : undefined
      log.push({ peer: runtime.peerId, what: 'done', at: componentsOf(runtime).clock.now(), deadlineAt: ctx.deadlineAt })
      return { ok: true, nested }
    } catch (error) {
      log.push({ peer: runtime.peerId, what: 'aborted', at: componentsOf(runtime).clock.now(), deadlineAt: ctx.deadlineAt })
      throw error
    }
  })
}

describe('timeout coordination', () => {
  it('withTimeout returns the value in time, and expires with DeadlineExceeded and an aborted signal', async () => {
    const sim = await simulate(1, 1)
    const [a] = sim.runtimes as [Runtime]
    const ok = await drive(
      sim,
      a.timeouts.withTimeout(100, async (_signal, ctx) => (await ctx.sleep(20), 'done')),
      1_000,
    )
    expect(ok.value).toBe('done')
    let aborted = false
    const late = await drive(
      sim,
      a.timeouts.withTimeout(100, async (signal, ctx) => {
        signal.addEventListener('abort', () => (aborted = true))
        await ctx.sleep(1_000)
      }),
      1_000,
    )
    expect(late.error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    expect(aborted).toBe(true)
    expect(a.metrics().counters['timeout.expired']).toBe(1)
    expect(a.metrics().latency['timeout.time_left']?.count).toBe(1)
  })

  it('coordinated timeouts: fail-fast fails on the first error, best-effort returns what finished', async () => {
    const sim = await simulate(2, 1)
    const [a] = sim.runtimes as [Runtime]
    const ops = (ctxMs: number[]) => ctxMs.map((ms, i) => ({ id: `op${i}`, run: async (_s: AbortSignal, ctx: OperationContext) => (await ctx.sleep(ms), i) }))
    const best = await drive(sim, a.timeouts.withCoordinatedTimeouts(100, ops([10, 50, 500]), 'best-effort'), 1_000)
    expect(best.value).toMatchObject({ status: 'partial', results: { op0: 0, op1: 1 }, unfinished: ['op2'] })
    const failing = [{ id: 'bad', run: async () => Promise.reject(new Error('boom')) }, ...ops([500])]
    const fast = await drive(sim, a.timeouts.withCoordinatedTimeouts(100, failing, 'fail-fast'), 1_000)
    expect(fast.value).toMatchObject({ status: 'failed', failedOp: 'bad' })
    expect(fast.at).toBeLessThan(sim.clock.now() + 1)
  })

  it('the deadline travels with remote calls; expiry at the origin cancels the work on every peer, nested calls included', async () => {
    const sim = await simulate(3, 3)
    const [a, b, c] = sim.runtimes as [Runtime, Runtime, Runtime]
    const log: Array<{ peer: string; what: 'done' | 'aborted'; at: number; deadlineAt: number }> = []
    for (const r of sim.runtimes) registerSlow(r, log)
    const start = sim.clock.now()
    const outcome = await drive(
      sim,
      a.timeouts.withTimeout(200, (_signal, ctx) =>
        Promise.all([ctx.call(b.peerId, 'slow', { ms: 50 }), ctx.call(b.peerId, 'slow', { ms: 10, then: { peer: c.peerId, ms: 5_000 } })]),
      ),
      2_000,
    )
    expect(outcome.error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    expect(outcome.at - start).toBeLessThanOrEqual(201)
    await sim.run(100) // let the cancel fan out
    expect(log.filter((e) => e.what === 'done').every((e) => e.at <= e.deadlineAt)).toBe(true)
    expect(log.some((e) => e.peer === c.peerId && e.what === 'aborted')).toBe(true)
    for (const r of sim.runtimes) expect(r.timeouts.activeOperations()).toEqual([])
    // one budget, carried along: each hop's deadline is the origin's plus at most the time in
    // flight to it (budgets are relative, so transit is not subtracted; the origin's timer bounds it)
    expect(log.length).toBeGreaterThan(0)
    for (const e of log) expect(e.deadlineAt - (start + 200)).toBeGreaterThanOrEqual(0)
    for (const e of log) expect(e.deadlineAt - (start + 200)).toBeLessThanOrEqual(e.peer === c.peerId ? 10 : 5)
  })

  it('a request with no budget left, an unknown operation and a forged cancel get typed errors', async () => {
    const sim = await simulate(4, 2, { minDelayMs: 300, maxDelayMs: 300 })
    const [a, b] = sim.runtimes as [Runtime, Runtime]
    const log: Array<{ peer: string; what: 'done' | 'aborted'; at: number; deadlineAt: number }> = []
    registerSlow(b, log)
    // the origin gives up at its deadline, whatever the callee does with the slow request
    const start = sim.clock.now()
    const late = await drive(
      sim,
      a.timeouts.withTimeout(100, (_s, ctx) => ctx.call(b.peerId, 'slow', { ms: 1 })),
      2_000,
    )
    expect(late.error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    expect(late.at - start).toBeLessThanOrEqual(101)
    await sim.run(1_000)
    // a run request sent with its budget spent is refused without running
    log.length = 0
    const spent = drive(
      sim,
      componentsOf(a).router.request(b.peerId, 'timeout', {
        kind: 'run',
        deadline: sim.clock.now(),
        payload: { operationId: 'op-spent', name: 'slow', payload: { ms: 1 } },
      }),
      2_000,
    )
    expect((await spent).error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    expect(b.metrics().errors['DEADLINE_EXCEEDED']).toBeGreaterThanOrEqual(1)
    expect(log).toEqual([])
    const unknown = await drive(
      sim,
      a.timeouts.withTimeout(5_000, (_s, ctx) => ctx.call(b.peerId, 'no-such-op')),
      5_000,
    )
    expect(unknown.error).toMatchObject({ code: 'UNKNOWN_PROTOCOL' })
    const badCancel = await drive(sim, componentsOf(a).router.request(b.peerId, 'timeout', { kind: 'cancel', payload: { operationId: 42 } }), 5_000)
    expect(badCancel.error).toMatchObject({ code: 'INVALID_INPUT' })
  })

  it('session with timeout coordination: an expired timeout cancels the session on every peer', async () => {
    let release: () => void = () => undefined
    const gate = new Promise<void>((resolve) => (release = resolve))
    const slow = defineChoreography({
      name: 'slow-pair',
      roles: ['a', 'b', 'c'],
      steps: [
        { label: 'hello', from: 'a', to: ['b', 'c'], payload: z.object({ n: z.number() }), produce: () => ({ n: 1 }) },
        { label: 'stuck', from: 'b', to: ['a', 'c'], payload: z.object({ n: z.number() }), produce: async () => (await gate, { n: 2 }) },
      ],
    })
    const sim = await simulate(5, 3, { minDelayMs: 1, maxDelayMs: 5 }, { protocols: [slow], sessions: { autoJoin: true } })
    const [a, ...rest] = sim.runtimes as [Runtime, ...Runtime[]]
    for (const r of rest) r.sessions.invitations$.subscribe((invite) => void r.sessions.executeProtocol(invite.sessionId, invite.protocol))
    const roster = sim.runtimes.map((r, i) => ({ peerId: r.peerId, role: ['a', 'b', 'c'][i]! }))
    let sessionId = ''
    const outcome = await drive(
      sim,
      a.timeouts.withTimeout(500, async (signal) => {
        const session = await a.sessions.createSession('slow', roster, { timeoutMs: 60_000, protocol: slow.name })
        sessionId = session.id
        return session.executeProtocol(undefined, { signal })
      }),
      2_000,
    )
    expect(outcome.error).toMatchObject({ code: 'DEADLINE_EXCEEDED' })
    await sim.run(200)
    // the session also inherits the operation's deadline (timeout-context.ts), so a peer whose
    // copy of that deadline comes before the cancel reaches it ends timed out instead
    for (const r of sim.runtimes) expect(['cancelled', 'timeout']).toContain(r.sessions.get(sessionId)?.state().outcome?.kind)
    expect(a.sessions.get(sessionId)?.state().status).toBe('cancelled')
    release()
  })

  it('law: under random delays, drops and partitions no operation completes after its deadline, and after it ends no peer keeps an actor of it alive', async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.record({
          seed: fc.integer({ min: 0, max: 1_000_000 }),
          dropRate: fc.double({ min: 0, max: 0.2, noNaN: true }),
          maxDelayMs: fc.integer({ min: 1, max: 80 }),
          timeoutMs: fc.integer({ min: 20, max: 400 }),
          calls: fc.array(
            fc.record({
              to: fc.integer({ min: 1, max: 3 }),
              ms: fc.integer({ min: 0, max: 300 }),
              nested: fc.option(fc.record({ to: fc.integer({ min: 1, max: 3 }), ms: fc.integer({ min: 0, max: 300 }) }), { nil: undefined }),
            }),
            { minLength: 1, maxLength: 4 },
          ),
          partitionAt: fc.option(fc.integer({ min: 0, max: 300 }), { nil: undefined }),
        }),
        async (s) => {
          const sim = await Simulation.create({ seed: s.seed, peers: 4, faults: { minDelayMs: 0, maxDelayMs: s.maxDelayMs, dropRate: s.dropRate } })
          try {
            const log: Array<{ peer: string; what: 'done' | 'aborted'; at: number; deadlineAt: number }> = []
            for (const r of sim.runtimes) registerSlow(r, log)
            const [origin] = sim.runtimes as [Runtime]
            const id = (i: number) => sim.runtimes[i]!.peerId
            if (s.partitionAt !== undefined)
              sim.clock.setTimeout(
                () =>
                  sim.hub.partition([
                    [id(0), id(1)],
                    [id(2), id(3)],
                  ]),
                s.partitionAt,
              )
            const start = sim.clock.now()
            const outcome = await drive(
              sim,
              origin.timeouts.withTimeout(s.timeoutMs, (_signal, ctx) =>
                Promise.all(
                  s.calls.map((c) => ctx.call(id(c.to), 'slow', { ms: c.ms, ...(c.nested ? { then: { peer: id(c.nested.to), ms: c.nested.ms } } : {}) })),
                ),
              ),
              s.timeoutMs + 1_000,
            )
            // no operation completes after its deadline: not at the origin, not on any peer
            if (outcome.error === undefined) expect(outcome.at).toBeLessThanOrEqual(start + s.timeoutMs)
            for (const entry of log.filter((e) => e.what === 'done')) expect(entry.at).toBeLessThanOrEqual(start + s.timeoutMs)
            // heal, let cancels and stragglers land: nobody keeps an actor of the operation
            sim.hub.heal()
            await sim.run(s.timeoutMs + 2_500)
            for (const r of sim.runtimes) expect(r.timeouts.activeOperations()).toEqual([])
          } finally {
            await sim.stop()
          }
        },
      ),
      { numRuns: Number(process.env.FC_RUNS ?? 40) },
    )
  })
})
