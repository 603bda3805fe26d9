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
    expect((() => { const t = start(); t.send({ type: 'CLOSE' }); return t.ctx().closeReason })()).toBe('local')
    expect((() => { const t = start(); t.send({ type: 'STALE' }); return t.ctx().closeReason })()).toBe('stale')
    const t = start()
    t.send({ type: 'EPOCH_BUMP', epoch: 9 })
    expect(t.state()).toBe('Closed')
    expect(t.ctx().epoch).toBe(9)
  })
})

describe('transportMachine: sending and budgets', () => {
  it('SEND charges and counts in flight; ACK and SEND_FAILED settle', () => {
    const t = open()
    t.send({ type: 'SEND', key: 'k1', bytes: 10, at: 0 })
    t.send({ type: 'SEND', key: 'k2', bytes: 10, at: 0 })
    expect(t.ctx()).toMatchObject({ counts: { inflight: 2, sent: 2 }, lastSend: { key: 'k2', accepted: true } })
    t.send({ type: 'ACK', key: 'k1' })
    t.send({ type: 'SEND_FAILED', key: 'k2' })
    expect(t.ctx().counts).toMatchObject({ inflight: 0, acked: 1, failed: 1 })
  })

  it('an ACK with nothing in flight is ignored', () => {
    const t = open()
    t.send({ type: 'ACK', key: 'ghost' })
    t.send({ type: 'SEND_FAILED', key: 'ghost' })
    expect(t.ctx().counts).toMatchObject({ inflight: 0, acked: 0, failed: 0 })
  })

  it('a fail-closed overrun is rejected and drains the channel, which closes once in-flight sends settle', () => {
    const t = open({ budget: { maxMessages: 2, windowMs: 1000 } })
    t.send({ type: 'SEND', key: 'a', bytes: 1, at: 0 })
    t.send({ type: 'SEND', key: 'b', bytes: 1, at: 10 })
    t.send({ type: 'SEND', key: 'c', bytes: 1, at: 20 })
    expect(t.ctx().lastSend).toEqual({ key: 'c', accepted: false, code: 'BUDGET_EXHAUSTED' })
    expect(t.state()).toBe('Draining')
    expect(t.drains()).toBe(1)
    t.send({ type: 'SEND', key: 'd', bytes: 1, at: 30 })
    expect(t.ctx().lastSend).toEqual({ key: 'd', accepted: false, code: 'BUDGET_EXHAUSTED' })
    t.send({ type: 'ACK', key: 'a' })
    expect(t.state()).toBe('Draining')
    t.send({ type: 'SEND_FAILED', key: 'b' })
    expect(t.state()).toBe('Closed')
    expect(t.actor.getSnapshot().output).toEqual({ state: 'Closed', closeReason: 'budget', error: null, sent: 2, acked: 1, failed: 1 })
  })

  it('a byte budget counts bytes, and a new window starts the count over', () => {
    const t = open({ budget: { maxBytes: 100, windowMs: 1000 } })
    t.send({ type: 'SEND', key: 'a', bytes: 60, at: 0 })
    t.send({ type: 'SEND', key: 'b', bytes: 40, at: 999 })
    t.send({ type: 'SEND', key: 'c', bytes: 100, at: 1000 })
    expect(t.ctx().lastSend).toEqual({ key: 'c', accepted: true })
    expect(t.ctx().window).toEqual({ startedAt: 1000, bytes: 100, messages: 1 })
    t.send({ type: 'SEND', key: 'd', bytes: 1, at: 1500 })
    expect(t.state()).toBe('Draining')
  })

  it('a best-effort overrun is shed alone and the channel stays open', () => {
    const t = open({ budget: { maxMessages: 1, windowMs: 1000 } })
    t.send({ type: 'SEND', key: 'a', bytes: 1, at: 0, mode: 'best-effort' })
    t.send({ type: 'SEND', key: 'b', bytes: 1, at: 1, mode: 'best-effort' })
    expect(t.ctx().lastSend).toEqual({ key: 'b', accepted: false, code: 'BUDGET_EXHAUSTED' })
    expect(t.state()).toBe('Open')
    expect(t.ctx().counts.rejected).toBe(1)
  })

  it('BUDGET_SPENT drains; with nothing in flight the channel closes at once', () => {
    const t = open()
    t.send({ type: 'BUDGET_SPENT' })
    expect(t.state()).toBe('Closed')
    expect(t.ctx().closeReason).toBe('budget')
  })

  it('CLOSE drains in-flight sends; DRAIN_TIMEOUT closes anyway', () => {
    const t = open()
    t.send({ type: 'SEND', key: 'a', bytes: 1, at: 0 })
    t.send({ type: 'CLOSE' })
    expect(t.state()).toBe('Draining')
    t.send({ type: 'SEND', key: 'b', bytes: 1, at: 0 })
    expect(t.ctx().lastSend).toEqual({ key: 'b', accepted: false, code: 'CHANNEL_CLOSED' })
    t.send({ type: 'DRAIN_TIMEOUT' })
    expect(t.state()).toBe('Closed')
    expect(t.ctx().closeReason).toBe('drain-timeout')
  })

  it('STALE and REMOTE_CLOSED close an open channel at once, in-flight or not', () => {
    for (const [type, reason] of [
      ['STALE', 'stale'],
      ['REMOTE_CLOSED', 'remote'],
    ] as const) {
      const t = open()
      t.send({ type: 'SEND', key: 'a', bytes: 1, at: 0 })
      t.send({ type })
      expect(t.state()).toBe('Closed')
      expect(t.ctx().closeReason).toBe(reason)
    }
    const t = open()
    t.send({ type: 'SEND', key: 'a', bytes: 1, at: 0 })
    t.send({ type: 'CLOSE' })
    t.send({ type: 'STALE' })
    expect(t.ctx().closeReason).toBe('stale')
  })
})

