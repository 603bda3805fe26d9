// Session management over the session machine: create, invite, join, run a choreography, end.
//
// Each participant runs its own session actor (the machine projects the choreography onto its
// role). Peers exchange these messages on `/aura/session/1.0.0`:
//   invite {input}             creator → others: the roster, deadline and limits (the invitee
//                              moves the deadline onto its own clock by the envelope's budget)
//                              (with autoJoin, the invite's reply is the invitee's join to the leader)
//   join   {sessionId, role}   joiner → everyone else (a request: retried until the peer knows the session)
//   step   {sessionId, protocol, step, payload, reportsDone?}   a choreography message (request,
//                              acked once the receiver has it on disk; retried; duplicates are
//                              dropped). A participant's last step to the leader carries its done
//                              report (`reportsDone`), and the leader's ack is then a report's reply
//   report {sessionId, kind, reason?}             participant → leader: its projection is done,
//                              or it calls for failure, cancellation, or is past its deadline
//                              (a request; the reply carries the verdict once decided)
//   verdict {sessionId, kind, reason?}            leader → participants: the outcome's kind, sent
//                              once it is on disk, retried until acknowledged or the grace is over
//
// The leader (the creator) decides the outcome and every participant adopts it: see
// machines/session.ts. A leader keeps a decided verdict answerable until the deadline plus the
// verdict grace, even past the session's retention or endSession (a small record of its own).
//
// The actor's persisted snapshot is written to storage at every transition; a restarted peer
// restores its sessions, deadlines included (the deadline is an absolute time in context and its
// timer an invoked actor, which XState restarts on restore).

import { Subject, type Observable } from 'rxjs'
import { createActor, fromPromise, type Actor, type SnapshotFrom } from 'xstate'
import {
  InvalidInput,
  InvalidTransition,
  LimitExceeded,
  PermissionDenied,
  UnknownProtocol,
  UnknownRole,
  UnknownSession,
  isAuraError,
  parseInput,
} from '../../effects/errors.js'
import type { Clock } from '../../effects/time/index.js'
import type { Random } from '../../effects/random/index.js'
import type { Crypto } from '../../effects/crypto/index.js'
import type { Namespace, Storage } from '../../effects/storage/index.js'
import {
  sessionMachine,
  sessionInputSchema,
  releaseInput,
  sendStepInput,
  type ReleaseInput,
  type ReportInput,
  type SendStepInput,
  type SessionEvent,
  type SessionInput,
  type SessionOutcome,
  type SessionTimerEvent,
  type Verdict,
} from '../../machines/session.js'
import type { Choreography, StepContext } from './choreography.js'
import { decodeSessionRecord, encodeSessionRecord, persistedSnapshotOf, type SessionRecord } from './session-record.js'
import {
  createOptionsSchema,
  invitePayloadSchema,
  inviteReplySchema,
  joinPayloadSchema,
  reportPayloadSchema,
  reportReplySchema,
  rosterSizeSchema,
  stepPayloadSchema,
  verdictPayloadSchema,
} from './session-wire.js'
import { isCreateOptions, isInvitePayload, isInviteReply, isReportReply, isSessionInput, isStepPayload } from './session-wire-fast.js'
import { deadlineTimerActor } from '../core/effect-actors.js'
import type { EventBus } from '../core/events.js'
import type { InboundMessage, Router } from '../core/router.js'
import { withRetry, isTransient, type RetryPolicy } from '../timeouts/with-retry.js'
import { currentSignal, enclosingDeadline, withEnclosingSignal } from '../timeouts/timeout-context.js'
import { z } from 'zod'

export interface SessionParticipant {
  peerId: string
  role: string
}

export interface CreateSessionConfig {
  /** time the whole session may take; default from runtime config, scaled by the timeout profile */
  timeoutMs?: number
  /** choreography the invitees should run (its name travels in the invite) */
  protocol?: string
}

export type SessionStatus = 'created' | 'active' | 'agreeing' | 'terminating' | 'completed' | 'failed' | 'cancelled'

export interface SessionResult {
  sessionId: string
  status: 'completed' | 'failed' | 'cancelled'
  outcome: SessionOutcome
}

export interface SessionView {
  sessionId: string
  sessionType: string
  status: SessionStatus
  role: string
  participants: SessionParticipant[]
  joined: string[]
  deadlineAt: number
  cursor: number
  step?: string
  outcome: SessionOutcome | null
}

export interface Invitation {
  sessionId: string
  sessionType: string
  from: string
  role: string
  protocol?: string
  participants: SessionParticipant[]
  deadlineAt: number
}

type SessionActor = Actor<typeof sessionMachine>
interface StepInFlight {
  input: SendStepInput
  controller: AbortController
}
type SessionSnapshot = SnapshotFrom<typeof sessionMachine>

const SESSIONS_NAMESPACE = 'aura.sessions'
/** verdicts of sessions this peer led and already forgot, kept until participants stop asking */
const VERDICTS_NAMESPACE = 'aura.sessions.verdicts'

interface StoredVerdict {
  verdict: Verdict
  /** this peer's clock: past it no participant asks any more (deadline plus verdict grace) */
  keepUntil: number
}

/** The leader's outcome as the verdict it announces: the kind, and a reason where there is one. */
function verdictOf(outcome: SessionOutcome): Verdict {
  return outcome.kind === 'failure' || outcome.kind === 'cancelled' ? { kind: outcome.kind, reason: outcome.reason.slice(0, 1024) } : { kind: outcome.kind }
}

/**
 * How long one session request (invite, step, report, verdict) waits for its answer. A lost frame is only noticed by
 * this timeout, and past the deadline every such wait delays the verdict; a round trip on a link
 * that works takes far less.
 */
const AGREEMENT_ATTEMPT_MS = 1_000

/** Retries of a session message until acknowledged; one object, so withRetry validates it once. */
const DELIVERY_POLICY: RetryPolicy = { maxAttempts: 1_000, initialDelayMs: 25, maxDelayMs: 1_000, multiplier: 2, jitter: 'equal' }
/** Retries of a verdict announcement and of a report, bounded by the deadline or grace, not by attempts. */
const AGREEMENT_POLICY: RetryPolicy = { maxAttempts: 100_000, initialDelayMs: 25, maxDelayMs: 1_000, multiplier: 2, jitter: 'equal' }
/** Longest a report waits for this peer's own answered step to settle (see ownStepSettled). */
const STEP_SETTLE_MS = 20
/** Longest a transition that no acknowledgement waits on stays off disk (see persistSoon). */
const CHECKPOINT_MS = 20

/** Asked for a verdict the leader has not decided yet: ask again later. */
class VerdictPending extends Error {}

