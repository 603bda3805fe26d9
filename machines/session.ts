// Session management (pattern 4). Each peer runs its own projection of a choreography: an ordered
// list of role → roles messages. At each step a peer either sends (the injected action `sendStep`,
// answered by STEP_SENT or STEP_FAILED),
// waits for the one message addressed to it, or has nothing to do. Messages that arrive early are
// kept (before the protocol is known in `pending`, afterwards in `received` under a later step)
// and consumed when the cursor reaches them, so delivery order does not matter and duplicates
// are dropped. The deadline is absolute and re-armed on restore by the invoked `deadlineTimer`.
// Sending a step and the leader's release are injected actions (the entry of `sending` and of
// `terminating`), answered by events: each was a promise actor once, a child actor created and
// stopped at every step. Entry actions do not run again when a snapshot is restored, so a runner
// that restores one in `sending` or `terminating` starts that effect again itself.
//
// Agreement: the outcome is the leader's (the session's creator) to decide, so every participant
// ends the same way. A participant whose projection is done, or that wants to fail or cancel,
// does not end by itself: in `agreeing` it reports to the leader and waits for the verdict, and
// once its deadline passes it asks the leader for it. The leader decides success when its own
// projection is done and every participant has reported done before its deadline, timeout at
// its deadline, failure or cancellation when it or a participant calls for them. Each peer builds
// its outcome from the verdict's kind (its own results, its own last step). Only a leader
// unreachable for `verdictGraceMs` past the deadline makes a participant time out alone.
import { and, assign, fromCallback, fromPromise, setup } from 'xstate'
import { z } from 'zod'
import { errorInfo, type DeadlineEvent, type DeadlineTimerInput, type GraceOverEvent } from './kernel.js'

// ---------------------------------------------------------------------------------------------
// Input and protocol schemas

const participantSchema = z.object({ peerId: z.string().min(1), role: z.string().min(1) })

export const sessionInputSchema = z
  .object({
    sessionId: z.string().min(1),
    sessionType: z.string().min(1),
    selfPeerId: z.string().min(1),
    participants: z.array(participantSchema).min(1),
    /** the creator: it decides the outcome every participant ends with */
    leaderPeerId: z.string().min(1),
    createdAt: z.number().finite(),
    deadlineAt: z.number().finite(),
    /** how long past the deadline a participant keeps asking an unreachable leader for the verdict */
    verdictGraceMs: z.number().finite().nonnegative(),
    limits: z.object({
      maxParticipants: z.number().int().min(1),
      maxMessageBytes: z.number().int().min(1),
    }),
  })
  .superRefine((input, ctx) => {
    const peers = input.participants.map((p) => p.peerId)
    const roles = input.participants.map((p) => p.role)
    if (!peers.includes(input.selfPeerId)) {
      ctx.addIssue({ code: 'custom', path: ['selfPeerId'], message: 'selfPeerId is not a participant' })
    }
    if (!peers.includes(input.leaderPeerId)) {
      ctx.addIssue({ code: 'custom', path: ['leaderPeerId'], message: 'leaderPeerId is not a participant' })
    }
    if (new Set(peers).size !== peers.length) {
      ctx.addIssue({ code: 'custom', path: ['participants'], message: 'duplicate peer id' })
    }
    if (new Set(roles).size !== roles.length) {
      ctx.addIssue({ code: 'custom', path: ['participants'], message: 'duplicate role' })
    }
    if (input.participants.length > input.limits.maxParticipants) {
      ctx.addIssue({
        code: 'custom',
        path: ['participants'],
        message: `more than ${input.limits.maxParticipants} participants`,
      })
    }
    if (input.deadlineAt < input.createdAt) {
      ctx.addIssue({ code: 'custom', path: ['deadlineAt'], message: 'deadlineAt precedes createdAt' })
    }
  })
export type SessionInput = z.infer<typeof sessionInputSchema>
export type SessionParticipant = z.infer<typeof participantSchema>

export const sessionStepSchema = z
  .object({ label: z.string().min(1), from: z.string().min(1), to: z.array(z.string().min(1)).min(1) })
  .refine((s) => !s.to.includes(s.from), { message: 'a step cannot send to its own role' })
  .refine((s) => new Set(s.to).size === s.to.length, { message: 'duplicate recipient role' })
export type SessionStep = z.infer<typeof sessionStepSchema>