describe('transportMachine: epochs', () => {
  it('a newer epoch drains the channel and moves its epoch forward', () => {
    const t = open()
    t.send({ type: 'SEND', key: 'a', bytes: 1, at: 0 })
    t.send({ type: 'EPOCH_BUMP', epoch: 5 })
    expect(t.state()).toBe('Draining')
    expect(t.ctx()).toMatchObject({ epoch: 5, closeReason: 'epoch' })
    t.send({ type: 'EPOCH_BUMP', epoch: 6 })
    expect(t.ctx().epoch).toBe(6)
    t.send({ type: 'ACK', key: 'a' })
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
      if (setupState === 'Draining') {
        t.send({ type: 'SEND', key: 'a', bytes: 1, at: 0 })
        t.send({ type: 'CLOSE' })
      }
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
        { type: 'ACK', key: 'k' },
        { type: 'SEND_FAILED', key: 'k' },
        { type: 'BUDGET_SPENT' },
        { type: 'CLOSE' },
        { type: 'STALE' },
        { type: 'REMOTE_CLOSED' },
        { type: 'DRAIN_TIMEOUT' },
      ),
      fc.integer({ min: 0, max: 10 }).map((epoch): TransportEvent => ({ type: 'EPOCH_BUMP', epoch })),
      fc.integer({ min: 0, max: 50 }).map((bytes): TransportEvent => ({ type: 'SEND', key: 'k', bytes, at: bytes * 10 })),
    )
    fc.assert(
      fc.property(fc.array(event, { maxLength: 30 }), (events) => {
        const t = start({ budget: { maxBytes: 100, windowMs: 100 } })
        let last = t.ctx().epoch
        for (const e of events) {
          if (t.actor.getSnapshot().status === 'done') break
          t.send(e)
          const now = t.ctx().epoch
          expect(now).toBeGreaterThanOrEqual(last)
          expect(t.ctx().counts.inflight).toBeGreaterThanOrEqual(0)
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
    for (const e of [{ type: 'CONNECTED' }, { type: 'SEND', key: 'a', bytes: 1, at: 0 }, { type: 'ACK', key: 'a' }, { type: 'RETRY' }, { type: 'DRAIN_TIMEOUT' }, { type: 'REMOTE_CLOSED' }] as TransportEvent[]) {
      idle.send(e)
      expect(idle.state()).toBe('Idle')
    }
    expect(idle.ctx().counts.sent).toBe(0)

    const connecting = start()
    connecting.send({ type: 'CONNECT' })
    connecting.send({ type: 'SEND', key: 'a', bytes: 1, at: 0 })
    connecting.send({ type: 'RETRY' })
    connecting.send({ type: 'BUDGET_SPENT' })
    expect(connecting.state()).toEqual({ Connecting: 'dialing' })
    expect(connecting.ctx().counts.sent).toBe(0)

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
    expect(transportInputSchema.safeParse({ ...good, budget: { windowMs: 10 } }).success).toBe(false)
    expect(transportInputSchema.safeParse({ ...good, budget: { maxBytes: 0, windowMs: 10 } }).success).toBe(false)
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
      { type: 'SEND', key: 'k', bytes: 60, at: 0 },
      { type: 'ACK', key: 'k' },
      { type: 'SEND_FAILED', key: 'k' },
      { type: 'BUDGET_SPENT' },
      { type: 'EPOCH_BUMP', epoch: 4 },
      { type: 'EPOCH_BUMP', epoch: 1 },
      { type: 'CLOSE' },
      { type: 'STALE' },
      { type: 'REMOTE_CLOSED' },
      { type: 'DRAIN_TIMEOUT' },
    ]
    const paths = getShortestPaths(transportMachine, {
      input: { channelId: 'c', peerId: 'p', contextId: 'x', epoch: 3, addresses: ['/a', '/b'], budget: { maxBytes: 100, windowMs: 1000 }, reconnect, drainTimeoutMs: 5 },
      events,
      serializeState: (state) => {
        const c = state.context
        return JSON.stringify([state.value, Math.min(c.counts.inflight, 2), c.dial, c.closeReason, c.epoch])
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
