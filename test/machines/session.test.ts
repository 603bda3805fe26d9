import { describe, expect, it } from 'vitest'
import { createActor, fromCallback, fromPromise, type ActorRefFrom, type AnyActorRef, type SnapshotFrom } from 'xstate'
import { VirtualClock } from '../../effects/time/virtual.js'
import {
  MAX_PENDING_MESSAGES,
  releaseInput,
  sendStepInput,
  sessionInputSchema,
  sessionMachine,
  sessionProtocolSchema,
  type ReleaseInput,
  type ReportInput,
  type SendStepInput,
  type SessionContext,
  type SessionEvent,
  type SessionInput,
  type SessionProtocol,
  type Verdict,
} from '../../machines/session.js'
import type { DeadlineEvent, DeadlineTimerInput, GraceOverEvent } from '../../machines/kernel.js'

const START = 1_700_000_000_000
const DEADLINE_IN = 60_000
const GRACE = 30_000
const PEERS = [
  { peerId: 'peer-a', role: 'alpha' },
  { peerId: 'peer-b', role: 'beta' },
  { peerId: 'peer-c', role: 'gamma' },
]

/** commit, reveal, confirm: in each phase every role sends to all the others (9 steps). */
function ceremony(roles = PEERS.map((p) => p.role)): SessionProtocol {
  const steps = ['commit', 'reveal', 'confirm'].flatMap((phase) =>
    roles.map((from) => ({ label: `${phase}:${from}`, from, to: roles.filter((r) => r !== from) })),
  )
  return { name: 'threshold-ceremony', steps }
}

function inputFor(selfPeerId: string, over: Partial<SessionInput> = {}): SessionInput {
  return {
    sessionId: 's-1',
    sessionType: 'ceremony',
    selfPeerId,
    participants: PEERS,
    leaderPeerId: 'peer-a',
    createdAt: START,
    deadlineAt: START + DEADLINE_IN,
    verdictGraceMs: GRACE,
    limits: { maxParticipants: 8, maxMessageBytes: 65_536 },
    ...over,
  }
}

function deadlineTimerOn(clock: VirtualClock, armed?: number[]) {
  return fromCallback<DeadlineEvent | GraceOverEvent, DeadlineTimerInput>(({ input, sendBack }) => {
    armed?.push(input.deadlineAt)
    const delay = input.deadlineAt - clock.now()
    const event = { type: input.says ?? 'DEADLINE' } as const
    if (delay <= 0) {
      sendBack(event)
      return
    }
    const handle = clock.setTimeout(() => sendBack(event), delay)
    return () => clock.clearTimeout(handle)
  })
}

const flush = async (times = 3) => {
  for (let i = 0; i < times; i++) await new Promise<void>((r) => setImmediate(r))
}

type SessionActor = ActorRefFrom<typeof sessionMachine>

/**
 * The runner's side of the machine's injected effects, as the runtime does it: `send` delivers a
 * step (its result or failure answers STEP_SENT or STEP_FAILED), `release` releases (RELEASED after
 * it, failed or not). Both start after the transition that asked for them.
 */
function effects(send: (input: SendStepInput) => Promise<Verdict | null>, release: (input: ReleaseInput) => Promise<void>) {
  const answer = (self: AnyActorRef, event: SessionEvent) => {
    if (self.getSnapshot().status === 'active') self.send(event)
  }
  return {
    sendStep: ({ context, self }: { context: SessionContext; self: AnyActorRef }) => {
      const input = sendStepInput(context)
      void Promise.resolve()
        .then(() => send(input))
        .then(
          (verdict) => answer(self, { type: 'STEP_SENT', step: input.stepIndex, verdict }),
          (error: unknown) => answer(self, { type: 'STEP_FAILED', step: input.stepIndex, error }),
        )
    },
    release: ({ context, self }: { context: SessionContext; self: AnyActorRef }) => {
      const released = () => answer(self, { type: 'RELEASED' })
      void Promise.resolve()
        .then(() => release(releaseInput(context)))
        .then(released, released)
    },
  }
}
type Receive = Extract<SessionEvent, { type: 'RECEIVE' }>
type Mail = { to: string; event: SessionEvent }

/**
 * Three session actors wired in memory: `sendStep` puts a RECEIVE for every recipient in flight,
 * a report goes in flight to the leader (acknowledged at once, no verdict in the answer) and the
 * leader's release puts its verdict in flight to the others. The test decides when, in which
 * order and how often to deliver (duplicates: steps only). Peers in `down` keep their mail.
 */
class Mesh {
  readonly clock = new VirtualClock(START)
  readonly actors = new Map<string, SessionActor>()
  readonly inflight: Mail[] = []
  readonly down = new Set<string>()
  readonly released: ReleaseInput[] = []
  readonly sends: { from: string; input: SendStepInput }[] = []
  rejected = 0

  machineFor(peerId: string) {
    return sessionMachine.provide({ actors: this.actorsFor(peerId), actions: this.effectsFor(peerId) })
  }

  /** A restored actor starts the effect of the state it is in again, as the runtime does. */
  resume(peerId: string, actor: SessionActor): void {
    const snapshot = actor.getSnapshot()
    const args = { context: snapshot.context, self: actor as AnyActorRef }
    if (snapshot.matches({ active: { running: 'sending' } })) this.effectsFor(peerId).sendStep(args)
    else if (snapshot.matches('terminating')) this.effectsFor(peerId).release(args)
  }

  private actorsFor(peerId: string) {
    return {
      deadlineTimer: deadlineTimerOn(this.clock),
      reportToLeader: fromPromise<Verdict | null, ReportInput>(async ({ input }) => {
        this.inflight.push({ to: input.leaderPeerId, event: { type: 'REPORT', from: peerId, ...input.proposal } })
        return null
      }),
    }
  }

  private effectsFor(peerId: string) {
    return effects(
      async (input) => {
        this.sends.push({ from: peerId, input })
        for (const to of input.toPeerIds) {
          this.inflight.push({
            to,
            event: { type: 'RECEIVE', step: input.stepIndex, from: peerId, payload: { label: input.step.label, by: peerId } },
          })
        }
        // a last step to the leader carries the done report (acknowledged, no verdict in the answer)
        if (input.reportsDone) this.inflight.push({ to: 'peer-a', event: { type: 'REPORT', from: peerId, kind: 'done' } })
        return null
      },
      async (input) => {
        this.released.push(input)
        if (!input.announce) return
        const { kind } = input.outcome
        const reason = input.outcome.kind === 'failure' || input.outcome.kind === 'cancelled' ? { reason: input.outcome.reason } : {}
        for (const p of PEERS) if (p.peerId !== peerId) this.inflight.push({ to: p.peerId, event: { type: 'VERDICT', kind, ...reason } })
      },
    )
  }