export const sessionProtocolSchema = z.object({ name: z.string().min(1), steps: z.array(sessionStepSchema).min(1) })
export type SessionProtocol = z.infer<typeof sessionProtocolSchema>

/** Upper bound on messages held before the protocol is known, so an early flood cannot grow memory. */
export const MAX_PENDING_MESSAGES = 1024

// ---------------------------------------------------------------------------------------------
// Context, events, outcome

/** stepIndex (as object key) → fromPeerId → payload */
export type SessionResults = Record<string, Record<string, unknown>>

export type SessionOutcome =
  | { kind: 'success'; results: SessionResults }
  | { kind: 'failure'; reason: string; partialResults: SessionResults }
  | { kind: 'timeout'; lastKnownState: { cursor: number; step?: string } }
  | { kind: 'cancelled'; reason: string }

export type PendingMessage = { step: number; from: string; payload: unknown }

/** What the leader decided; each peer turns it into its own outcome (its results, its last step). */
export const verdictSchema = z.object({ kind: z.enum(['success', 'failure', 'timeout', 'cancelled']), reason: z.string().max(1024).optional() }).strict()
export type Verdict = z.infer<typeof verdictSchema>

/** What a participant reports to the leader: its projection is done, or it calls for an end. */
export const proposalSchema = z.object({ kind: z.enum(['done', 'failure', 'cancelled', 'timeout']), reason: z.string().max(1024).optional() }).strict()
export type Proposal = z.infer<typeof proposalSchema>

export type SessionContext = {
  sessionId: string
  sessionType: string
  selfPeerId: string
  selfRole: string
  participants: SessionParticipant[]
  leaderPeerId: string
  createdAt: number
  deadlineAt: number
  verdictGraceMs: number
  limits: SessionInput['limits']
  joined: string[]
  protocol: SessionProtocol | null
  cursor: number
  received: Record<number, Record<string, unknown>>
  sent: number[]
  pending: PendingMessage[]
  /** leader: the participants (itself included) whose projection is done */
  reportedDone: string[]
  /** participant: what it reports to the leader while agreeing */
  proposal: Proposal | null
  outcome: SessionOutcome | null
  error: { code: string; message: string } | null
}

export type SessionEvent =
  | { type: 'JOIN'; peerId: string; role: string }
  | { type: 'LEAVE'; peerId: string }
  | { type: 'EXECUTE'; protocol: SessionProtocol }
  | { type: 'RECEIVE'; step: number; from: string; payload: unknown }
  | { type: 'CANCEL'; reason?: string }
  | { type: 'FAIL'; reason: string }
  /** leader: a participant's report (the runtime has checked it comes from that participant) */
  | ({ type: 'REPORT'; from: string } & Proposal)
  /** participant: the leader's verdict (the runtime has checked it comes from the leader) */
  | ({ type: 'VERDICT' } & Verdict)
  | DeadlineEvent
  /** participant, asking the leader past its deadline: the grace for an answer is over */
  | GraceOverEvent
  /** the runner's answer to `sendStep`: the step was acknowledged (by the leader, maybe with its verdict) */
  | { type: 'STEP_SENT'; step: number; verdict: Verdict | null }
  /** the runner's answer to `sendStep`: the step could not be delivered */
  | { type: 'STEP_FAILED'; step: number; error: unknown }
  /** the runner's answer to `release` (done or failed alike: the outcome stands either way) */
  | { type: 'RELEASED' }

export type SessionOutput = { sessionId: string; outcome: SessionOutcome }

/** What the session's `deadlineTimer` actors say: the deadline, or (asking the leader) the grace's end. */
export type SessionTimerEvent = DeadlineEvent | GraceOverEvent

/**
 * `reportsDone`: this send is the participant's last act in its projection and the leader is a
 * recipient, so the step carries its done report; the leader's acknowledgement then answers the
 * verdict if decided (STEP_SENT's `verdict`), and the participant goes straight to waiting for it.
 */
export type SendStepInput = { sessionId: string; stepIndex: number; step: SessionStep; toPeerIds: string[]; reportsDone: boolean }
/** `announce`: this peer is the leader, and its verdict goes to every participant once durable. */
export type ReleaseInput = { sessionId: string; outcome: SessionOutcome; announce: boolean }
/** Reports `proposal` to the leader until acknowledged; with `untilVerdict`, until it answers a verdict. */
export type ReportInput = { sessionId: string; leaderPeerId: string; proposal: Proposal; untilVerdict: boolean; deadlineAt: number }

