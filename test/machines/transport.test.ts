import { getShortestPaths } from '@xstate/graph'
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { createActor, fromCallback } from 'xstate'
import {
  transportInputSchema,
  transportMachine,
  type BackoffTimerInput,
  type ConnectorInput,
  type DrainTimerInput,
  type TransportEvent,
  type TransportInput,
} from '../../machines/transport.js'

const reconnect = { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 100, multiplier: 2, jitter: 'none' as const }

function start(overrides: Partial<TransportInput> = {}) {
  const dials: ConnectorInput[] = []
  let backoffs = 0
  let drains = 0
  const machine = transportMachine.provide({
    actors: {
      // The test plays the network: it answers CONNECTED / CONNECT_FAILED itself.
      connector: fromCallback<TransportEvent, ConnectorInput>(({ input }) => {
        dials.push(input)
      }),
      backoffTimer: fromCallback<TransportEvent, BackoffTimerInput>(() => {
        backoffs++
      }),
      drainTimer: fromCallback<TransportEvent, DrainTimerInput>(() => {
        drains++
      }),
    },
  })
  const actor = createActor(machine, {
    input: { channelId: 'c1', peerId: 'p', contextId: 'ctx', epoch: 3, addresses: ['/a', '/b'], reconnect, drainTimeoutMs: 50, ...overrides },
  })
  actor.start()
  return {
    actor,
    dials,
    backoffs: () => backoffs,
    drains: () => drains,
    send: (e: TransportEvent) => actor.send(e),
    state: () => actor.getSnapshot().value,
    ctx: () => actor.getSnapshot().context,
  }
}

const failed = { type: 'CONNECT_FAILED', error: { code: 'PEER_UNREACHABLE', message: 'down' } } as const

function open(overrides: Partial<TransportInput> = {}) {
  const t = start(overrides)
  t.send({ type: 'CONNECT' })
  t.send({ type: 'CONNECTED' })
  expect(t.state()).toBe('Open')
  return t
}

describe('transportMachine: connecting', () => {
  it('Idle → Connecting (dialing the first address) → Open', () => {
    const t = start()
    expect(t.state()).toBe('Idle')
    t.send({ type: 'CONNECT' })
    expect(t.state()).toEqual({ Connecting: 'dialing' })
    expect(t.dials).toEqual([{ peerId: 'p', channelId: 'c1', contextId: 'ctx', epoch: 3, address: '/a', addressIndex: 0, round: 1 }])
    t.send({ type: 'CONNECTED' })
    expect(t.state()).toBe('Open')
  })

  it('fails over to the next address at once, backs off after a full round, then starts over', () => {
    const t = start()
    t.send({ type: 'CONNECT' })
    t.send(failed)
    expect(t.state()).toEqual({ Connecting: 'dialing' })
    expect(t.dials.map((d) => d.address)).toEqual(['/a', '/b'])
    t.send(failed)
    expect(t.state()).toEqual({ Connecting: 'backoff' })
    expect(t.backoffs()).toBe(1)
    t.send({ type: 'RETRY' })
    expect(t.state()).toEqual({ Connecting: 'dialing' })
    expect(t.dials.at(-1)).toMatchObject({ address: '/a', addressIndex: 0, round: 2 })
    t.send({ type: 'CONNECTED' })
    expect(t.state()).toBe('Open')
    expect(t.ctx().error).toBeNull()
  })

  it('fails once every round over every address failed', () => {
    const t = start()
    t.send({ type: 'CONNECT' })
    for (let i = 0; i < 3; i++) t.send(failed)
    t.send({ type: 'RETRY' })
    t.send(failed)
    expect(t.state()).toEqual({ Connecting: 'dialing' })
    t.send(failed)
    expect(t.state()).toBe('Failed')
    expect(t.ctx().error?.code).toBe('PEER_UNREACHABLE')
    expect(t.actor.getSnapshot().output).toMatchObject({ state: 'Failed' })
  })

  it('a permanent connect failure (e.g. the peer rejects a stale epoch) fails at once', () => {
    const t = start()
    t.send({ type: 'CONNECT' })
    t.send({ type: 'CONNECT_FAILED', error: { code: 'EPOCH_REGRESSION', message: 'old' }, retryable: false })
    expect(t.state()).toBe('Failed')
    expect(t.dials).toHaveLength(1)
  })

  it('without addresses it dials once with no address and backs off between rounds', () => {
    const t = start({ addresses: [] })
    t.send({ type: 'CONNECT' })
    expect(t.dials[0]!.address).toBeUndefined()
    t.send(failed)
    expect(t.state()).toEqual({ Connecting: 'backoff' })
  })

  it('CLOSE, STALE, REMOTE_CLOSED and a newer epoch end a connecting channel', () => {
    for (const [event, reason] of [
      [{ type: 'CLOSE' }, 'local'],
      [{ type: 'STALE' }, 'stale'],
      [{ type: 'REMOTE_CLOSED' }, 'remote'],
      [{ type: 'EPOCH_BUMP', epoch: 4 }, 'epoch'],
    ] as const) {
      const t = start()
      t.send({ type: 'CONNECT' })
      t.send(event)
      expect(t.state()).toBe('Closed')
      expect(t.ctx().closeReason).toBe(reason)
    }
  })

  it('Idle closes on CLOSE, STALE and a newer epoch', () => {
    expect(
      (() => {
        const t = start()
        t.send({ type: 'CLOSE' })
        return t.ctx().closeReason
      })(),
    ).toBe('local')
    expect(
      (() => {
        const t = start()
        t.send({ type: 'STALE' })
        return t.ctx().closeReason
      })(),
    ).toBe('stale')
    const t = start()
    t.send({ type: 'EPOCH_BUMP', epoch: 9 })
    expect(t.state()).toBe('Closed')
    expect(t.ctx().epoch).toBe(9)
  })
})