  start(peerId: string, snapshot?: ReturnType<SessionActor['getPersistedSnapshot']>): SessionActor {
    const machine = this.machineFor(peerId)
    const actor = snapshot
      ? createActor(machine, { snapshot, input: inputFor(peerId), clock: this.clock })
      : createActor(machine, { input: inputFor(peerId), clock: this.clock })
    this.actors.set(peerId, actor.start())
    if (snapshot) this.resume(peerId, actor)
    return actor
  }

  startAll(): void {
    for (const p of PEERS) this.start(p.peerId)
  }

  joinAll(): void {
    for (const [self, actor] of this.actors) {
      for (const p of PEERS) if (p.peerId !== self) actor.send({ type: 'JOIN', peerId: p.peerId, role: p.role })
    }
  }

  deliver(msg: Mail): void {
    const actor = this.actors.get(msg.to)!
    if (!actor.getSnapshot().can(msg.event)) this.rejected++
    actor.send(msg.event)
  }

  /** Delivers everything deliverable, batch by batch, until nothing moves. */
  async pump(opts: { reverse?: boolean; duplicate?: boolean; lose?: (m: Mail) => boolean } = {}): Promise<void> {
    for (let round = 0; round < 200; round++) {
      await flush()
      if (opts.lose) for (const m of this.inflight.filter(opts.lose)) this.inflight.splice(this.inflight.indexOf(m), 1)
      const ready = this.inflight.filter((m) => !this.down.has(m.to))
      if (ready.length === 0) return
      for (const m of ready) this.inflight.splice(this.inflight.indexOf(m), 1)
      if (opts.reverse) ready.reverse()
      for (const m of ready) {
        this.deliver(m)
        if (opts.duplicate && m.event.type === 'RECEIVE') this.deliver(m)
      }
    }
    throw new Error('mesh did not settle')
  }

  snapshot(peerId: string): SnapshotFrom<typeof sessionMachine> {
    return this.actors.get(peerId)!.getSnapshot()
  }
}

/**
 * A lone session actor (peer-a, the leader, unless `self` says otherwise) whose sends go nowhere
 * but are recorded; its reports to the leader are recorded and answered by `answer` (default:
 * acknowledged, no verdict yet).
 */
function lone(
  opts: {
    self?: string
    input?: Partial<SessionInput>
    sendFails?: boolean
    releaseFails?: boolean
    holdRelease?: boolean
    answer?: (input: ReportInput) => Promise<Verdict | null>
    /** the leader's answer to a step that carried the done report */
    stepAnswer?: (input: SendStepInput) => Verdict | null
  } = {},
) {
  const clock = new VirtualClock(START)
  const sends: SendStepInput[] = []
  const released: ReleaseInput[] = []
  const reports: ReportInput[] = []
  const armed: number[] = []
  const machine = sessionMachine.provide({
    actors: {
      deadlineTimer: deadlineTimerOn(clock, armed),
      reportToLeader: fromPromise<Verdict | null, ReportInput>(async ({ input }) => {
        reports.push(input)
        return opts.answer ? opts.answer(input) : null
      }),
    },
    actions: effects(
      async (input) => {
        sends.push(input)
        if (opts.sendFails) throw Object.assign(new Error('peer unreachable'), { code: 'PEER_UNREACHABLE' })
        return opts.stepAnswer ? opts.stepAnswer(input) : null
      },
      async (input) => {
        released.push(input)
        if (opts.holdRelease) await new Promise(() => undefined)
        if (opts.releaseFails) throw new Error('storage down')
      },
    ),
  })
  const input = inputFor(opts.self ?? 'peer-a', opts.input)
  const actor = createActor(machine, { input, clock }).start()
  return { clock, actor, sends, released, reports, armed, machine, input }
}

const joinOthers = (actor: SessionActor, self = 'peer-a') => {
  for (const p of PEERS) if (p.peerId !== self) actor.send({ type: 'JOIN', peerId: p.peerId, role: p.role })
}

/** Asserts the event is not enabled and that sending it changes nothing. */
function expectForbidden(actor: SessionActor, event: SessionEvent) {
  const before = actor.getSnapshot()
  expect(before.can(event), `${event.type} should be forbidden`).toBe(false)
  actor.send(event)
  const after = actor.getSnapshot()
  expect(after.value).toEqual(before.value)
  expect(after.context).toEqual(before.context)
}

// A protocol where beta talks to alpha twice before anything else, so early delivery is observable.
const twoToAlpha: SessionProtocol = {
  name: 'two-to-alpha',
  steps: [
    { label: 'b1', from: 'beta', to: ['alpha'] },
    { label: 'c1', from: 'gamma', to: ['beta'] },
    { label: 'b2', from: 'beta', to: ['alpha'] },
    { label: 'a1', from: 'alpha', to: ['beta', 'gamma'] },
  ],
}

describe('session input and protocol schemas', () => {
  it('accepts a well-formed roster', () => {
    expect(sessionInputSchema.safeParse(inputFor('peer-a')).success).toBe(true)
  })

  it('rejects self outside the roster, duplicate peers or roles, too many participants, deadline before creation', () => {
    const bad = [
      inputFor('peer-z'),
      inputFor('peer-a', { participants: [...PEERS, { peerId: 'peer-a', role: 'delta' }] }),
      inputFor('peer-a', { participants: [...PEERS, { peerId: 'peer-d', role: 'alpha' }] }),
      inputFor('peer-a', { limits: { maxParticipants: 2, maxMessageBytes: 10 } }),
      inputFor('peer-a', { deadlineAt: START - 1 }),
    ]
    for (const input of bad) expect(sessionInputSchema.safeParse(input).success).toBe(false)
  })

  it('rejects steps that send to their own role or have no recipient', () => {
    expect(sessionProtocolSchema.safeParse(ceremony()).success).toBe(true)
    expect(sessionProtocolSchema.safeParse({ name: 'p', steps: [{ label: 'x', from: 'alpha', to: ['alpha'] }] }).success).toBe(false)
    expect(sessionProtocolSchema.safeParse({ name: 'p', steps: [{ label: 'x', from: 'alpha', to: [] }] }).success).toBe(false)
    expect(sessionProtocolSchema.safeParse({ name: 'p', steps: [] }).success).toBe(false)
  })
})