// ---------------------------------------------------------------------------------------------
// Pure reading of the context

type Ctx = SessionContext

const roleOf = (ctx: Ctx, peerId: string): string | undefined => ctx.participants.find((p) => p.peerId === peerId)?.role
const peerOf = (ctx: Ctx, role: string): string | undefined => ctx.participants.find((p) => p.role === role)?.peerId
const currentStep = (ctx: Ctx): SessionStep | undefined => ctx.protocol?.steps[ctx.cursor]
const hasPayload = (ctx: Ctx, step: number, from: string): boolean => ctx.received[step] !== undefined && Object.hasOwn(ctx.received[step]!, from)

/** Whether a message fits the protocol: right sender for its step, addressed to us, not seen before. */
function fitsProtocol(ctx: Ctx, protocol: SessionProtocol, msg: { step: number; from: string }): boolean {
  if (!Number.isInteger(msg.step) || msg.step < 0 || msg.step >= protocol.steps.length) return false
  const step = protocol.steps[msg.step]!
  return roleOf(ctx, msg.from) === step.from && step.to.includes(ctx.selfRole) && !hasPayload(ctx, msg.step, msg.from)
}

/**
 * Protocols already checked against the schema, by the object given: a runtime executes the same
 * choreography for session after session, and the guard and the action that starts it each
 * checked it again. What is kept is the parsed copy, frozen, so no session can change another's.
 */
const checkedProtocols = new WeakMap<object, SessionProtocol>()

function checkedProtocol(protocol: unknown): SessionProtocol | undefined {
  if (typeof protocol !== 'object' || protocol === null) return undefined
  let checked = checkedProtocols.get(protocol)
  if (checked) return checked
  const parsed = sessionProtocolSchema.safeParse(protocol)
  if (!parsed.success) return undefined
  checked = deepFreeze(parsed.data)
  checkedProtocols.set(protocol, checked)
  return checked
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    Object.freeze(value)
    for (const inner of Object.values(value)) deepFreeze(inner)
  }
  return value
}

function protocolFitsRoster(ctx: Ctx, protocol: unknown): boolean {
  const checked = checkedProtocol(protocol)
  if (!checked) return false
  const roles = new Set(ctx.participants.map((p) => p.role))
  return checked.steps.every((s) => roles.has(s.from) && s.to.every((r) => roles.has(r)))
}

// Payloads are stored as JSON-safe values so a persisted snapshot restores what was received.
const record = (received: Ctx['received'], step: number, from: string, payload: unknown): Ctx['received'] => ({
  ...received,
  [step]: { ...received[step], [from]: payload === undefined ? null : payload },
})

const resultsOf = (ctx: Ctx): SessionResults => {
  const out: SessionResults = {}
  for (const [step, byPeer] of Object.entries(ctx.received)) out[step] = { ...byPeer }
  return out
}

const timeoutOf = (ctx: Ctx): SessionOutcome => {
  const step = currentStep(ctx)
  return { kind: 'timeout', lastKnownState: step ? { cursor: ctx.cursor, step: step.label } : { cursor: ctx.cursor } }
}

/** This peer's outcome for the leader's verdict: the kind is shared, the details are its own. */
function outcomeFor(ctx: Ctx, verdict: Verdict): SessionOutcome {
  switch (verdict.kind) {
    case 'success':
      return { kind: 'success', results: resultsOf(ctx) }
    case 'failure':
      return { kind: 'failure', reason: verdict.reason ?? 'failed', partialResults: resultsOf(ctx) }
    case 'timeout':
      return timeoutOf(ctx)
    case 'cancelled':
      return { kind: 'cancelled', reason: verdict.reason ?? 'cancelled' }
  }
}

const isLeader = (ctx: Ctx): boolean => ctx.selfPeerId === ctx.leaderPeerId

/**
 * A participant's current step (one it sends) is its last act: no later step sends to or from its
 * role. Sent to the leader among others, the step carries the participant's done report, which
 * saves the report's own round trip (see SendStepInput).
 */