/** A step payload's size as it is carried (JSON), against a limit in bytes. */
function checkMessageSize(label: string, payload: unknown, maxBytes: number): void {
  const size = Buffer.byteLength(JSON.stringify(payload) ?? '')
  if (size > maxBytes) throw new LimitExceeded(`step ${label} payload is ${size} bytes, over ${maxBytes}`, { step: label, bytes: size, max: maxBytes })
}

export interface SessionManagerDeps {
  router: Router
  storage: Storage
  clock: Clock
  random: Random
  crypto: Crypto
  bus: EventBus
  limits: { maxParticipants: number; maxConcurrentSessions: number; maxMessageBytes: number }
  defaultTimeoutMs: number
  timeoutFactor: number
  /** how long past its deadline a participant asks an unreachable leader for the verdict (unscaled) */
  verdictGraceMs: number
  autoJoin: boolean
  /** a finished session is forgotten (memory and storage) this long after it finished */
  retainFinishedMs: number
  inspect?: (event: unknown) => void
}

export class Session {
  constructor(
    private readonly manager: SessionManager,
    readonly id: string,
  ) {}

  /** Runs a choreography (or the one named in the invite) to completion. */
  executeProtocol(protocol?: Choreography | string, options: { signal?: AbortSignal } = {}): Promise<SessionResult> {
    return this.manager.executeProtocol(this.id, protocol, options)
  }

  /** Resolves when the session reaches a final state. */
  result(): Promise<SessionResult> {
    return this.manager.result(this.id)
  }

  state(): SessionView {
    return this.manager.view(this.id)
  }

  cancel(reason = 'cancelled by application'): void {
    this.manager.cancel(this.id, reason)
  }
}

export class SessionManager {
  private readonly actors = new Map<string, SessionActor>()
  private readonly protocols = new Map<string, Choreography>()
  /** verdict announcements in flight (the leader's), stopped with the manager */
  private readonly announcements = new Set<AbortController>()
  /** choreography named by the invite, kept with the snapshot so a restarted peer can execute it */
  private readonly inviteProtocols = new Map<string, string>()
  private readonly writes = new Set<Promise<void>>()
  /** per session: the write not taken yet (it will read the snapshot as it is then) */
  private readonly scheduledWrites = new Map<string, Promise<void>>()
  /** per session: the write being committed */
  private readonly writesInFlight = new Map<string, Promise<void>>()
  /** sessions with transitions not on disk yet, and the one timer that writes them (see persistSoon) */
  private readonly unsaved = new Set<string>()
  private checkpointTimer: unknown
  /** per session: the step `sendStep` is delivering, until the machine takes its answer or abandons it */
  private readonly stepsInFlight = new Map<string, StepInFlight>()
  /** per session: opens once the steps received so far are on disk and acknowledged (a send waits for it) */
  private readonly receipts = new Map<string, Promise<void>>()
  /** sessions whose outcome is on disk (a write holding it landed): releasing need not write it again */
  private readonly durableOutcomes = new Set<string>()
  /** leader, per session: participants whose report was answered with the verdict */
  private readonly answeredVerdict = new Map<string, Set<string>>()
  /** finished sessions: when they finished, and the clock timer that will forget them */
  private readonly retention = new Map<string, { finishedAt: number; timer: unknown }>()
  private stopped = false
  private readonly invitationsSubject = new Subject<Invitation>()
  readonly invitations$: Observable<Invitation> = this.invitationsSubject.asObservable()
  private readonly store: Namespace
  private readonly verdicts: Namespace
  private readonly self: string
  private machine: typeof sessionMachine | undefined

  constructor(private readonly deps: SessionManagerDeps) {
    this.store = deps.storage.namespace(SESSIONS_NAMESPACE)
    this.verdicts = deps.storage.namespace(VERDICTS_NAMESPACE)
    this.self = deps.crypto.peerId
  }

  async start(protocols: Choreography[]): Promise<void> {
    for (const protocol of protocols) this.registerProtocol(protocol)
    await this.deps.router.register('session', {
      invite: (m) => this.onInvite(m),
      join: (m) => this.onJoin(m),
      step: (m) => this.onStep(m),
      report: (m) => this.onReport(m),
      verdict: (m) => this.onVerdict(m),
    })
    this.resume()
  }

  registerProtocol(protocol: Choreography): void {
    if (!protocol || typeof protocol.name !== 'string' || !Array.isArray(protocol.steps)) throw new InvalidInput('not a choreography (use defineChoreography)')
    this.protocols.set(protocol.name, protocol)
  }

  /**
   * Creates a session with this peer as a participant, and invites the others. Inside a
   * `withTimeout` (or coordinated timeout) the session's deadline is never past the operation's,
   * and the operation's end cancels it (see timeout-context.ts).
   */
  async createSession(sessionType: string, participants: SessionParticipant[], config: CreateSessionConfig = {}): Promise<Session> {
    const options = parseInput(createOptionsSchema, config, 'session config', isCreateOptions)
    if (options.protocol !== undefined && !this.protocols.has(options.protocol)) throw new UnknownProtocol(`no choreography named ${options.protocol}`)
    this.ensureCapacity()
    const now = this.deps.clock.now()
    const timeoutMs = (options.timeoutMs ?? this.deps.defaultTimeoutMs) * this.deps.timeoutFactor
    const input = this.validateInput({
      sessionId: this.deps.random.id(16),
      sessionType,
      selfPeerId: this.self,
      participants,
      leaderPeerId: this.self,
      createdAt: now,
      deadlineAt: enclosingDeadline(now + timeoutMs),
      verdictGraceMs: this.verdictGraceMs(),
      limits: { maxParticipants: this.deps.limits.maxParticipants, maxMessageBytes: this.deps.limits.maxMessageBytes },
    })
    const actor = this.spawn(input, undefined, options.protocol)
    // Nothing is acknowledged yet, so the new session goes to disk with the checkpoint (spawn
    // asked for it), or sooner with the first write an answer waits on: a session that runs
    // shorter than the checkpoint interval is written once before its end, not also here. A crash
    // inside that interval loses a session nobody was answered about: its invitees, asking for a
    // verdict this peer cannot give, time out, as they would with this peer gone.
    this.cancelWhileRunning(actor, currentSignal())
    const others = input.participants.filter((p) => p.peerId !== this.self)
    try {
      await Promise.all(
        others.map(async (p) => {
          const answer = await this.deliver(
            p.peerId,
            {
              kind: 'invite',
              session: input.sessionId,
              payload: { input: { ...input, selfPeerId: p.peerId }, ...(options.protocol ? { protocol: options.protocol } : {}) },
            },
            input.deadlineAt,
          )
          // an invitee that joined says so in its answer: that is its join to us
          const joined = parseInput(inviteReplySchema, answer, 'invite reply', isInviteReply)?.joined
          const join: SessionEvent = { type: 'JOIN', peerId: p.peerId, role: joined ?? '' }
          if (joined !== undefined) this.offer(actor, join)
        }),
      )
    } catch (error) {
      // A peer refused (or never got) its invite: the session cannot run, so it ends here now
      // (telling the peers that did accept) instead of holding a slot until its deadline.
      const cancel: SessionEvent = { type: 'CANCEL', reason: `invite failed: ${error instanceof Error ? error.message : String(error)}` }
      if (actor.getSnapshot().can(cancel)) actor.send(cancel)
      throw error
    }
    return new Session(this, input.sessionId)
  }