describe('sessionMachine: created', () => {
  it('starts created with self joined and its role derived', () => {
    const { actor, armed } = lone()
    const s = actor.getSnapshot()
    expect(s.value).toBe('created')
    expect(s.context.joined).toEqual(['peer-a'])
    expect(s.context.selfRole).toBe('alpha')
    expect(armed).toEqual([START + DEADLINE_IN])
  })

  it("an invitee starts with the leader joined too: the invite is the leader's join", () => {
    const { actor } = lone({ self: 'peer-b' })
    expect(actor.getSnapshot().context.joined).toEqual(['peer-b', 'peer-a'])
    actor.send({ type: 'JOIN', peerId: 'peer-a', role: 'alpha' })
    expect(actor.getSnapshot().context.joined).toEqual(['peer-b', 'peer-a'])
  })

  it('records a JOIN that matches the roster, and a repeated one is a no-op', () => {
    const { actor } = lone()
    actor.send({ type: 'JOIN', peerId: 'peer-b', role: 'beta' })
    expect(actor.getSnapshot().context.joined).toEqual(['peer-a', 'peer-b'])
    actor.send({ type: 'JOIN', peerId: 'peer-b', role: 'beta' })
    expect(actor.getSnapshot().context.joined).toEqual(['peer-a', 'peer-b'])
  })

  it('forbids a JOIN with the wrong role or from a stranger', () => {
    const { actor } = lone()
    expectForbidden(actor, { type: 'JOIN', peerId: 'peer-b', role: 'gamma' })
    expectForbidden(actor, { type: 'JOIN', peerId: 'peer-x', role: 'beta' })
  })

  it('LEAVE un-joins a joined peer; forbidden for self or a peer who never joined', () => {
    const { actor } = lone()
    actor.send({ type: 'JOIN', peerId: 'peer-b', role: 'beta' })
    actor.send({ type: 'LEAVE', peerId: 'peer-b' })
    expect(actor.getSnapshot().context.joined).toEqual(['peer-a'])
    expectForbidden(actor, { type: 'LEAVE', peerId: 'peer-b' })
    expectForbidden(actor, { type: 'LEAVE', peerId: 'peer-a' })
  })

  it('forbids EXECUTE of a protocol naming a role outside the roster or malformed', () => {
    const { actor } = lone()
    expectForbidden(actor, { type: 'EXECUTE', protocol: ceremony(['alpha', 'beta', 'delta']) })
    expectForbidden(actor, { type: 'EXECUTE', protocol: { name: 'p', steps: [{ label: 'x', from: 'alpha', to: ['alpha'] }] } })
  })

  it('buffers early messages from participants, ignoring strangers, self, and duplicates', () => {
    const { actor } = lone()
    actor.send({ type: 'RECEIVE', step: 0, from: 'peer-b', payload: 'b1' })
    expect(actor.getSnapshot().context.pending).toEqual([{ step: 0, from: 'peer-b', payload: 'b1' }])
    expectForbidden(actor, { type: 'RECEIVE', step: 0, from: 'peer-b', payload: 'again' })
    expectForbidden(actor, { type: 'RECEIVE', step: 0, from: 'peer-x', payload: 'x' })
    expectForbidden(actor, { type: 'RECEIVE', step: 0, from: 'peer-a', payload: 'me' })
    expectForbidden(actor, { type: 'RECEIVE', step: -1, from: 'peer-c', payload: 'neg' })
    expectForbidden(actor, { type: 'RECEIVE', step: 0.5, from: 'peer-c', payload: 'frac' })
  })

  it('bounds the early-message buffer', () => {
    const { actor } = lone()
    for (let i = 0; i < MAX_PENDING_MESSAGES; i++) actor.send({ type: 'RECEIVE', step: i, from: 'peer-b', payload: i })
    expect(actor.getSnapshot().context.pending).toHaveLength(MAX_PENDING_MESSAGES)
    expectForbidden(actor, { type: 'RECEIVE', step: MAX_PENDING_MESSAGES, from: 'peer-b', payload: 'one too many' })
  })

  it('EXECUTE keeps the buffered messages that fit the protocol and drops the rest', async () => {
    const { actor } = lone()
    joinOthers(actor)
    actor.send({ type: 'RECEIVE', step: 2, from: 'peer-b', payload: 'b2' }) // fits
    actor.send({ type: 'RECEIVE', step: 1, from: 'peer-c', payload: 'c1' }) // c1 goes to beta, not alpha
    actor.send({ type: 'RECEIVE', step: 9, from: 'peer-b', payload: 'out of range' })
    actor.send({ type: 'EXECUTE', protocol: twoToAlpha })
    const s = actor.getSnapshot()
    expect(s.context.pending).toEqual([])
    expect(s.context.received).toEqual({ 2: { 'peer-b': 'b2' } })
    expect(s.matches({ active: { running: 'awaiting' } })).toBe(true)
    expect(s.context.cursor).toBe(0)
  })

  it('CANCEL ends cancelled after release, FAIL ends failed', async () => {
    const a = lone()
    a.actor.send({ type: 'CANCEL', reason: 'user' })
    await flush()
    expect(a.actor.getSnapshot().value).toBe('cancelled')
    expect(a.actor.getSnapshot().output).toEqual({ sessionId: 's-1', outcome: { kind: 'cancelled', reason: 'user' } })
    expect(a.released).toEqual([{ sessionId: 's-1', outcome: { kind: 'cancelled', reason: 'user' }, announce: true }])

    const b = lone()
    b.actor.send({ type: 'FAIL', reason: 'peer rejected' })
    await flush()
    expect(b.actor.getSnapshot().value).toBe('failed')
    expect(b.actor.getSnapshot().output?.outcome).toEqual({ kind: 'failure', reason: 'peer rejected', partialResults: {} })
  })

  it('DEADLINE before execution fails with a timeout at cursor 0', async () => {
    const { actor, clock } = lone()
    await clock.advance(DEADLINE_IN)
    await flush()
    expect(actor.getSnapshot().value).toBe('failed')
    expect(actor.getSnapshot().output?.outcome).toEqual({ kind: 'timeout', lastKnownState: { cursor: 0 } })
  })
})