function stepCarriesReport(ctx: Ctx): boolean {
  const steps = ctx.protocol?.steps
  const step = steps?.[ctx.cursor]
  if (!steps || !step || isLeader(ctx) || step.from !== ctx.selfRole) return false
  const leaderRole = roleOf(ctx, ctx.leaderPeerId)
  if (leaderRole === undefined || !step.to.includes(leaderRole)) return false
  for (let i = ctx.cursor + 1; i < steps.length; i++) if (steps[i]!.from === ctx.selfRole || steps[i]!.to.includes(ctx.selfRole)) return false
  return true
}
/**
 * What a participant reports: before its deadline (done, unless it proposed otherwise), or past
 * it asking for the verdict (timeout, unless it proposed otherwise) until the grace ends.
 */
const reportInput = (ctx: Ctx, untilVerdict: boolean): ReportInput => ({
  sessionId: ctx.sessionId,
  leaderPeerId: ctx.leaderPeerId,
  proposal: ctx.proposal ?? { kind: untilVerdict ? 'timeout' : 'done' },
  untilVerdict,
  deadlineAt: untilVerdict ? ctx.deadlineAt + ctx.verdictGraceMs : ctx.deadlineAt,
})
const reportFrom = (ctx: Ctx, event: SessionEvent, kind: Proposal['kind']): boolean =>
  event.type === 'REPORT' && isLeader(ctx) && event.kind === kind && event.from !== ctx.selfPeerId && roleOf(ctx, event.from) !== undefined

/** What the `sendStep` action is to deliver for this context (the machine is in `sending`). */
export function sendStepInput(ctx: SessionContext): SendStepInput {
  const step = currentStep(ctx)!
  return {
    sessionId: ctx.sessionId,
    stepIndex: ctx.cursor,
    step,
    toPeerIds: step.to.map((role) => peerOf(ctx, role)!),
    reportsDone: stepCarriesReport(ctx),
  }
}

/** What the `release` action is to release for this context (the machine is in `terminating`). */
export const releaseInput = (ctx: SessionContext): ReleaseInput => ({ sessionId: ctx.sessionId, outcome: ctx.outcome!, announce: isLeader(ctx) })

// ---------------------------------------------------------------------------------------------
// Transitions shared by several states

/** Leader, before it has decided: a participant's report is recorded (done) or decides (failure, cancel). */
const leaderHearsReport = [
  { guard: 'reportsDone', actions: 'recordDone' },
  { guard: 'reportsFailure', target: '#session.terminating', actions: 'failByReport' },
  { guard: 'reportsCancel', target: '#session.terminating', actions: 'cancelByReport' },
] as const

/** CANCEL, FAIL, DEADLINE before the outcome is known: the leader decides, a participant proposes. */
const endingCalledFor = {
  CANCEL: [
    { guard: 'isLeader', target: '#session.terminating', actions: 'cancel' },
    { target: '#session.agreeing', actions: 'proposeCancel' },
  ],
  FAIL: [
    { guard: 'isLeader', target: '#session.terminating', actions: 'fail' },
    { target: '#session.agreeing', actions: 'proposeFailure' },
  ],
  DEADLINE: [
    { guard: 'isLeader', target: '#session.terminating', actions: 'timeOut' },
    { target: '#session.agreeing.askingLeader', actions: 'proposeTimeout' },
  ],
  REPORT: leaderHearsReport,
  VERDICT: { guard: 'fromParticipantsSide', target: '#session.ending', actions: 'adoptVerdict' },
} as const

// ---------------------------------------------------------------------------------------------
// Machine