  /** Joins a session we were invited to, in the role the roster gives us. */
  async joinSession(sessionId: string, role: string): Promise<Session> {
    parseInput(joinPayloadSchema, { sessionId, role }, 'join')
    this.sendTo(this.actor(sessionId), { type: 'JOIN', peerId: this.self, role })
    await this.tellJoined(sessionId, role)
    return new Session(this, sessionId)
  }

  /** Tells every other participant (but `except`, who knows already) that we joined. */
  private async tellJoined(sessionId: string, role: string, except?: string): Promise<void> {
    const { context } = this.actor(sessionId).getSnapshot()
    const others = context.participants.filter((p) => p.peerId !== this.self && p.peerId !== except)
    if (others.length === 0) return
    await Promise.all(others.map((p) => this.deliver(p.peerId, { kind: 'join', session: sessionId, payload: { sessionId, role } }, context.deadlineAt)))
  }

  get(sessionId: string): Session | undefined {
    return this.actors.has(sessionId) ? new Session(this, sessionId) : undefined
  }

  list(): SessionView[] {
    return [...this.actors.keys()].map((id) => this.view(id))
  }

  /**
   * Runs the choreography to the end. An abort of `options.signal` (e.g. the signal a coordinated
   * timeout gives its operation), or the end of the operation this is called inside, cancels the
   * session here and, through `end`, on every peer.
   */
  async executeProtocol(sessionId: string, protocol?: Choreography | string, options: { signal?: AbortSignal } = {}): Promise<SessionResult> {
    const actor = this.actor(sessionId)
    const choreography = this.resolveProtocol(actor, protocol)
    const roles = new Set(actor.getSnapshot().context.participants.map((p) => p.role))
    if (roles.size !== choreography.roles.length || !choreography.roles.every((r) => roles.has(r))) {
      throw new InvalidInput(`choreography ${choreography.name} roles do not match the session roster`, { roles: [...roles], expected: choreography.roles })
    }
    this.protocols.set(choreography.name, choreography)
    this.sendTo(actor, { type: 'EXECUTE', protocol: choreography.wire })
    this.cancelWhileRunning(actor, withEnclosingSignal(options.signal))
    return this.result(sessionId)
  }