describe('sessionMachine: active', () => {
  it('waits for participants, then runs; JOIN and LEAVE apply only while waiting', async () => {
    const { actor } = lone()
    actor.send({ type: 'EXECUTE', protocol: ceremony() })
    expect(actor.getSnapshot().matches({ active: 'waitingForParticipants' })).toBe(true)
    expectForbidden(actor, { type: 'EXECUTE', protocol: ceremony() })
    expectForbidden(actor, { type: 'JOIN', peerId: 'peer-c', role: 'beta' })
    actor.send({ type: 'JOIN', peerId: 'peer-b', role: 'beta' })
    actor.send({ type: 'LEAVE', peerId: 'peer-b' })
    expect(actor.getSnapshot().context.joined).toEqual(['peer-a'])
    joinOthers(actor)
    expect(actor.getSnapshot().matches({ active: { running: 'sending' } })).toBe(true)
    expectForbidden(actor, { type: 'JOIN', peerId: 'peer-b', role: 'beta' })
  })

  it('ignores messages with the wrong sender role, not addressed to self, out of range, or duplicated', () => {
    const { actor } = lone()
    joinOthers(actor)
    actor.send({ type: 'EXECUTE', protocol: twoToAlpha })
    expectForbidden(actor, { type: 'RECEIVE', step: 0, from: 'peer-c', payload: 'not beta' })
    expectForbidden(actor, { type: 'RECEIVE', step: 1, from: 'peer-c', payload: 'to beta only' })
    expectForbidden(actor, { type: 'RECEIVE', step: 4, from: 'peer-b', payload: 'no such step' })
    expectForbidden(actor, { type: 'RECEIVE', step: 3, from: 'peer-a', payload: 'from self' })
    actor.send({ type: 'RECEIVE', step: 2, from: 'peer-b', payload: 'b2' })
    expectForbidden(actor, { type: 'RECEIVE', step: 2, from: 'peer-b', payload: 'b2 again' })
    expect(actor.getSnapshot().context.received).toEqual({ 2: { 'peer-b': 'b2' } })
  })

  it('consumes early messages to a fixed point: skips, buffered receipts, then sends', async () => {
    const { actor, sends } = lone()
    joinOthers(actor)
    actor.send({ type: 'EXECUTE', protocol: twoToAlpha })
    actor.send({ type: 'RECEIVE', step: 2, from: 'peer-b', payload: 'b2' })
    expect(actor.getSnapshot().context.cursor).toBe(0)
    actor.send({ type: 'RECEIVE', step: 0, from: 'peer-b', payload: 'b1' })
    // step 0 received, step 1 not ours, step 2 already here: straight on to our send at step 3
    const s = actor.getSnapshot()
    expect(s.context.cursor).toBe(3)
    expect(s.matches({ active: { running: 'sending' } })).toBe(true)
    await flush()
    expect(sends).toEqual([{ sessionId: 's-1', stepIndex: 3, step: twoToAlpha.steps[3], toPeerIds: ['peer-b', 'peer-c'], reportsDone: false }])
    // the leader's projection is done; success waits for the others' reports
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'collecting' })
    actor.send({ type: 'REPORT', from: 'peer-b', kind: 'done' })
    actor.send({ type: 'REPORT', from: 'peer-c', kind: 'done' })
    await flush()
    expect(actor.getSnapshot().value).toBe('completed')
    expect(actor.getSnapshot().context.sent).toEqual([3])
    expect(actor.getSnapshot().output?.outcome).toEqual({
      kind: 'success',
      results: { 0: { 'peer-b': 'b1' }, 2: { 'peer-b': 'b2' } },
    })
  })

  it('a failed send fails the session with partial results', async () => {
    const { actor } = lone({ sendFails: true })
    joinOthers(actor)
    actor.send({ type: 'EXECUTE', protocol: ceremony() })
    await flush()
    const s = actor.getSnapshot()
    expect(s.value).toBe('failed')
    expect(s.context.error).toEqual({ code: 'PEER_UNREACHABLE', message: 'peer unreachable' })
    expect(s.output?.outcome).toEqual({
      kind: 'failure',
      reason: 'sending step 0 failed: peer unreachable',
      partialResults: {},
    })
  })

  it('LEAVE while running fails the session; LEAVE of a stranger or self is forbidden', async () => {
    const { actor } = lone()
    joinOthers(actor)
    actor.send({ type: 'EXECUTE', protocol: twoToAlpha })
    actor.send({ type: 'RECEIVE', step: 0, from: 'peer-b', payload: 'b1' })
    expectForbidden(actor, { type: 'LEAVE', peerId: 'peer-x' })
    expectForbidden(actor, { type: 'LEAVE', peerId: 'peer-a' })
    actor.send({ type: 'LEAVE', peerId: 'peer-c' })
    await flush()
    expect(actor.getSnapshot().value).toBe('failed')
    expect(actor.getSnapshot().output?.outcome).toEqual({
      kind: 'failure',
      reason: 'participant left',
      partialResults: { 0: { 'peer-b': 'b1' } },
    })
  })

  it('DEADLINE while running fails with a timeout naming the step it was at', async () => {
    const { actor, clock } = lone()
    joinOthers(actor)
    actor.send({ type: 'EXECUTE', protocol: twoToAlpha })
    actor.send({ type: 'RECEIVE', step: 0, from: 'peer-b', payload: 'b1' })
    await clock.advance(DEADLINE_IN - 1)
    expect(actor.getSnapshot().matches({ active: { running: 'awaiting' } })).toBe(true)
    await clock.advance(1)
    await flush()
    expect(actor.getSnapshot().value).toBe('failed')
    expect(actor.getSnapshot().output?.outcome).toEqual({ kind: 'timeout', lastKnownState: { cursor: 2, step: 'b2' } })
  })

  it('CANCEL while running ends cancelled', async () => {
    const { actor } = lone()
    joinOthers(actor)
    actor.send({ type: 'EXECUTE', protocol: twoToAlpha })
    actor.send({ type: 'CANCEL' })
    await flush()
    expect(actor.getSnapshot().value).toBe('cancelled')
    expect(actor.getSnapshot().output?.outcome).toEqual({ kind: 'cancelled', reason: 'cancelled' })
  })
})