export const sessionMachine = setup({
  types: {
    input: {} as SessionInput,
    context: {} as SessionContext,
    events: {} as SessionEvent,
    output: {} as SessionOutput,
  },
  actors: {
    // Placeholders: the runtime provides real ones. Without a clock a deadline cannot fire;
    // without a network a step cannot be sent, so that fails the session visibly.
    deadlineTimer: fromCallback<SessionTimerEvent, DeadlineTimerInput>(() => undefined),
    reportToLeader: fromPromise<Verdict | null, ReportInput>(async () => {
      throw new Error('reportToLeader actor not provided')
    }),
  },
  guards: {
    isLeader: ({ context }) => isLeader(context),
    // A verdict is the leader's to give; the leader itself never takes one.
    fromParticipantsSide: ({ context, event }) => event.type === 'VERDICT' && !isLeader(context),
    reportsDone: ({ context, event }) => reportFrom(context, event, 'done') && event.type === 'REPORT' && !context.reportedDone.includes(event.from),
    reportsFailure: ({ context, event }) => reportFrom(context, event, 'failure'),
    reportsCancel: ({ context, event }) => reportFrom(context, event, 'cancelled'),
    allReportedDone: ({ context }) => context.participants.every((p) => context.reportedDone.includes(p.peerId)),
    answeredVerdict: ({ event }) => (event as { output?: unknown }).output != null,
    stepCarriedReport: ({ context }) => stepCarriesReport(context),
    stepAnsweredVerdict: ({ context, event }) => stepCarriesReport(context) && event.type === 'STEP_SENT' && event.verdict !== null,
    /** an answer to the step being sent now (one for an earlier step, abandoned, comes too late) */
    currentStepAnswer: ({ context, event }) => (event.type === 'STEP_SENT' || event.type === 'STEP_FAILED') && event.step === context.cursor,
    isRosterJoin: ({ context, event }) => event.type === 'JOIN' && context.participants.some((p) => p.peerId === event.peerId && p.role === event.role),
    canUnjoin: ({ context, event }) => event.type === 'LEAVE' && event.peerId !== context.selfPeerId && context.joined.includes(event.peerId),
    isOtherParticipant: ({ context, event }) => event.type === 'LEAVE' && event.peerId !== context.selfPeerId && roleOf(context, event.peerId) !== undefined,
    isRunnableProtocol: ({ context, event }) => event.type === 'EXECUTE' && protocolFitsRoster(context, event.protocol),
    canBuffer: ({ context, event }) =>
      event.type === 'RECEIVE' &&
      Number.isInteger(event.step) &&
      event.step >= 0 &&
      event.from !== context.selfPeerId &&
      roleOf(context, event.from) !== undefined &&
      context.pending.length < MAX_PENDING_MESSAGES &&
      !context.pending.some((m) => m.step === event.step && m.from === event.from),
    fitsProtocol: ({ context, event }) => event.type === 'RECEIVE' && context.protocol !== null && fitsProtocol(context, context.protocol, event),
    allJoined: ({ context }) => context.participants.every((p) => context.joined.includes(p.peerId)),
    protocolDone: ({ context }) => context.protocol !== null && context.cursor >= context.protocol.steps.length,
    selfSends: ({ context }) => currentStep(context)?.from === context.selfRole,
    selfReceives: ({ context }) => currentStep(context)?.to.includes(context.selfRole) === true,
    currentReceived: ({ context }) => {
      const step = currentStep(context)
      const sender = step && peerOf(context, step.from)
      return sender !== undefined && hasPayload(context, context.cursor, sender)
    },
    sendTimedOut: ({ event }) => errorInfo((event as { error?: unknown }).error, 'NETWORK').code === 'DEADLINE_EXCEEDED',
    outcomeSuccess: ({ context }) => context.outcome?.kind === 'success',
    outcomeCancelled: ({ context }) => context.outcome?.kind === 'cancelled',
  },
  actions: {
    recordJoin: assign({
      joined: ({ context, event }) => (event.type === 'JOIN' && !context.joined.includes(event.peerId) ? [...context.joined, event.peerId] : context.joined),
    }),
    recordLeave: assign({
      joined: ({ context, event }) => (event.type === 'LEAVE' ? context.joined.filter((p) => p !== event.peerId) : context.joined),
    }),
    bufferMessage: assign({
      pending: ({ context, event }) =>
        event.type === 'RECEIVE'
          ? [...context.pending, { step: event.step, from: event.from, payload: event.payload === undefined ? null : event.payload }]
          : context.pending,
    }),
    recordMessage: assign({
      received: ({ context, event }) => (event.type === 'RECEIVE' ? record(context.received, event.step, event.from, event.payload) : context.received),
    }),
    // Messages buffered before the protocol was known are checked against it now; misfits are dropped.
    startProtocol: assign(({ context, event }) => {
      if (event.type !== 'EXECUTE') return {}
      const protocol = checkedProtocol(event.protocol)
      if (!protocol) return {}
      let ctx: Ctx = { ...context, protocol, cursor: 0 }
      for (const msg of context.pending) {
        if (fitsProtocol(ctx, protocol, msg)) ctx = { ...ctx, received: record(ctx.received, msg.step, msg.from, msg.payload) }
      }
      return { protocol, cursor: 0, received: ctx.received, pending: [] }
    }),
    advance: assign({ cursor: ({ context }) => context.cursor + 1 }),
    markSent: assign({
      sent: ({ context }) => [...context.sent, context.cursor],
      cursor: ({ context }) => context.cursor + 1,
    }),
    // ---- the leader's decisions (the outcome is set only by the leader, or from its verdict)
    recordSelfDone: assign({ reportedDone: ({ context }) => [...context.reportedDone, context.selfPeerId] }),
    recordDone: assign({
      reportedDone: ({ context, event }) => (event.type === 'REPORT' ? [...context.reportedDone, event.from] : context.reportedDone),
    }),
    succeed: assign({ outcome: ({ context }) => ({ kind: 'success' as const, results: resultsOf(context) }) }),
    cancel: assign({
      outcome: ({ event }) => ({
        kind: 'cancelled' as const,
        reason: (event.type === 'CANCEL' ? event.reason : undefined) ?? 'cancelled',
      }),
    }),
    fail: assign({
      outcome: ({ context, event }) => ({
        kind: 'failure' as const,
        reason: event.type === 'FAIL' ? event.reason : 'failed',
        partialResults: resultsOf(context),
      }),
    }),
    cancelByReport: assign({
      outcome: ({ event }) => ({
        kind: 'cancelled' as const,
        reason: event.type === 'REPORT' ? `cancelled by ${event.from}: ${event.reason ?? 'cancelled'}` : 'cancelled',
      }),
    }),
    failByReport: assign({
      outcome: ({ context, event }) => ({
        kind: 'failure' as const,
        reason: event.type === 'REPORT' ? `failed by ${event.from}: ${event.reason ?? 'failed'}` : 'failed',
        partialResults: resultsOf(context),
      }),
    }),
    failParticipantLeft: assign({
      outcome: ({ context }) => ({ kind: 'failure' as const, reason: 'participant left', partialResults: resultsOf(context) }),
    }),
    failSend: assign(({ context, event }) => {
      const info = errorInfo((event as { error?: unknown }).error, 'NETWORK')
      return {
        error: { code: info.code, message: info.message },
        outcome: { kind: 'failure' as const, reason: `sending step ${context.cursor} failed: ${info.message}`, partialResults: resultsOf(context) },
      }
    }),
    timeOut: assign({ outcome: ({ context }) => timeoutOf(context) }),
    // ---- a participant's proposals to the leader, and what it does with the verdict
    proposeDone: assign({ proposal: () => ({ kind: 'done' as const }) }),
    proposeCancel: assign({
      proposal: ({ event }) => ({ kind: 'cancelled' as const, reason: (event.type === 'CANCEL' ? event.reason : undefined) ?? 'cancelled' }),
    }),
    proposeFailure: assign({
      proposal: ({ event }) => ({ kind: 'failure' as const, reason: event.type === 'FAIL' ? event.reason : 'failed' }),
    }),
    proposeParticipantLeft: assign({ proposal: () => ({ kind: 'failure' as const, reason: 'participant left' }) }),
    proposeSendFailure: assign(({ context, event }) => {
      const info = errorInfo((event as { error?: unknown }).error, 'NETWORK')
      return {
        error: { code: info.code, message: info.message },
        proposal: { kind: 'failure' as const, reason: `sending step ${context.cursor} failed: ${info.message}` },
      }
    }),
    proposeTimeout: assign({ proposal: () => ({ kind: 'timeout' as const }) }),
    adoptVerdict: assign({
      outcome: ({ context, event }) => {
        if (event.type === 'VERDICT') return outcomeFor(context, { kind: event.kind, ...(event.reason !== undefined ? { reason: event.reason } : {}) })
        if (event.type === 'STEP_SENT') return outcomeFor(context, event.verdict!)
        return outcomeFor(context, (event as unknown as { output: Verdict }).output)
      },
    }),
    // The effects the runner provides. Inert here: a machine nobody runs waits in its state.
    /** entry of `sending`: deliver the current step (sendStepInput) and answer STEP_SENT or STEP_FAILED */
    sendStep: () => undefined,
    /** exit of `sending`: the step's delivery, if still going, is no longer wanted */
    abandonStep: () => undefined,
    /** entry of `terminating`: make the outcome durable and announce it (releaseInput), then answer RELEASED */
    release: () => undefined,
    timeOutAlone: assign(({ context }) => ({
      outcome: timeoutOf(context),
      error: { code: 'VERDICT_UNAVAILABLE', message: `no verdict from leader ${context.leaderPeerId} within the grace of ${context.verdictGraceMs} ms` },
    })),
  },
}).createMachine({
  id: 'session',
  context: ({ input }) => {
    const selfRole = input.participants.find((p) => p.peerId === input.selfPeerId)?.role ?? ''
    return {
      sessionId: input.sessionId,
      sessionType: input.sessionType,
      selfPeerId: input.selfPeerId,
      selfRole,
      participants: input.participants.map((p) => ({ peerId: p.peerId, role: p.role })),
      leaderPeerId: input.leaderPeerId,
      createdAt: input.createdAt,
      deadlineAt: input.deadlineAt,
      verdictGraceMs: input.verdictGraceMs,
      limits: { ...input.limits },
      // The leader created the session with itself in the roster: an invitee counts it joined
      // from the start (its invite is the leader's join), as the leader counts itself.
      joined: input.leaderPeerId === input.selfPeerId ? [input.selfPeerId] : [input.selfPeerId, input.leaderPeerId],
      protocol: null,
      cursor: 0,
      received: {},
      sent: [],
      pending: [],
      reportedDone: [],
      proposal: null,
      outcome: null,
      error: null,
    }
  },
  // One deadline timer for the whole session, not one per state: each state that cares handles
  // DEADLINE (it comes once). Timers made per state cost an actor each time a session moved on.
  invoke: { id: 'deadline', src: 'deadlineTimer', input: ({ context }) => ({ deadlineAt: context.deadlineAt }) },
  initial: 'created',
  states: {
    created: {
      on: {
        JOIN: { guard: 'isRosterJoin', actions: 'recordJoin' },
        LEAVE: { guard: 'canUnjoin', actions: 'recordLeave' },
        // everyone joined already (the usual case): straight to running, one step fewer
        EXECUTE: [
          { guard: and(['isRunnableProtocol', 'allJoined']), target: 'active.running', actions: 'startProtocol' },
          { guard: 'isRunnableProtocol', target: 'active', actions: 'startProtocol' },
        ],
        RECEIVE: { guard: 'canBuffer', actions: 'bufferMessage' },
        ...endingCalledFor,
      },
    },
    active: {
      initial: 'waitingForParticipants',
      on: {
        RECEIVE: { guard: 'fitsProtocol', actions: 'recordMessage' },
        ...endingCalledFor,
      },
      states: {
        waitingForParticipants: {
          always: { guard: 'allJoined', target: 'running' },
          on: {
            JOIN: { guard: 'isRosterJoin', actions: 'recordJoin' },
            LEAVE: { guard: 'canUnjoin', actions: 'recordLeave' },
          },
        },
        running: {
          initial: 'advancing',
          on: {
            LEAVE: [
              { guard: and(['isOtherParticipant', 'isLeader']), target: '#session.terminating', actions: 'failParticipantLeft' },
              { guard: 'isOtherParticipant', target: '#session.agreeing', actions: 'proposeParticipantLeft' },
            ],
          },
          states: {
            // Transient: walks the cursor over every step that is already satisfied (skipped,
            // or its message already here) until one needs sending or waiting, or the end.
            advancing: {
              always: [
                { guard: 'protocolDone', target: '#session.agreeing', actions: 'proposeDone' },
                { guard: 'selfSends', target: 'sending' },
                { guard: 'selfReceives', target: 'awaiting' },
                { actions: 'advance' },
              ],
            },
            awaiting: {
              always: { guard: 'currentReceived', target: 'advancing', actions: 'advance' },
            },
            sending: {
              entry: 'sendStep',
              exit: 'abandonStep',
              on: {
                STEP_SENT: [
                  // the step carried our done report: the leader's answer may be the verdict
                  { guard: and(['currentStepAnswer', 'stepAnsweredVerdict']), target: '#session.ending', actions: ['markSent', 'proposeDone', 'adoptVerdict'] },
                  { guard: and(['currentStepAnswer', 'stepCarriedReport']), target: '#session.agreeing.awaitingVerdict', actions: ['markSent', 'proposeDone'] },
                  { guard: 'currentStepAnswer', target: 'advancing', actions: 'markSent' },
                ],
                STEP_FAILED: [
                  // Could not deliver before the deadline: that is the session timing out,
                  // whichever of the two timers noticed first.
                  { guard: and(['currentStepAnswer', 'sendTimedOut', 'isLeader']), target: '#session.terminating', actions: 'timeOut' },
                  { guard: and(['currentStepAnswer', 'sendTimedOut']), target: '#session.agreeing.askingLeader', actions: 'proposeTimeout' },
                  { guard: and(['currentStepAnswer', 'isLeader']), target: '#session.terminating', actions: 'failSend' },
                  { guard: 'currentStepAnswer', target: '#session.agreeing', actions: 'proposeSendFailure' },
                ],
              },
            },
          },
        },
      },
    },
    // The outcome is being agreed. The leader collects done reports; a participant reports what
    // it has to say and waits for the leader's verdict, which it adopts whenever it arrives.
    agreeing: {
      initial: 'choosingSide',
      on: {
        REPORT: leaderHearsReport,
        VERDICT: { guard: 'fromParticipantsSide', target: 'ending', actions: 'adoptVerdict' },
        // A participant changing its mind (the application cancels, say) reports that instead.
        CANCEL: [
          { guard: 'isLeader', target: 'terminating', actions: 'cancel' },
          { target: '.reporting', reenter: true, actions: 'proposeCancel' },
        ],
        FAIL: [
          { guard: 'isLeader', target: 'terminating', actions: 'fail' },
          { target: '.reporting', reenter: true, actions: 'proposeFailure' },
        ],
      },
      states: {
        // Transient: entered with a proposal (participant) or after the leader's own projection.
        choosingSide: {
          always: [{ guard: 'isLeader', target: 'collecting', actions: 'recordSelfDone' }, { target: 'reporting' }],
        },
        // Leader: its projection is done; success once every participant has reported done.
        collecting: {
          always: { guard: 'allReportedDone', target: '#session.terminating', actions: 'succeed' },
          on: { DEADLINE: { target: '#session.terminating', actions: 'timeOut' } },
        },
        // Participant: tells the leader (retried until acknowledged); the answer may be the verdict.
        reporting: {
          invoke: {
            id: 'reportToLeader',
            src: 'reportToLeader',
            input: ({ context }) => reportInput(context, false),
            onDone: [{ guard: 'answeredVerdict', target: '#session.ending', actions: 'adoptVerdict' }, { target: 'awaitingVerdict' }],
            onError: { target: 'awaitingVerdict' },
          },
          on: { DEADLINE: { target: 'askingLeader' } },
        },
        // Participant: reported; the leader announces its verdict when it decides.
        awaitingVerdict: {
          on: { DEADLINE: { target: 'askingLeader' } },
        },
        // Participant, past its deadline: asks the leader (with backoff) instead of deciding timeout
        // alone, which it does when the grace is over (GRACE_OVER), and only then. Entered once
        // the deadline has come (or a send ran out of time at it), so a change of mind (CANCEL,
        // FAIL) asks again from here with the new proposal: reporting would wait for a DEADLINE
        // that has already come.
        askingLeader: {
          invoke: [
            {
              id: 'grace',
              src: 'deadlineTimer',
              input: ({ context }) => ({ deadlineAt: context.deadlineAt + context.verdictGraceMs, says: 'GRACE_OVER' as const }),
            },
            {
              id: 'askLeader',
              src: 'reportToLeader',
              input: ({ context }) => reportInput(context, true),
              onDone: { guard: 'answeredVerdict', target: '#session.ending', actions: 'adoptVerdict' },
              // gave up early (the leader refused, say): the grace timer still ends the wait
            },
          ],
          on: {
            GRACE_OVER: { target: '#session.ending', actions: 'timeOutAlone' },
            CANCEL: { target: 'askingLeader', reenter: true, actions: 'proposeCancel' },
            FAIL: { target: 'askingLeader', reenter: true, actions: 'proposeFailure' },
          },
        },
      },
    },
    // Participant: it has its outcome (the leader's verdict, or it timed out alone); it has
    // nothing to release, so it ends at once in the final state the outcome calls for.
    ending: {
      always: [{ guard: 'outcomeSuccess', target: 'completed' }, { guard: 'outcomeCancelled', target: 'cancelled' }, { target: 'failed' }],
    },
    // Leader: its verdict goes to disk, then to the participants (release), before it ends.
    terminating: {
      entry: 'release',
      on: {
        RELEASED: [{ guard: 'outcomeSuccess', target: 'completed' }, { guard: 'outcomeCancelled', target: 'cancelled' }, { target: 'failed' }],
      },
    },
    completed: { type: 'final' },
    failed: { type: 'final' },
    cancelled: { type: 'final' },
  },
  output: ({ context }) => ({ sessionId: context.sessionId, outcome: context.outcome! }),
})