  /** Cancels the session when `signal` aborts, until the session ends. */
  private cancelWhileRunning(actor: SessionActor, signal: AbortSignal | undefined): void {
    if (!signal) return
    const onAbort = () => {
      const cancel: SessionEvent = { type: 'CANCEL', reason: String(signal.reason ?? 'aborted') }
      if (actor.getSnapshot().can(cancel)) actor.send(cancel)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    if (signal.aborted) onAbort()
    else void this.result(actor.getSnapshot().context.sessionId).finally(() => signal.removeEventListener('abort', onAbort))
  }

  result(sessionId: string): Promise<SessionResult> {
    const actor = this.actor(sessionId)
    return new Promise((resolve) => {
      const check = (snapshot: SessionSnapshot) => {
        if (snapshot.status !== 'done') return false
        resolve(this.resultOf(snapshot))
        return true
      }
      if (check(actor.getSnapshot())) return
      const subscription = actor.subscribe({
        next: (snapshot) => {
          if (check(snapshot)) subscription.unsubscribe()
        },
        error: () => undefined,
      })
    })
  }

  view(sessionId: string): SessionView {
    const snapshot = this.actor(sessionId).getSnapshot()
    const { context } = snapshot
    return {
      sessionId,
      sessionType: context.sessionType,
      status: statusOf(snapshot),
      role: roleOf(context.participants, this.self),
      participants: context.participants.map(({ peerId, role }) => ({ peerId, role })),
      joined: [...context.joined],
      deadlineAt: context.deadlineAt,
      cursor: context.cursor,
      ...(context.protocol?.steps[context.cursor] ? { step: context.protocol.steps[context.cursor]!.label } : {}),
      outcome: context.outcome,
    }
  }

  cancel(sessionId: string, reason: string): void {
    this.sendTo(this.actor(sessionId), { type: 'CANCEL', reason })
  }

  /** Cancels the session if it is still running, then forgets it (stored record included). */
  async endSession(sessionId: string): Promise<SessionResult> {
    const actor = this.actor(sessionId)
    if (actor.getSnapshot().status !== 'done') this.cancel(sessionId, 'ended by application')
    const result = await this.result(sessionId)
    await this.forget(sessionId)
    return result
  }

  /** Drops a session from memory and storage. */
  private async forget(sessionId: string): Promise<void> {
    const actor = this.actors.get(sessionId)
    if (!actor) return
    this.abandonStep(sessionId)
    actor.stop()
    this.actors.delete(sessionId)
    this.inviteProtocols.delete(sessionId)
    this.answeredVerdict.delete(sessionId)
    this.durableOutcomes.delete(sessionId)
    this.receipts.delete(sessionId)
    this.unsaved.delete(sessionId)
    await this.keepVerdict(actor.getSnapshot().context)
    const retained = this.retention.get(sessionId)
    if (retained) this.deps.clock.clearTimeout(retained.timer)
    this.retention.delete(sessionId)
    await this.store.delete(sessionId)
  }

  /** Forgets a finished session `retainFinishedMs` after it finished (on the clock effect). */
  private retain(sessionId: string, finishedAt: number): void {
    if (this.retention.has(sessionId) || this.stopped) return
    const delay = Math.max(0, finishedAt + this.deps.retainFinishedMs - this.deps.clock.now())
    const timer = this.deps.clock.setTimeout(() => {
      this.forget(sessionId).catch((error) => this.report(error, 'session/retention'))
    }, delay)
    this.retention.set(sessionId, { finishedAt, timer })
  }

  /** Stops every actor and waits for snapshot writes in flight (storage closes after this). */
  async stop(): Promise<void> {
    // transitions still waiting for their checkpoint are written now, before the actors stop
    if (this.checkpointTimer !== undefined) this.deps.clock.clearTimeout(this.checkpointTimer)
    for (const sessionId of this.unsaved) this.writes.add(this.write(sessionId))
    this.unsaved.clear()
    this.stopped = true
    for (const { timer } of this.retention.values()) this.deps.clock.clearTimeout(timer)
    this.retention.clear()
    for (const announcement of this.announcements) announcement.abort()
    this.announcements.clear()
    // a stopped actor runs no exit actions: its deliveries stop here
    for (const sessionId of [...this.stepsInFlight.keys()]) this.abandonStep(sessionId)
    for (const actor of this.actors.values()) actor.stop()
    this.actors.clear()
    this.invitationsSubject.complete()
    await Promise.allSettled([...this.writes])
  }

  // ---- inbound ----------------------------------------------------------------------------

  private async onInvite(inbound: InboundMessage): Promise<z.infer<typeof inviteReplySchema>> {
    const { envelope, from, deadlineAt } = inbound
    const { input: raw, protocol } = parseInput(invitePayloadSchema, envelope.payload, 'invite', isInvitePayload)
    // The grace is this peer's own patience with the leader, not the inviter's.
    const input = { ...onLocalClock(this.validateInput(raw), deadlineAt), verdictGraceMs: this.verdictGraceMs() }
    if (input.selfPeerId !== this.self) throw new PermissionDenied('invite addressed to another peer')
    if (!input.participants.some((p) => p.peerId === from)) throw new PermissionDenied('inviter is not a participant of the session', { from })
    if (input.leaderPeerId !== from) throw new PermissionDenied('only the leader invites to its session', { from, leader: input.leaderPeerId })
    const role = roleOf(input.participants, this.self)
    const existing = this.actors.get(input.sessionId)
    if (existing) {
      // a retried invite (our answer was lost, say): answered as the first time
      await this.persist(input.sessionId)
      return this.deps.autoJoin && existing.getSnapshot().context.joined.includes(this.self) ? { joined: role } : undefined
    }
    this.ensureCapacity()
    // The inviter is the leader, whom the machine counts joined from its start (the invite is its join).
    this.spawn(input, undefined, protocol)
    // With autoJoin we join now, before the invite is on disk: the answer is our join to the
    // leader (one round trip less), and the other participants hear it from us below. The
    // machine counts this peer joined from its start, so it needs no JOIN of our own.
    await this.persist(input.sessionId)
    const invitation: Invitation = {
      sessionId: input.sessionId,
      sessionType: input.sessionType,
      from,
      role,
      participants: input.participants,
      deadlineAt: input.deadlineAt,
      ...(protocol ? { protocol } : {}),
    }
    // Subscribers hear of it once our answer is on its way: what they do (executeProtocol, say)
    // then does not hold up the leader, which buffers nothing it needs from us before the answer.
    inbound.afterAnswer = () => {
      if (this.deps.autoJoin) void this.tellJoined(input.sessionId, role, from).catch((error) => this.report(error, 'session/auto-join'))
      this.invitationsSubject.next(invitation)
    }
    return this.deps.autoJoin ? { joined: role } : undefined
  }

  private async onJoin({ envelope, from }: InboundMessage): Promise<void> {
    const { sessionId, role } = parseInput(joinPayloadSchema, envelope.payload, 'join')
    const actor = this.actor(sessionId)
    const member = actor.getSnapshot().context.participants.find((p) => p.peerId === from)
    if (!member) throw new PermissionDenied('peer is not a participant of the session', { sessionId, from })
    if (member.role !== role) throw new UnknownRole(`role ${role} is not the role of ${from} in this session`, { sessionId, role })
    this.offer(actor, { type: 'JOIN', peerId: from, role })
    await this.persist(sessionId)
  }

  private async onStep(inbound: InboundMessage): Promise<z.infer<typeof reportReplySchema> | undefined> {
    const { envelope, from } = inbound
    const message = parseInput(stepPayloadSchema, envelope.payload, 'step', isStepPayload)
    const actor = this.actor(message.sessionId)
    const { context } = actor.getSnapshot()
    const choreography = this.protocols.get(message.protocol)
    if (!choreography) throw new UnknownProtocol(`no choreography named ${message.protocol}`)
    const step = choreography.steps[message.step]
    if (!step) throw new InvalidInput(`step ${message.step} is out of range`, { step: message.step })
    const sender = context.participants.find((p) => p.peerId === from)
    if (!sender) throw new PermissionDenied('peer is not a participant of the session', { from })
    if (sender.role !== step.from)
      throw new UnknownRole(`step ${step.label} is sent by ${step.from}, not ${sender.role}`, { step: step.label, role: sender.role })
    if (!step.to.includes(roleOf(context.participants, this.self))) throw new UnknownRole(`step ${step.label} is not addressed to this peer's role`)
    const payload = step.payload.safeParse(message.payload)
    if (!payload.success) throw new InvalidInput(`payload of step ${step.label} failed its schema`, { issues: payload.error.issues })
    // the session's limit as agreed in the invite, and never more than this peer's own
    checkMessageSize(step.label, payload.data, Math.min(context.limits.maxMessageBytes, this.deps.limits.maxMessageBytes))
    if (message.reportsDone && context.leaderPeerId !== this.self)
      throw new PermissionDenied('this peer does not lead the session', { sessionId: message.sessionId })
    // The reply is the sender's acknowledgement: give it only once the step is on disk, so a
    // crash after the ack cannot lose a message the sender will never resend. A step this one
    // triggers (its send starts inside actor.send, so the gate is set first) leaves after the ack:
    // the sender then has its step acknowledged before it sees our answer to it, and decides on
    // both in one turn (a leader's verdict then rides on its ack of our report).
    const { sessionId } = message
    let open: () => void = () => undefined
    const gate = new Promise<void>((resolve) => (open = resolve))
    this.receipts.set(sessionId, gate)
    inbound.afterAnswer = () => {
      if (this.receipts.get(sessionId) === gate) this.receipts.delete(sessionId)
      open()
    }
    const event: SessionEvent = { type: 'RECEIVE', step: message.step, from, payload: payload.data }
    // A retried step we already have is acknowledged again, not an error.
    this.offer(actor, event)
    if (!message.reportsDone) {
      await this.persist(sessionId)
      return undefined
    }
    // The report may decide the session as soon as our own step to this peer is settled; the peer
    // acknowledged that step before it sent this one (a triggered step leaves after its ack), so
    // its answer is already here. Letting it settle first puts the outcome in the same write.
    await this.ownStepSettled(actor, from)
    this.hearReport(actor, { type: 'REPORT', from, kind: 'done' })
    return this.durableVerdictReply(actor, from)
  }

  /**
   * Resolves once the step this peer is sending only to `peer` (if any) has settled in the
   * machine, or after STEP_SETTLE_MS on the clock: an answer lost with its stream would leave
   * the step to its retries, and the report is then recorded without waiting for them.
   */
  private ownStepSettled(actor: SessionActor, peer: string): Promise<void> {
    const { sessionId } = actor.getSnapshot().context
    const flight = this.stepsInFlight.get(sessionId)
    if (!flight || flight.input.toPeerIds.some((p) => p !== peer)) return Promise.resolve()
    return new Promise<void>((resolve) => {
      let timer: unknown
      const done = () => {
        this.deps.clock.clearTimeout(timer)
        subscription.unsubscribe()
        resolve()
      }
      const subscription = actor.subscribe({ next: () => this.stepsInFlight.get(sessionId) !== flight && done(), error: done, complete: done })
      timer = this.deps.clock.setTimeout(done, STEP_SETTLE_MS)
    })
  }

  /** Leader: a report's answer once it is on disk, with the verdict (on disk too) if decided. */
  private async durableVerdictReply(actor: SessionActor, peer: string): Promise<z.infer<typeof reportReplySchema>> {
    const { sessionId } = actor.getSnapshot().context
    await this.persist(sessionId)
    // decided while that write was in flight: a verdict is answered only once a restart keeps it
    if (actor.getSnapshot().context.outcome && !this.durableOutcomes.has(sessionId)) await this.persist(sessionId)
    return this.verdictReply(actor, peer)
  }

  /**
   * Leader: records a participant's report. If that decides the session, the report's answer
   * will carry the verdict: the announcement, which may start before the answer goes, skips that peer.
   */
  private hearReport(actor: SessionActor, report: Extract<SessionEvent, { type: 'REPORT' }>): void {
    this.offer(actor, report)
    if (actor.getSnapshot().context.outcome) this.markAnswered(actor, report.from)
  }

  /**
   * Leader: a report's answer, the verdict once decided. A peer answered the verdict needs no
   * announcement (should the answer be lost, its retried report is answered the same way).
   */
  private verdictReply(actor: SessionActor, peer: string): z.infer<typeof reportReplySchema> {
    const outcome = actor.getSnapshot().context.outcome
    if (!outcome) return { verdict: null }
    this.markAnswered(actor, peer)
    return { verdict: verdictOf(outcome) }
  }

  private markAnswered(actor: SessionActor, peer: string): void {
    const { sessionId } = actor.getSnapshot().context
    let peers = this.answeredVerdict.get(sessionId)
    if (!peers) this.answeredVerdict.set(sessionId, (peers = new Set()))
    peers.add(peer)
  }

  /**
   * Leader: a participant reports. Recorded (on disk) before the reply, which carries the verdict
   * once decided, so a participant asking after its deadline gets it here.
   */
  private async onReport({ envelope, from }: InboundMessage): Promise<z.infer<typeof reportReplySchema>> {
    const { sessionId, ...proposal } = parseInput(reportPayloadSchema, envelope.payload, 'report')
    const actor = this.actors.get(sessionId)
    if (!actor) {
      const kept = this.keptVerdict(sessionId)
      if (kept) return { verdict: kept }
      throw new UnknownSession(`unknown session ${sessionId}`, { sessionId })
    }
    const { context } = actor.getSnapshot()
    if (context.leaderPeerId !== this.self) throw new PermissionDenied('this peer does not lead the session', { sessionId })
    if (!context.participants.some((p) => p.peerId === from)) throw new PermissionDenied('peer is not a participant of the session', { from })
    this.hearReport(actor, { type: 'REPORT', from, ...proposal })
    return this.durableVerdictReply(actor, from)
  }

  /** Participant: the leader's verdict. Adopted (and on disk) before it is acknowledged. */
  private async onVerdict({ envelope, from }: InboundMessage): Promise<void> {
    const { sessionId, ...verdict } = parseInput(verdictPayloadSchema, envelope.payload, 'verdict')
    const actor = this.actor(sessionId)
    const { context } = actor.getSnapshot()
    if (context.leaderPeerId !== from || from === this.self) throw new PermissionDenied('only the leader gives the verdict', { from })
    this.offer(actor, { type: 'VERDICT', ...verdict })
    await this.persist(sessionId)
  }

  // ---- actors -----------------------------------------------------------------------------

  /**
   * The session machine with this manager's effects, made once: every actor's input names its
   * session. (A machine made per session rebuilt and re-indexed every state node each time.)
   */
  private sessionMachineWithEffects(): typeof sessionMachine {
    return noteEvents(
      sessionMachine.provide({
        actors: {
          deadlineTimer: deadlineTimerActor<SessionTimerEvent>(this.deps.clock),
          reportToLeader: fromPromise(async ({ input: reportInput, signal }) => this.reportToLeader(reportInput, signal)),
        },
        actions: {
          sendStep: ({ context }) => this.startStep(sendStepInput(context)),
          abandonStep: ({ context }) => this.abandonStep(context.sessionId),
          release: ({ context }) => this.startRelease(releaseInput(context)),
        },
      }),
    )
  }

  private spawn(input: SessionInput | undefined, snapshot: unknown, protocol?: string): SessionActor {
    const machine = (this.machine ??= this.sessionMachineWithEffects())
    const restored = snapshot as SessionSnapshot | undefined
    // On restore XState takes the context from the snapshot; the input is only there for its type.
    const sessionId = restored ? restored.context.sessionId : input!.sessionId
    const actor: SessionActor = createActor(machine, {
      input: input ?? inputOf(restored!.context),
      ...(restored ? { snapshot: restored } : {}),
      clock: this.deps.clock,
      ...(this.deps.inspect ? { inspect: this.deps.inspect } : {}),
    })
    this.actors.set(sessionId, actor)
    if (protocol) this.inviteProtocols.set(sessionId, protocol)
    // Transitions go on the event stream with the event that caused them.
    let previous: unknown
    actor.subscribe({
      next: (state) => {
        if (!sameStateValue(state.value, previous)) {
          previous = state.value
          this.deps.bus.emit({ type: 'transition', actorId: sessionId, machine: 'session', state: state.value, event: lastEventOf.get(actor) ?? 'xstate.init' })
        }
        if (state.status === 'done' && !this.retention.has(sessionId)) {
          this.retain(sessionId, this.deps.clock.now())
          this.deps.bus.emit({ type: 'latency', name: 'session.duration', ms: this.deps.clock.now() - state.context.createdAt })
        }
        this.persistSoon(sessionId)
      },
      error: (error) => this.report(error, 'session/actor'),
    })
    actor.start()
    if (restored) this.resumeEffects(actor)
    this.persistSoon(sessionId)
    return actor
  }

  /**
   * A restored session in `sending` or `terminating` starts that state's effect again: entry
   * actions do not run on restore (a step is resent, and its receiver drops the duplicate).
   */
  private resumeEffects(actor: SessionActor): void {
    const snapshot = actor.getSnapshot()
    if (snapshot.status !== 'active') return
    if (snapshot.matches({ active: { running: 'sending' } })) this.startStep(sendStepInput(snapshot.context))
    else if (snapshot.matches('terminating')) this.startRelease(releaseInput(snapshot.context))
  }

  /** `sendStep`: delivers the step, then answers the machine with STEP_SENT or STEP_FAILED. */
  private startStep(input: SendStepInput): void {
    const flight: StepInFlight = { input, controller: new AbortController() }
    this.stepsInFlight.set(input.sessionId, flight)
    const answer = (event: SessionEvent) => {
      // abandoned (the machine left `sending` meanwhile): nobody waits for this answer
      if (this.stepsInFlight.get(input.sessionId) !== flight) return
      this.stepsInFlight.delete(input.sessionId)
      const actor = this.actors.get(input.sessionId)
      if (actor) this.offer(actor, event)
    }
    this.sendStep(input, flight.controller.signal).then(
      (verdict) => answer({ type: 'STEP_SENT', step: input.stepIndex, verdict }),
      (error: unknown) => answer({ type: 'STEP_FAILED', step: input.stepIndex, error }),
    )
  }

  /** `abandonStep`: the machine left `sending`; a delivery still going stops. */
  private abandonStep(sessionId: string): void {
    const flight = this.stepsInFlight.get(sessionId)
    if (!flight) return
    this.stepsInFlight.delete(sessionId)
    flight.controller.abort()
  }

  /** `release`: the leader's release, then RELEASED (after a failure too: the outcome stands). */
  private startRelease(input: ReleaseInput): void {
    const released = () => {
      const actor = this.actors.get(input.sessionId)
      if (actor?.getSnapshot().matches('terminating')) actor.send({ type: 'RELEASED' })
    }
    // after the transition that entered `terminating`, which this action runs inside of
    void Promise.resolve()
      .then(() => this.release(input.sessionId, input.outcome, input.announce))
      .then(released, released)
  }

  /**
   * A transition nobody waits on (no answer to a peer depends on it) is written within
   * CHECKPOINT_MS, with every other session's such transitions (one commit), or sooner by a write
   * someone awaits, which takes the latest snapshot. Writing each one at once would put commits
   * in flight ahead of the writes that acknowledgements wait for. A crash loses at most the last
   * CHECKPOINT_MS of such transitions, and each is redone from the older snapshot (a step is
   * resent and the receiver drops the duplicate; a verdict is asked for again).
   */
  private persistSoon(sessionId: string): void {
    if (this.stopped) return
    this.unsaved.add(sessionId)
    this.checkpointTimer ??= this.deps.clock.setTimeout(() => {
      this.checkpointTimer = undefined
      const due = [...this.unsaved]
      this.unsaved.clear()
      for (const id of due) void this.persist(id)
    }, CHECKPOINT_MS)
  }

  /**
   * Writes the actor's current snapshot; resolves once it is durable. A session has at most one
   * write in flight and one waiting: the waiting one is taken when the one in flight has landed
   * (or at the end of the current microtask queue) and reads the latest snapshot then, so every
   * change made meanwhile, by any number of transitions, shares it. Without a write in flight
   * this costs no latency; with one, a second write could not commit before it anyway.
   */
  private persist(sessionId: string): Promise<void> {
    if (this.stopped) return Promise.resolve()
    // Only this session goes: other sessions' transitions waiting for their checkpoint keep
    // waiting for it. Taken along, they made every awaited commit larger and had it wait for
    // their encoding before it could start, which cost a 2-party session ~6% of its p50 (an
    // in-process A/B); a checkpoint commit that an awaited write queues behind is rarer.
    const waiting = this.scheduledWrites.get(sessionId)
    if (waiting) return waiting
    const write: Promise<void> = (this.writesInFlight.get(sessionId) ?? Promise.resolve())
      .then(() => {
        this.scheduledWrites.delete(sessionId)
        this.writesInFlight.set(sessionId, write)
        // this write holds every transition so far: the checkpoint need not repeat it
        this.unsaved.delete(sessionId)
        return this.write(sessionId)
      })
      .finally(() => {
        this.writes.delete(write)
        if (this.writesInFlight.get(sessionId) === write) this.writesInFlight.delete(sessionId)
      })
    this.scheduledWrites.set(sessionId, write)
    this.writes.add(write)
    return write
  }

  private async write(sessionId: string): Promise<void> {
    const actor = this.actors.get(sessionId)
    if (!actor) return
    const protocol = this.inviteProtocols.get(sessionId)
    const finishedAt = this.retention.get(sessionId)?.finishedAt
    const record: SessionRecord = {
      snapshot: persistedSnapshotOf(actor),
      ...(protocol ? { protocol } : {}),
      ...(finishedAt !== undefined ? { finishedAt } : {}),
    }
    try {
      await this.store.put(sessionId, encodeSessionRecord(record))
      if ((record.snapshot as SessionSnapshot).context.outcome) this.durableOutcomes.add(sessionId)
    } catch (error) {
      this.report(error, 'session/persist')
    }
  }

  /** Restores every stored session; finished ones only until their retention runs out. */
  private resume(): void {
    for (const { key, value: stored } of this.store.range()) {
      const value = decodeSessionRecord(stored)
      if (!value) continue
      const snapshot = value.snapshot as SessionSnapshot
      // Written before sending a step and the release were actions: their actors are not part of
      // the machine any more (resumeEffects starts the effect of the state instead).
      const children = snapshot.children as Record<string, unknown> | undefined
      if (children) for (const legacy of ['sendStep', 'release']) delete children[legacy]
      try {
        // a finished one keeps the time it finished (none recorded: its retention starts now)
        if (snapshot.status === 'done') this.retain(snapshot.context.sessionId, value.finishedAt ?? this.deps.clock.now())
        this.spawn(undefined, snapshot, value.protocol)
        // A verdict decided before the crash may not have reached everyone: announce it again
        // (a participant that has it just acknowledges). A session still terminating does so itself.
        const { context } = snapshot
        if (snapshot.status === 'done' && context.leaderPeerId === this.self && context.outcome) this.announce(context, verdictOf(context.outcome))
      } catch (error) {
        this.report(error, `session/resume ${String(key)}`)
      }
    }
    for (const { key, value } of this.verdicts.range<StoredVerdict>()) {
      if (value.keepUntil <= this.deps.clock.now()) void this.verdicts.delete(key).catch((error) => this.report(error, 'session/verdicts'))
    }
  }

  /**
   * Sends the current step to its recipients, once what this peer received is on disk and
   * acknowledged (a step answers what came before it: a restarted peer must not have forgotten
   * that, and its sender hears the ack first). With
   * `reportsDone` the step carries our done report, and the leader's ack answers the verdict.
   */
  private async sendStep(input: SendStepInput, signal: AbortSignal): Promise<Verdict | null> {
    await this.receipts.get(input.sessionId)
    const actor = this.actor(input.sessionId)
    const { context } = actor.getSnapshot()
    const choreography = this.protocolOf(context.protocol?.name)
    const step = choreography.steps[input.stepIndex]
    if (!step) throw new InvalidInput(`step ${input.stepIndex} is out of range`)
    const produced = await step.produce(this.stepContext(input.sessionId))
    const payload = step.payload.safeParse(produced)
    if (!payload.success) throw new InvalidInput(`step ${step.label} produced a payload that fails its schema`, { issues: payload.error.issues })
    checkMessageSize(step.label, payload.data, context.limits.maxMessageBytes)
    const stepMessage = { sessionId: input.sessionId, protocol: choreography.name, step: input.stepIndex, payload: payload.data }
    let verdict: Verdict | null = null
    await Promise.all(
      input.toPeerIds.map(async (peer) => {
        // only the leader's copy carries the report (and only its answer is a report's reply)
        const reports = input.reportsDone && peer === context.leaderPeerId
        const message = { kind: 'step', session: input.sessionId, payload: reports ? { ...stepMessage, reportsDone: true as const } : stepMessage }
        const answer = await this.deliver(peer, message, context.deadlineAt, signal)
        if (reports) verdict = parseInput(reportReplySchema, answer, 'step reply', isReportReply).verdict
      }),
    )
    return verdict
  }

  /**
   * Leader: the verdict goes to disk first (a restarted leader answers what it announced), then to
   * every participant in the background; the session ends here meanwhile. Participants: nothing.
   */
  private async release(sessionId: string, outcome: SessionOutcome, announce: boolean): Promise<void> {
    if (!announce) return
    // Usually the write that answered a report with the verdict already holds it.
    if (!this.durableOutcomes.has(sessionId)) await this.persist(sessionId)
    this.announce(this.actor(sessionId).getSnapshot().context, verdictOf(outcome))
  }

  /** Sends the verdict to each participant, retried with backoff until acknowledged or the grace ends. */
  private announce(context: SessionSnapshot['context'], verdict: Verdict): void {
    const until = context.deadlineAt + context.verdictGraceMs
    if (this.stopped || this.deps.clock.now() >= until) return
    const answered = this.answeredVerdict.get(context.sessionId)
    const unanswered = context.participants.filter((p) => p.peerId !== this.self && !answered?.has(p.peerId))
    // usually every participant had the verdict in its report's answer
    if (unanswered.length === 0) return
    const controller = new AbortController()
    this.announcements.add(controller)
    const message = { kind: 'verdict', session: context.sessionId, payload: { sessionId: context.sessionId, ...verdict } }
    const sends = unanswered.map((p) =>
      withRetry(async () => this.deps.router.request(p.peerId, 'session', message, this.attemptMs(until)), {
        clock: this.deps.clock,
        random: this.deps.random,
        deadlineAt: until,
        signal: controller.signal,
        policy: AGREEMENT_POLICY,
        // a participant that does not know the session (its invite never came) will not learn it
        isRetryable: (error) => isTransient(error) && !(isAuraError(error) && error.code === 'UNKNOWN_SESSION'),
      }).catch(() => undefined),
    )
    void Promise.all(sends).finally(() => this.announcements.delete(controller))
  }

  /**
   * Participant: reports its proposal to the leader, retried until acknowledged (before the
   * deadline) or until the leader answers a verdict (`untilVerdict`, past it).
   */
  private reportToLeader(input: ReportInput, signal: AbortSignal): Promise<Verdict | null> {
    // a reason past the wire's limit would have the leader refuse the report for good
    const proposal = input.proposal.reason === undefined ? input.proposal : { ...input.proposal, reason: input.proposal.reason.slice(0, 1024) }
    const message = { kind: 'report', session: input.sessionId, payload: { sessionId: input.sessionId, ...proposal } }
    return withRetry(
      async () => {
        const answer = await this.deps.router.request(input.leaderPeerId, 'session', message, this.attemptMs(input.deadlineAt))
        const reply = parseInput(reportReplySchema, answer, 'report reply', isReportReply)
        if (input.untilVerdict && reply.verdict === null) throw new VerdictPending('the leader has not decided yet')
        return reply.verdict
      },
      {
        clock: this.deps.clock,
        random: this.deps.random,
        deadlineAt: input.deadlineAt,
        signal,
        policy: AGREEMENT_POLICY,
        // Past the deadline every failure is worth another try: the grace bounds the asking.
        isRetryable: (error) => input.untilVerdict || isTransient(error),
      },
    )
  }

  /** Leader, forgetting a decided session: keeps its verdict while participants may still ask. */
  private async keepVerdict(context: SessionSnapshot['context']): Promise<void> {
    const keepUntil = context.deadlineAt + context.verdictGraceMs
    if (context.leaderPeerId !== this.self || !context.outcome || this.deps.clock.now() >= keepUntil) return
    const record: StoredVerdict = { verdict: verdictOf(context.outcome), keepUntil }
    await this.verdicts.put(context.sessionId, record)
  }

  private keptVerdict(sessionId: string): Verdict | undefined {
    const kept = this.verdicts.get<StoredVerdict>(sessionId)
    if (!kept) return undefined
    if (kept.keepUntil > this.deps.clock.now()) return kept.verdict
    void this.verdicts.delete(sessionId).catch((error) => this.report(error, 'session/verdicts'))
    return undefined
  }

  private attemptMs(until: number): number {
    return Math.max(1, Math.min(AGREEMENT_ATTEMPT_MS, until - this.deps.clock.now()))
  }

  private verdictGraceMs(): number {
    return this.deps.verdictGraceMs * this.deps.timeoutFactor
  }

  /** A request that is retried (backoff, until the session deadline) until the peer acknowledges it. */
  private deliver(peerId: string, message: { kind: string; session: string; payload: unknown }, deadlineAt: number, signal?: AbortSignal): Promise<unknown> {
    return withRetry(
      // a lost frame is noticed by this wait alone: keep it short so a session shorter than a
      // few seconds still gets retries in (duplicates are dropped by the receiver)
      () => this.deps.router.request(peerId, 'session', { ...message, deadline: deadlineAt }, this.attemptMs(deadlineAt)),
      {
        clock: this.deps.clock,
        random: this.deps.random,
        deadlineAt,
        ...(signal ? { signal } : {}),
        policy: DELIVERY_POLICY,
        isRetryable: isTransient,
        // each attempt is a router request timed out within attemptMs: no deadline timer for it
        attemptTimeoutMs: AGREEMENT_ATTEMPT_MS,
      },
    )
  }

  private stepContext(sessionId: string): StepContext {
    const { context } = this.actor(sessionId).getSnapshot()
    const { crypto } = this.deps
    // roster and received are made when a step first reads them: many steps read neither
    let roster: StepContext['roster'] | undefined
    let received: StepContext['received'] | undefined
    return {
      sessionId,
      selfPeerId: this.self,
      role: roleOf(context.participants, this.self),
      get roster() {
        return (roster ??= Object.fromEntries(context.participants.map((p) => [p.role, p.peerId])))
      },
      get received() {
        return (received ??= receivedByLabel(context))
      },
      sign: (data) => crypto.sign(data),
      hash: (data) => crypto.hash(data),
    }
  }

  // ---- helpers ----------------------------------------------------------------------------

  private validateInput(raw: unknown): SessionInput {
    // The common shape passes its fast check, which holds the roster to the input's own limit;
    // only this peer's limit is left to count.
    if (isSessionInput(raw)) {
      const input = raw as SessionInput
      this.checkRosterSize(input.participants.length, input.limits.maxParticipants)
      return input
    }
    // Counted before the schema: the schema also refuses a roster over the input's own limit, and
    // that is the same limit broken, so it must not come out as INVALID_INPUT.
    const roster = rosterSizeSchema.safeParse(raw)
    if (roster.success) this.checkRosterSize(roster.data.participants.length, roster.data.limits?.maxParticipants ?? Infinity)
    return parseInput(sessionInputSchema, raw, 'session input')
  }

  private checkRosterSize(participants: number, inputMax: number): void {
    const max = Math.min(this.deps.limits.maxParticipants, inputMax)
    if (participants > max) throw new LimitExceeded(`a session has at most ${max} participants`, { participants, max })
  }

  private ensureCapacity(): void {
    // finished sessions are the retained ones (counting every actor's status was O(sessions) per call)
    const running = this.actors.size - this.retention.size
    if (running >= this.deps.limits.maxConcurrentSessions) {
      throw new LimitExceeded(`at most ${this.deps.limits.maxConcurrentSessions} concurrent sessions`, { running })
    }
  }

  private actor(sessionId: string): SessionActor {
    const actor = typeof sessionId === 'string' ? this.actors.get(sessionId) : undefined
    if (!actor) throw new UnknownSession(`unknown session ${String(sessionId)}`, { sessionId })
    return actor
  }

  /**
   * Sends an event the machine may not take (a duplicate, or one for a state it has left) without
   * asking first: XState ignores an event that no transition takes, and asking (`can`) worked the
   * whole transition out once more, for events that are taken nearly always. A finished actor is
   * not sent to.
   */
  private offer(actor: SessionActor, event: SessionEvent): void {
    if (actor.getSnapshot().status === 'active') actor.send(event)
  }

  /** Sends an event the caller asked for, which must be taken: one that is not (the snapshot stays the same one) throws. */
  private sendTo(actor: SessionActor, event: SessionEvent): void {
    const snapshot = actor.getSnapshot()
    this.offer(actor, event)
    if (actor.getSnapshot() === snapshot) {
      throw new InvalidTransition(`${event.type} is not allowed in state ${JSON.stringify(snapshot.value)}`, { event: event.type, state: snapshot.value })
    }
  }

  private resolveProtocol(actor: SessionActor, protocol: Choreography | string | undefined): Choreography {
    if (protocol !== undefined && typeof protocol !== 'string') return protocol
    const name = protocol ?? this.storedProtocolName(actor)
    return this.protocolOf(name)
  }

  private storedProtocolName(actor: SessionActor): string | undefined {
    return this.inviteProtocols.get(actor.getSnapshot().context.sessionId)
  }

  private protocolOf(name: string | undefined): Choreography {
    const choreography = name !== undefined ? this.protocols.get(name) : undefined
    if (!choreography) throw new UnknownProtocol(`no choreography named ${String(name)}`, { name })
    return choreography
  }

  private resultOf(snapshot: SessionSnapshot): SessionResult {
    const status = statusOf(snapshot)
    return {
      sessionId: snapshot.context.sessionId,
      status: status === 'completed' || status === 'cancelled' ? status : 'failed',
      outcome: snapshot.context.outcome ?? { kind: 'failure', reason: 'no outcome', partialResults: {} },
    }
  }

  private report(error: unknown, where: string): void {
    this.deps.bus.emit({
      type: 'error',
      code: isAuraError(error) ? error.code : 'INVALID_TRANSITION',
      where,
      message: error instanceof Error ? error.message : String(error),
    })
  }
}

/** Per session actor: the type of the event its latest transition took. */
const lastEventOf = new WeakMap<object, string>()

/**
 * The machine, noting on each actor the event each transition takes, so the bus's transition
 * events can name it. (XState's inspection would tell too, but it builds an object for every
 * delivery, microstep and action of every actor, children included, at every session: it is
 * there only when an inspector is attached.)
 */
function noteEvents(machine: typeof sessionMachine): typeof sessionMachine {
  const noting: typeof sessionMachine = Object.create(machine)
  noting.transition = (snapshot, event, scope) => {
    lastEventOf.set(scope.self, event.type)
    return machine.transition(snapshot, event, scope)
  }
  return noting
}

/** What a session received so far, as a step sees it: step label → sender role → payload. */
function receivedByLabel(context: SessionSnapshot['context']): StepContext['received'] {
  const roleByPeer = new Map(context.participants.map((p) => [p.peerId, p.role]))
  const received: StepContext['received'] = {}
  context.protocol?.steps.forEach((step, index) => {
    for (const [peer, payload] of Object.entries(context.received[index] ?? {})) {
      ;(received[step.label] ??= {})[roleByPeer.get(peer) ?? peer] = payload
    }
  })
  return received
}

/** Whether two state values name the same states (a nested one is a new object at every transition). */
function sameStateValue(a: unknown, b: unknown): boolean {
  if (a === b) return true
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false
  const keys = Object.keys(a)
  if (keys.length !== Object.keys(b).length) return false
  return keys.every((key) => sameStateValue((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]))
}

function roleOf(participants: readonly SessionParticipant[], peerId: string): string {
  const role = participants.find((p) => p.peerId === peerId)?.role
  if (role === undefined) throw new UnknownRole(`peer ${peerId} has no role in this session`)
  return role
}

/**
 * The inviter's times are on the inviter's clock. The envelope's budget, turned into a deadline
 * on this peer's clock at arrival, says where they fall here: shift them by the difference.
 */
function onLocalClock(input: SessionInput, localDeadlineAt: number | undefined): SessionInput {
  if (localDeadlineAt === undefined) return input
  const shift = localDeadlineAt - input.deadlineAt
  return { ...input, createdAt: input.createdAt + shift, deadlineAt: localDeadlineAt }
}

function inputOf(context: SessionSnapshot['context']): SessionInput {
  const { sessionId, sessionType, selfPeerId, participants, leaderPeerId, createdAt, deadlineAt, verdictGraceMs, limits } = context
  return { sessionId, sessionType, selfPeerId, participants, leaderPeerId, createdAt, deadlineAt, verdictGraceMs, limits }
}

function statusOf(snapshot: SessionSnapshot): SessionStatus {
  const value = snapshot.value
  const top = typeof value === 'string' ? value : Object.keys(value as object)[0]
  return top as SessionStatus
}