describe('sessionMachine: terminating and final', () => {
  const everyEvent: SessionEvent[] = [
    { type: 'JOIN', peerId: 'peer-b', role: 'beta' },
    { type: 'LEAVE', peerId: 'peer-b' },
    { type: 'EXECUTE', protocol: twoToAlpha },
    { type: 'RECEIVE', step: 0, from: 'peer-b', payload: 'b1' },
    { type: 'CANCEL' },
    { type: 'FAIL', reason: 'x' },
    { type: 'DEADLINE' },
    { type: 'REPORT', from: 'peer-b', kind: 'failure', reason: 'x' },
    { type: 'VERDICT', kind: 'failure', reason: 'x' },
  ]

  it('terminating waits for release and accepts nothing else', async () => {
    const { actor, released } = lone({ holdRelease: true })
    actor.send({ type: 'FAIL', reason: 'bad' })
    await flush()
    expect(actor.getSnapshot().value).toBe('terminating')
    expect(released).toHaveLength(1)
    for (const event of everyEvent) expectForbidden(actor, event)
  })

  it('a failing release still reaches the final state the outcome calls for', async () => {
    const { actor } = lone({ releaseFails: true })
    actor.send({ type: 'CANCEL', reason: 'stop' })
    await flush()
    expect(actor.getSnapshot().value).toBe('cancelled')
  })

  it('final states accept no event', async () => {
    const { actor } = lone()
    actor.send({ type: 'CANCEL' })
    await flush()
    expect(actor.getSnapshot().status).toBe('done')
    for (const event of everyEvent) expect(actor.getSnapshot().can(event)).toBe(false)
  })
})

describe('sessionMachine: three peers run a choreography', () => {
  const expectCompleted = (mesh: Mesh) => {
    for (const { peerId, role } of PEERS) {
      const s = mesh.snapshot(peerId)
      expect(s.value, peerId).toBe('completed')
      const protocol = ceremony()
      const mine = protocol.steps.flatMap((st, i) => (st.from === role ? [i] : []))
      const theirs = protocol.steps.flatMap((st, i) => (st.from !== role ? [i] : []))
      expect(s.context.sent).toEqual(mine)
      const outcome = s.output!.outcome
      expect(outcome.kind).toBe('success')
      if (outcome.kind !== 'success') return
      expect(
        Object.keys(outcome.results)
          .map(Number)
          .sort((x, y) => x - y),
      ).toEqual(theirs)
      for (const i of theirs) {
        const sender = PEERS.find((p) => p.role === protocol.steps[i]!.from)!.peerId
        expect(outcome.results[i]).toEqual({ [sender]: { label: protocol.steps[i]!.label, by: sender } })
      }
    }
  }

  it('completes commit/reveal/confirm with in-order delivery', async () => {
    const mesh = new Mesh()
    mesh.startAll()
    mesh.joinAll()
    for (const actor of mesh.actors.values()) actor.send({ type: 'EXECUTE', protocol: ceremony() })
    await mesh.pump()
    expectCompleted(mesh)
    expect(mesh.sends).toHaveLength(9)
    expect(mesh.rejected).toBe(0)
    // only the leader releases (its verdict to disk and to the others); participants just end
    expect(mesh.released.map((r) => [r.outcome.kind, r.announce])).toEqual([['success', true]])
  })

  it('completes with reversed, duplicated delivery; every duplicate is refused', async () => {
    const mesh = new Mesh()
    mesh.startAll()
    mesh.joinAll()
    for (const actor of mesh.actors.values()) actor.send({ type: 'EXECUTE', protocol: ceremony() })
    await mesh.pump({ reverse: true, duplicate: true })
    expectCompleted(mesh)
    expect(mesh.rejected).toBe(18) // 9 steps × 2 recipients, each delivered twice
  })

  it('buffers messages that arrive before EXECUTE and before their step', async () => {
    const mesh = new Mesh()
    mesh.startAll()
    mesh.joinAll()
    mesh.down.add('peer-c')
    // Only alpha and beta start; gamma receives commit:alpha and commit:beta while still `created`.
    mesh.actors.get('peer-a')!.send({ type: 'EXECUTE', protocol: ceremony() })
    mesh.actors.get('peer-b')!.send({ type: 'EXECUTE', protocol: ceremony() })
    await mesh.pump()
    const held = mesh.inflight.filter((m): m is { to: string; event: Receive } => m.to === 'peer-c' && m.event.type === 'RECEIVE')
    expect(held.map((m) => m.event.step)).toEqual([0, 1])
    mesh.down.delete('peer-c')
    mesh.deliver(held[1]!) // commit:beta first: before its step, and before the protocol is known
    mesh.inflight.splice(mesh.inflight.indexOf(held[1]!), 1)
    expect(mesh.snapshot('peer-c').value).toBe('created')
    const { type: _type, ...early } = held[1]!.event
    expect(mesh.snapshot('peer-c').context.pending).toEqual([early])
    mesh.actors.get('peer-c')!.send({ type: 'EXECUTE', protocol: ceremony() })
    const c = mesh.snapshot('peer-c')
    expect(c.context.received).toEqual({ 1: { 'peer-b': held[1]!.event.payload } })
    expect(c.matches({ active: { running: 'awaiting' } })).toBe(true)
    expect(c.context.cursor).toBe(0)
    await mesh.pump()
    expectCompleted(mesh)
  })

  it('a peer restored from its persisted snapshot mid-session finishes the protocol', async () => {
    const mesh = new Mesh()
    mesh.startAll()
    mesh.joinAll()
    for (const actor of mesh.actors.values()) actor.send({ type: 'EXECUTE', protocol: ceremony() })
    // Deliver one message at a time until beta is in the middle of the protocol.
    for (let i = 0; i < 100 && mesh.snapshot('peer-b').context.cursor < 4; i++) {
      await flush()
      const next = mesh.inflight.shift()
      if (next) mesh.deliver(next)
    }
    const cursorAtCrash = mesh.snapshot('peer-b').context.cursor
    expect(cursorAtCrash).toBeGreaterThanOrEqual(4)
    // What a store would keep: the persisted snapshot through JSON.
    const persisted = JSON.parse(JSON.stringify(mesh.actors.get('peer-b')!.getPersistedSnapshot()))
    mesh.actors.get('peer-b')!.stop()
    mesh.down.add('peer-b')
    await mesh.pump()
    expect(mesh.snapshot('peer-a').status).toBe('active')

    mesh.down.delete('peer-b')
    const restored = mesh.start('peer-b', persisted)
    expect(restored.getSnapshot().context.cursor).toBe(cursorAtCrash)
    await mesh.pump()
    expectCompleted(mesh)
  })
})