describe('transportMachine: budget and draining', () => {
  // Per-message accounting is not the machine's (runtime/transport/flow-budget.ts, tested in
  // test/runtime/transport/flow-budget.test.ts): it hears BUDGET_SPENT and DRAINED only.
  it('BUDGET_SPENT drains; DRAINED (nothing in flight any more) closes it with reason budget', () => {
    const t = open()
    t.send({ type: 'BUDGET_SPENT' })
    expect(t.state()).toBe('Draining')
    expect(t.drains()).toBe(1)
    expect(t.ctx().closeReason).toBe('budget')
    t.send({ type: 'DRAINED' })
    expect(t.state()).toBe('Closed')
    expect(t.actor.getSnapshot().output).toEqual({ state: 'Closed', closeReason: 'budget', error: null })
  })

  it('DRAINED while open changes nothing: only a draining channel closes on it', () => {
    const t = open()
    t.send({ type: 'DRAINED' })
    expect(t.state()).toBe('Open')
    expect(t.ctx().closeReason).toBeNull()
  })

  it('CLOSE drains in-flight sends; DRAIN_TIMEOUT closes anyway', () => {
    const t = open()
    t.send({ type: 'CLOSE' })
    expect(t.state()).toBe('Draining')
    expect(t.ctx().closeReason).toBe('local')
    t.send({ type: 'DRAIN_TIMEOUT' })
    expect(t.state()).toBe('Closed')
    expect(t.ctx().closeReason).toBe('drain-timeout')
  })

  it('STALE and REMOTE_CLOSED close an open or a draining channel at once; DRAINED closes a draining one gracefully', () => {
    for (const [draining, type, reason] of [
      [false, 'STALE', 'stale'],
      [false, 'REMOTE_CLOSED', 'remote'],
      [true, 'STALE', 'stale'],
      [true, 'REMOTE_CLOSED', 'remote'],
      [true, 'DRAINED', 'local'],
    ] as const) {
      const t = open()
      if (draining) t.send({ type: 'CLOSE' })
      t.send({ type })
      expect(t.state()).toBe('Closed')
      expect(t.ctx().closeReason).toBe(reason)
    }
  })
})

describe('transportMachine: epochs', () => {
  it('a newer epoch drains the channel and moves its epoch forward', () => {
    const t = open()
    t.send({ type: 'EPOCH_BUMP', epoch: 5 })
    expect(t.state()).toBe('Draining')
    expect(t.ctx()).toMatchObject({ epoch: 5, closeReason: 'epoch' })
    t.send({ type: 'EPOCH_BUMP', epoch: 6 })
    expect(t.ctx().epoch).toBe(6)
    t.send({ type: 'DRAINED' })
    expect(t.state()).toBe('Closed')
  })

  it('the same epoch again changes nothing', () => {
    const t = open()
    t.send({ type: 'EPOCH_BUMP', epoch: 3 })
    expect(t.state()).toBe('Open')
    expect(t.ctx().epoch).toBe(3)
  })

  it('an older epoch is a regression: Failed with EPOCH_REGRESSION, epoch unchanged', () => {
    for (const setupState of ['Idle', 'Connecting', 'Open', 'Draining'] as const) {
      const t = start()
      if (setupState !== 'Idle') t.send({ type: 'CONNECT' })
      if (setupState === 'Open' || setupState === 'Draining') t.send({ type: 'CONNECTED' })
      if (setupState === 'Draining') t.send({ type: 'CLOSE' })
      t.send({ type: 'EPOCH_BUMP', epoch: 2 })
      expect(t.state()).toBe('Failed')
      expect(t.ctx().epoch).toBe(3)
      expect(t.ctx().error?.code).toBe('EPOCH_REGRESSION')
    }
  })

  it('law: the epoch never moves back, whatever the events', () => {
    const event: fc.Arbitrary<TransportEvent> = fc.oneof(
      fc.constantFrom<TransportEvent>(
        { type: 'CONNECT' },
        { type: 'CONNECTED' },
        failed,
        { type: 'RETRY' },
        { type: 'DRAINED' },
        { type: 'BUDGET_SPENT' },
        { type: 'CLOSE' },
        { type: 'STALE' },
        { type: 'REMOTE_CLOSED' },
        { type: 'DRAIN_TIMEOUT' },
      ),
      fc.integer({ min: 0, max: 10 }).map((epoch): TransportEvent => ({ type: 'EPOCH_BUMP', epoch })),
    )
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), (events) => {
        const t = start()
        let last = t.ctx().epoch
        for (const e of events) {
          if (t.actor.getSnapshot().status === 'done') break
          t.send(e)
          const now = t.ctx().epoch
          expect(now).toBeGreaterThanOrEqual(last)
          last = now
        }
      }),
      { numRuns: 100 },
    )
  })
})