describe('sessionMachine: durable deadline', () => {
  it('a snapshot restored mid-session re-arms the deadline timer, which then fires', async () => {
    const { actor, clock, machine, input, armed } = lone()
    joinOthers(actor)
    actor.send({ type: 'EXECUTE', protocol: twoToAlpha })
    actor.send({ type: 'RECEIVE', step: 0, from: 'peer-b', payload: 'b1' })
    await clock.advance(10_000)
    const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()))
    actor.stop()
    // one timer for the whole session, not one per state it went through
    expect(armed).toEqual([START + DEADLINE_IN])

    const restored = createActor(machine, { snapshot: persisted, input, clock }).start()
    expect(restored.getSnapshot().matches({ active: { running: 'awaiting' } })).toBe(true)
    expect(armed).toHaveLength(2)
    await clock.advance(DEADLINE_IN - 10_000 - 1)
    expect(restored.getSnapshot().status).toBe('active')
    await clock.advance(1)
    await flush()
    expect(restored.getSnapshot().value).toBe('failed')
    expect(restored.getSnapshot().output?.outcome).toEqual({ kind: 'timeout', lastKnownState: { cursor: 2, step: 'b2' } })
    // the stopped original did not fire anything
    expect(actor.getSnapshot().status).toBe('stopped')
  })

  it('a snapshot restored after its deadline times out at once', async () => {
    const { actor, clock, machine, input } = lone()
    actor.send({ type: 'EXECUTE', protocol: twoToAlpha })
    const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()))
    actor.stop()
    await clock.advance(DEADLINE_IN + 5_000)
    const restored = createActor(machine, { snapshot: persisted, input, clock }).start()
    await flush()
    expect(restored.getSnapshot().value).toBe('failed')
    expect(restored.getSnapshot().output?.outcome.kind).toBe('timeout')
  })
})

describe('sessionMachine: agreeing (the leader decides, participants adopt)', () => {
  // peer-a leads; a one-step protocol from beta to alpha leaves gamma nothing to do
  const oneStep: SessionProtocol = { name: 'one-step', steps: [{ label: 'b1', from: 'beta', to: ['alpha'] }] }
  /** beta's only step goes to gamma, not to the leader: beta reports done on its own */
  const toGamma: SessionProtocol = { name: 'to-gamma', steps: [{ label: 'b1', from: 'beta', to: ['gamma'] }] }

  /** peer-b, a participant, with `protocol` sent (its only step): its projection is done. */
  async function doneParticipant(opts: Parameters<typeof lone>[0] = {}, protocol = toGamma) {
    const peer = lone({ self: 'peer-b', ...opts })
    joinOthers(peer.actor, 'peer-b')
    peer.actor.send({ type: 'EXECUTE', protocol })
    await flush()
    return peer
  }

  it('participant: a last step to the leader carries its done report; no report of its own follows', async () => {
    const { actor, reports, sends } = await doneParticipant({}, oneStep)
    expect(sends.map((s) => s.reportsDone)).toEqual([true])
    expect(reports).toEqual([])
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'awaitingVerdict' })
    expect(actor.getSnapshot().context.proposal).toEqual({ kind: 'done' })
    actor.send({ type: 'VERDICT', kind: 'success' })
    await flush()
    expect(actor.getSnapshot().value).toBe('completed')
  })

  it('participant: a verdict in the answer to its last step ends it at once', async () => {
    const { actor, reports } = await doneParticipant({ stepAnswer: () => ({ kind: 'failure', reason: 'failed by peer-c: no' }) }, oneStep)
    expect(reports).toEqual([])
    expect(actor.getSnapshot().value).toBe('failed')
    expect(actor.getSnapshot().context.sent).toEqual([0])
    expect(actor.getSnapshot().output?.outcome).toEqual({ kind: 'failure', reason: 'failed by peer-c: no', partialResults: {} })
  })

  it('a step carries the report only if it is the last act of a participant and goes to the leader', async () => {
    // beta sends to alpha, then receives from gamma: its first send is not its last act
    const protocol: SessionProtocol = {
      name: 'not-last',
      steps: [
        { label: 'b1', from: 'beta', to: ['alpha'] },
        { label: 'c1', from: 'gamma', to: ['beta'] },
      ],
    }
    const { actor, sends, reports } = await doneParticipant({}, protocol)
    expect(sends.map((s) => s.reportsDone)).toEqual([false])
    actor.send({ type: 'RECEIVE', step: 1, from: 'peer-c', payload: 'c1' })
    await flush()
    expect(reports.map((r) => r.proposal)).toEqual([{ kind: 'done' }])
    // the leader never carries a report: it decides
    const leader = lone()
    joinOthers(leader.actor)
    leader.actor.send({ type: 'EXECUTE', protocol: { name: 'alpha-last', steps: [{ label: 'a1', from: 'alpha', to: ['beta'] }] } })
    await flush()
    expect(leader.sends.map((s) => s.reportsDone)).toEqual([false])
  })

  it('leader: success needs every participant to report done; strangers, self and repeats do not count', async () => {
    const { actor, released } = lone()
    joinOthers(actor)
    actor.send({ type: 'REPORT', from: 'peer-c', kind: 'done' }) // early, while the leader still runs
    actor.send({ type: 'EXECUTE', protocol: oneStep })
    actor.send({ type: 'RECEIVE', step: 0, from: 'peer-b', payload: 'b1' })
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'collecting' })
    expect(actor.getSnapshot().context.reportedDone).toEqual(['peer-c', 'peer-a'])
    expectForbidden(actor, { type: 'REPORT', from: 'peer-c', kind: 'done' })
    expectForbidden(actor, { type: 'REPORT', from: 'peer-x', kind: 'done' })
    expectForbidden(actor, { type: 'REPORT', from: 'peer-a', kind: 'done' })
    // a participant past its deadline says so; the leader's own deadline decides timeouts
    expectForbidden(actor, { type: 'REPORT', from: 'peer-b', kind: 'timeout' })
    expectForbidden(actor, { type: 'VERDICT', kind: 'failure' })
    actor.send({ type: 'REPORT', from: 'peer-b', kind: 'done' })
    await flush()
    expect(actor.getSnapshot().value).toBe('completed')
    expect(released).toEqual([{ sessionId: 's-1', outcome: { kind: 'success', results: { 0: { 'peer-b': 'b1' } } }, announce: true }])
  })

  it('leader: its deadline while collecting decides timeout; a participant calling for failure or cancel decides that', async () => {
    const timedOut = lone()
    joinOthers(timedOut.actor)
    timedOut.actor.send({ type: 'EXECUTE', protocol: oneStep })
    timedOut.actor.send({ type: 'RECEIVE', step: 0, from: 'peer-b', payload: 'b1' })
    await timedOut.clock.advance(DEADLINE_IN)
    await flush()
    expect(timedOut.actor.getSnapshot().value).toBe('failed')
    expect(timedOut.actor.getSnapshot().output?.outcome).toEqual({ kind: 'timeout', lastKnownState: { cursor: 1 } })

    const failed = lone()
    joinOthers(failed.actor)
    failed.actor.send({ type: 'EXECUTE', protocol: oneStep })
    failed.actor.send({ type: 'REPORT', from: 'peer-c', kind: 'failure', reason: 'disk full' })
    await flush()
    expect(failed.actor.getSnapshot().value).toBe('failed')
    expect(failed.actor.getSnapshot().output?.outcome).toEqual({ kind: 'failure', reason: 'failed by peer-c: disk full', partialResults: {} })

    const cancelled = lone()
    cancelled.actor.send({ type: 'REPORT', from: 'peer-b', kind: 'cancelled', reason: 'user' })
    await flush()
    expect(cancelled.actor.getSnapshot().output?.outcome).toEqual({ kind: 'cancelled', reason: 'cancelled by peer-b: user' })
  })

  it('leader in collecting: CANCEL and FAIL decide at once', async () => {
    for (const [event, status] of [
      [{ type: 'CANCEL', reason: 'stop' }, 'cancelled'],
      [{ type: 'FAIL', reason: 'bad' }, 'failed'],
    ] as const) {
      const { actor } = lone()
      joinOthers(actor)
      actor.send({ type: 'EXECUTE', protocol: oneStep })
      actor.send({ type: 'RECEIVE', step: 0, from: 'peer-b', payload: 'b1' })
      actor.send(event)
      await flush()
      expect(actor.getSnapshot().value).toBe(status)
    }
  })

  it('participant: done is reported to the leader, not decided; the verdict makes its own outcome', async () => {
    const { actor, reports, released, sends } = await doneParticipant()
    expect(sends.map((s) => s.stepIndex)).toEqual([0])
    expect(reports).toEqual([{ sessionId: 's-1', leaderPeerId: 'peer-a', proposal: { kind: 'done' }, untilVerdict: false, deadlineAt: START + DEADLINE_IN }])
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'awaitingVerdict' })
    expect(actor.getSnapshot().context.outcome).toBeNull()
    expectForbidden(actor, { type: 'REPORT', from: 'peer-c', kind: 'done' }) // only the leader collects
    actor.send({ type: 'VERDICT', kind: 'success' })
    await flush()
    expect(actor.getSnapshot().value).toBe('completed')
    expect(actor.getSnapshot().output?.outcome).toEqual({ kind: 'success', results: {} })
    // a participant has nothing to release: it ends at once
    expect(released).toEqual([])
  })

  it('participant: a verdict in the answer to its report ends it at once', async () => {
    const { actor } = await doneParticipant({ answer: async () => ({ kind: 'failure', reason: 'failed by peer-c: no' }) })
    await flush()
    expect(actor.getSnapshot().value).toBe('failed')
    expect(actor.getSnapshot().output?.outcome).toEqual({ kind: 'failure', reason: 'failed by peer-c: no', partialResults: {} })
  })

  it('participant: a report that cannot be delivered waits for the verdict all the same', async () => {
    const { actor } = await doneParticipant({ answer: async () => Promise.reject(new Error('leader unreachable')) })
    await flush()
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'awaitingVerdict' })
  })

  it('participant: at its deadline it asks the leader for the verdict instead of timing out alone', async () => {
    let answerVerdict: (v: Verdict) => void = () => undefined
    const { actor, clock, reports, armed } = await doneParticipant({
      answer: (input) => (input.untilVerdict ? new Promise((resolve) => (answerVerdict = resolve)) : Promise.resolve(null)),
    })
    await clock.advance(DEADLINE_IN)
    await flush()
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'askingLeader' })
    expect(reports.at(-1)).toEqual({
      sessionId: 's-1',
      leaderPeerId: 'peer-a',
      proposal: { kind: 'done' },
      untilVerdict: true,
      deadlineAt: START + DEADLINE_IN + GRACE,
    })
    expect(armed.at(-1)).toBe(START + DEADLINE_IN + GRACE)
    answerVerdict({ kind: 'timeout' })
    await flush()
    expect(actor.getSnapshot().value).toBe('failed')
    expect(actor.getSnapshot().output?.outcome).toEqual({ kind: 'timeout', lastKnownState: { cursor: 1 } })
    expect(actor.getSnapshot().context.error).toBeNull()
  })

  it('participant: a leader silent for the whole grace leaves it to time out alone, saying so', async () => {
    const { actor, clock } = await doneParticipant({ answer: (input) => (input.untilVerdict ? new Promise(() => undefined) : Promise.resolve(null)) })
    await clock.advance(DEADLINE_IN + GRACE - 1)
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'askingLeader' })
    await clock.advance(1)
    await flush()
    expect(actor.getSnapshot().value).toBe('failed')
    expect(actor.getSnapshot().output?.outcome.kind).toBe('timeout')
    expect(actor.getSnapshot().context.error?.code).toBe('VERDICT_UNAVAILABLE')
  })

  it('participant: a verdict while waiting for the leader to answer is taken too', async () => {
    const { actor, clock } = await doneParticipant({ answer: (input) => (input.untilVerdict ? new Promise(() => undefined) : Promise.resolve(null)) })
    await clock.advance(DEADLINE_IN)
    actor.send({ type: 'VERDICT', kind: 'cancelled', reason: 'cancelled by peer-c: user' })
    await flush()
    expect(actor.getSnapshot().output?.outcome).toEqual({ kind: 'cancelled', reason: 'cancelled by peer-c: user' })
  })

  it('participant: CANCEL, FAIL, a failed send, a LEAVE and its deadline become proposals to the leader', async () => {
    const cases: Array<{ setUp: (p: ReturnType<typeof lone>) => Promise<void>; proposal: unknown; state: unknown }> = [
      {
        setUp: async (p) => void p.actor.send({ type: 'CANCEL', reason: 'user' }),
        proposal: { kind: 'cancelled', reason: 'user' },
        state: { agreeing: 'awaitingVerdict' },
      },
      {
        setUp: async (p) => void p.actor.send({ type: 'FAIL', reason: 'bad' }),
        proposal: { kind: 'failure', reason: 'bad' },
        state: { agreeing: 'awaitingVerdict' },
      },
      {
        setUp: async (p) => {
          joinOthers(p.actor, 'peer-b')
          p.actor.send({ type: 'EXECUTE', protocol: oneStep })
        },
        proposal: { kind: 'failure', reason: 'sending step 0 failed: peer unreachable' },
        state: { agreeing: 'awaitingVerdict' },
      },
      {
        setUp: async (p) => {
          joinOthers(p.actor, 'peer-b')
          p.actor.send({ type: 'EXECUTE', protocol: twoToAlpha })
          p.actor.send({ type: 'LEAVE', peerId: 'peer-c' })
        },
        proposal: { kind: 'failure', reason: 'participant left' },
        state: { agreeing: 'awaitingVerdict' },
      },
      { setUp: async (p) => void (await p.clock.advance(DEADLINE_IN)), proposal: { kind: 'timeout' }, state: { agreeing: 'askingLeader' } },
    ]
    for (const [i, c] of cases.entries()) {
      const p = lone({ self: 'peer-b', sendFails: i === 2, answer: (input) => (input.untilVerdict ? new Promise(() => undefined) : Promise.resolve(null)) })
      await c.setUp(p)
      await flush()
      expect(p.actor.getSnapshot().value, `case ${i}`).toEqual(c.state)
      expect(p.reports.at(-1)?.proposal, `case ${i}`).toEqual(c.proposal)
      expect(p.actor.getSnapshot().context.outcome, `case ${i}`).toBeNull()
    }
  })

  it('participant: cancelling while agreeing reports the cancel instead', async () => {
    const { actor, reports } = await doneParticipant()
    actor.send({ type: 'CANCEL', reason: 'changed my mind' })
    await flush()
    expect(reports.map((r) => r.proposal)).toEqual([{ kind: 'done' }, { kind: 'cancelled', reason: 'changed my mind' }])
    actor.send({ type: 'FAIL', reason: 'worse' })
    await flush()
    expect(reports.at(-1)?.proposal).toEqual({ kind: 'failure', reason: 'worse' })
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'awaitingVerdict' })
  })

  it('participant: the verdict ends it from any state before its own end, e.g. not yet executed', async () => {
    const { actor } = lone({ self: 'peer-c' })
    actor.send({ type: 'VERDICT', kind: 'cancelled', reason: 'invite failed' })
    await flush()
    expect(actor.getSnapshot().value).toBe('cancelled')
    const running = lone({ self: 'peer-c' })
    joinOthers(running.actor, 'peer-c')
    running.actor.send({ type: 'EXECUTE', protocol: twoToAlpha })
    running.actor.send({ type: 'RECEIVE', step: 1, from: 'peer-c', payload: 'not from c to c' })
    running.actor.send({ type: 'VERDICT', kind: 'timeout' })
    await flush()
    expect(running.actor.getSnapshot().output?.outcome).toEqual({ kind: 'timeout', lastKnownState: { cursor: 1, step: 'c1' } })
  })

  it('participant asking past its deadline: CANCEL or FAIL asks again with the new proposal, and the grace still ends it', async () => {
    const { actor, clock, reports } = await doneParticipant({ answer: (input) => (input.untilVerdict ? new Promise(() => undefined) : Promise.resolve(null)) })
    await clock.advance(DEADLINE_IN)
    await flush()
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'askingLeader' })
    actor.send({ type: 'CANCEL', reason: 'changed my mind' })
    await flush()
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'askingLeader' })
    expect(reports.at(-1)).toMatchObject({ proposal: { kind: 'cancelled', reason: 'changed my mind' }, untilVerdict: true })
    actor.send({ type: 'FAIL', reason: 'worse' })
    await flush()
    expect(reports.at(-1)).toMatchObject({ proposal: { kind: 'failure', reason: 'worse' }, untilVerdict: true })
    // a DEADLINE now (a timer re-armed on restore, say) is not the end of the grace
    actor.send({ type: 'DEADLINE' })
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'askingLeader' })
    await clock.advance(GRACE)
    await flush()
    expect(actor.getSnapshot().value).toBe('failed')
    expect(actor.getSnapshot().context.error?.code).toBe('VERDICT_UNAVAILABLE')
  })

  it('participant restored while asking re-arms the grace from the snapshot', async () => {
    const { actor, clock, machine, input, armed } = await doneParticipant({
      answer: (i) => (i.untilVerdict ? new Promise(() => undefined) : Promise.resolve(null)),
    })
    await clock.advance(DEADLINE_IN + 10)
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'askingLeader' })
    const persisted = JSON.parse(JSON.stringify(actor.getPersistedSnapshot()))
    actor.stop()
    const restored = createActor(
      machine.provide({ actors: { reportToLeader: fromPromise<Verdict | null, ReportInput>(() => new Promise(() => undefined)) } }),
      { snapshot: persisted, input, clock },
    ).start()
    expect(armed.at(-1)).toBe(START + DEADLINE_IN + GRACE)
    await clock.advance(GRACE)
    await flush()
    expect(restored.getSnapshot().value).toBe('failed')
    expect(restored.getSnapshot().context.error?.code).toBe('VERDICT_UNAVAILABLE')
  })

  it("a three-peer mesh where every step arrives but gamma's done report is lost: all time out alike", async () => {
    const mesh = new Mesh()
    mesh.startAll()
    mesh.joinAll()
    for (const actor of mesh.actors.values()) actor.send({ type: 'EXECUTE', protocol: ceremony() })
    const gammasReport = (m: Mail) => m.event.type === 'REPORT' && m.event.from === 'peer-c'
    await mesh.pump({ lose: gammasReport })
    expect(mesh.snapshot('peer-a').value).toEqual({ agreeing: 'collecting' })
    expect(mesh.snapshot('peer-b').value).toEqual({ agreeing: 'awaitingVerdict' })
    expect(mesh.snapshot('peer-c').value).toEqual({ agreeing: 'awaitingVerdict' })
    await mesh.clock.advance(DEADLINE_IN)
    await mesh.pump({ lose: gammasReport })
    const endings = PEERS.map((p) => `${String(mesh.snapshot(p.peerId).value)}/${mesh.snapshot(p.peerId).output?.outcome.kind}`)
    expect(endings).toEqual(['failed/timeout', 'failed/timeout', 'failed/timeout'])
  })
})