describe('transportMachine: forbidden events', () => {
  it('events that do not belong to a state change nothing', () => {
    const idle = start()
    for (const e of [
      { type: 'CONNECTED' },
      { type: 'BUDGET_SPENT' },
      { type: 'DRAINED' },
      { type: 'RETRY' },
      { type: 'DRAIN_TIMEOUT' },
      { type: 'REMOTE_CLOSED' },
    ] as TransportEvent[]) {
      idle.send(e)
      expect(idle.state()).toBe('Idle')
    }
    expect(idle.ctx().closeReason).toBeNull()

    const connecting = start()
    connecting.send({ type: 'CONNECT' })
    connecting.send({ type: 'DRAINED' })
    connecting.send({ type: 'RETRY' })
    connecting.send({ type: 'BUDGET_SPENT' })
    expect(connecting.state()).toEqual({ Connecting: 'dialing' })
    expect(connecting.ctx().closeReason).toBeNull()

    const o = open()
    o.send({ type: 'CONNECT' })
    o.send({ type: 'CONNECTED' })
    o.send(failed)
    o.send({ type: 'RETRY' })
    o.send({ type: 'DRAIN_TIMEOUT' })
    expect(o.state()).toBe('Open')
    expect(o.dials).toHaveLength(1)
  })

  it('Closed and Failed are final: nothing leaves them', () => {
    const t = open()
    t.send({ type: 'CLOSE' })
    t.send({ type: 'DRAINED' })
    expect(t.state()).toBe('Closed')
    expect(t.actor.getSnapshot().status).toBe('done')
    t.send({ type: 'CONNECT' })
    t.send({ type: 'EPOCH_BUMP', epoch: 1 })
    expect(t.state()).toBe('Closed')
    expect(t.ctx().epoch).toBe(3)
  })
})

describe('transportInputSchema', () => {
  it('rejects bad input', () => {
    const good = { channelId: 'c', peerId: 'p', contextId: 'x', epoch: 0, reconnect, drainTimeoutMs: 1 }
    expect(transportInputSchema.safeParse(good).success).toBe(true)
    expect(transportInputSchema.safeParse({ ...good, epoch: -1 }).success).toBe(false)
    expect(transportInputSchema.safeParse({ ...good, epoch: Number.NaN }).success).toBe(false)
    expect(transportInputSchema.safeParse({ ...good, drainTimeoutMs: 0 }).success).toBe(false)
    // the budget is the runtime's (flow-budget.ts), not the machine's input
    expect(transportInputSchema.safeParse({ ...good, budget: { maxBytes: 10, windowMs: 10 } }).success).toBe(false)
    expect(transportInputSchema.safeParse({ ...good, extra: 1 }).success).toBe(false)
  })
})

describe('transportMachine: graph', () => {
  it('every state, including both connecting substates, is reachable with the declared events', () => {
    const events: TransportEvent[] = [
      { type: 'CONNECT' },
      { type: 'CONNECTED' },
      failed,
      { type: 'CONNECT_FAILED', error: { code: 'EPOCH_REGRESSION', message: 'old' }, retryable: false },
      { type: 'RETRY' },
      { type: 'DRAINED' },
      { type: 'BUDGET_SPENT' },
      { type: 'EPOCH_BUMP', epoch: 4 },
      { type: 'EPOCH_BUMP', epoch: 1 },
      { type: 'CLOSE' },
      { type: 'STALE' },
      { type: 'REMOTE_CLOSED' },
      { type: 'DRAIN_TIMEOUT' },
    ]
    const paths = getShortestPaths(transportMachine, {
      input: { channelId: 'c', peerId: 'p', contextId: 'x', epoch: 3, addresses: ['/a', '/b'], reconnect, drainTimeoutMs: 5 },
      events,
      serializeState: (state) => {
        const c = state.context
        return JSON.stringify([state.value, c.dial, c.closeReason, c.epoch])
      },
      limit: 5_000,
    })
    const reached = new Set(paths.map((p) => JSON.stringify(p.state.value)))
    for (const value of ['Idle', { Connecting: 'dialing' }, { Connecting: 'backoff' }, 'Open', 'Draining', 'Closed', 'Failed']) {
      expect(reached.has(JSON.stringify(value)), JSON.stringify(value)).toBe(true)
    }
    const closeReasons = new Set(paths.filter((p) => p.state.value === 'Closed').map((p) => p.state.context.closeReason))
    expect([...closeReasons].sort()).toEqual(['budget', 'drain-timeout', 'epoch', 'local', 'remote', 'stale'])
  })
})
