// Timeout coordination (pattern 6), local and across peers.
//
// `withTimeout(ms, fn)` runs fn under the timeout machine: fn gets an AbortSignal that aborts at
// the deadline or on cancel, and an OperationContext whose `call(peer, name, payload)` runs a
// registered operation on another peer under the SAME deadline. The deadline travels in the
// envelope as the budget left (relative ms, see wire.ts) and shrinks as it hops (a callee never
// gets more than what is left); each peer turns it into a deadline on its own clock, so skewed
// clocks do not matter. When the origin's operation ends without the callees' answers — expiry, cancel, error —
// a `cancel` fans out to every peer it called, and each of them forwards it to the peers it
// called in turn, so no actor of the operation stays alive anywhere.
//
// Wire (family 'timeout'):
//   run    { operationId, name, payload }  envelope.budgetMs required; reply = handler's result
//   cancel { operationId, reason }          reply = number of local actors stopped

import { createActor, fromPromise, type AnyActorRef } from 'xstate'
import { runToOutput } from '../core/run-machine.js'
import { z } from 'zod'
import { Cancelled, DeadlineExceeded, InvalidInput, PermissionDenied, UnknownProtocol, errorFromReport, isAuraError } from '../../effects/errors.js'
import type { Clock } from '../../effects/time/index.js'
import type { Random } from '../../effects/random/index.js'
import {
  timeoutMachine,
  coordinatedTimeoutMachine,
  type CoordinatedOperationInput,
  type CoordinatedTimeoutOutput,
  type TimeoutOperationInput,
} from '../../machines/timeout.js'
import { deadlineTimerActor } from '../core/effect-actors.js'
import { enclosingDeadline, runInTimeoutScope, withEnclosingSignal } from './timeout-context.js'
import type { EventBus } from '../core/events.js'
import type { InboundMessage, Router } from '../core/router.js'

export type TimeoutPolicy = 'fail-fast' | 'best-effort'

export interface OperationContext {
  readonly operationId: string
  readonly deadlineAt: number
  readonly signal: AbortSignal
  /** ms left before the deadline */
  remaining(): number
  /** runs a registered operation on a peer under this operation's deadline (and cancellation) */
  call<R = unknown>(peerId: string, name: string, payload?: unknown): Promise<R>
  /** waits on the clock effect (virtual in simulation); rejects when the operation is cancelled */
  sleep(ms: number): Promise<void>
}

export type Operation<T> = (signal: AbortSignal, context: OperationContext) => Promise<T>

export interface NamedOperation<T> {
  id: string
  run: Operation<T>
}

/** A remotely callable operation: gets the payload and a context carrying the caller's deadline. */
export type RemoteHandler = (payload: unknown, context: OperationContext & { from: string }) => Promise<unknown>

/** status, results by op id, errors by op id, `unfinished` ops (timed out or stopped), and for
 * fail-fast the op that failed (`failedOp`) and why (`error`). */
export type CoordinatedResult<T> = Omit<CoordinatedTimeoutOutput, 'results'> & { results: Record<string, T> }

const msSchema = z
  .number()
  .finite()
  .positive()
  .max(7 * 24 * 3600_000)
const idSchema = z.string().min(1).max(128)
const runPayload = z.object({ operationId: idSchema, name: z.string().min(1).max(128), payload: z.unknown() }).strict()
const cancelPayload = z.object({ operationId: idSchema, reason: z.string().max(512) }).strict()

/** One operation as this peer sees it: its local actors, and the peers it called (for cascading cancel). */
interface OperationRecord {
  origin: string
  actors: Set<AnyActorRef>
  callees: Map<string, number>
}

export interface TimeoutDeps {
  clock: Clock
  random: Random
  bus: EventBus
  router: Router
  factor: number
  inspect?: (event: unknown) => void
}

export class TimeoutCoordinator {
  private readonly handlers = new Map<string, RemoteHandler>()
  private readonly operations = new Map<string, OperationRecord>()

  constructor(private readonly deps: TimeoutDeps) {}

  async start(): Promise<void> {
    await this.deps.router.register('timeout', {
      run: (m) => this.onRun(m),
      cancel: (m) => this.onCancel(m),
    })
  }

  /** Makes `name` callable by other peers' operations (ctx.call). */
  register(name: string, handler: RemoteHandler): void {
    if (typeof name !== 'string' || name.length === 0 || typeof handler !== 'function')
      throw new InvalidInput('register(name, handler) needs a name and a function')
    this.handlers.set(name, handler)
  }

  /** Operation ids with actors alive on this peer (empty once everything ended or was cancelled). */
  activeOperations(): string[] {
    return [...this.operations].filter(([, op]) => op.actors.size > 0).map(([id]) => id)
  }

  private deadlineFor(ms: unknown): number {
    const parsed = msSchema.safeParse(ms)
    if (!parsed.success) throw new InvalidInput('timeout must be a positive, finite number of milliseconds', { issues: parsed.error.issues })
    // inside another operation: never past its deadline (see timeout-context.ts)
    return enclosingDeadline(this.deps.clock.now() + parsed.data * this.deps.factor)
  }

  /**
   * Runs `fn` under a deadline `ms` from now; rejects DeadlineExceeded (and aborts fn's signal, here
   * and on every peer it called) when it passes. Inside another operation the deadline is the
   * earlier of the two, and the enclosing operation's end cancels this one.
   */
  async withTimeout<T>(ms: number, fn: Operation<T>, options: { signal?: AbortSignal } = {}): Promise<T> {
    if (typeof fn !== 'function') throw new InvalidInput('withTimeout needs a function')
    const deadlineAt = this.deadlineFor(ms)
    return this.runUnder(this.deps.random.id(12), this.deps.router.self, deadlineAt, fn, withEnclosingSignal(options.signal))
  }

  /** Runs operations under one deadline with a policy: fail-fast (first failure or expiry fails all) or best-effort. */
  async withCoordinatedTimeouts<T>(
    ms: number,
    operations: Array<Operation<T> | NamedOperation<T>>,
    policy: TimeoutPolicy = 'fail-fast',
  ): Promise<CoordinatedResult<T>> {
    if (!Array.isArray(operations) || operations.length === 0) throw new InvalidInput('withCoordinatedTimeouts needs a non-empty array of operations')
    if (policy !== 'fail-fast' && policy !== 'best-effort') throw new InvalidInput(`unknown timeout policy ${String(policy)}`)
    const named = operations.map((op, index) => (typeof op === 'function' ? { id: `op${index}`, run: op } : op))
    if (named.some((op) => typeof op?.run !== 'function' || typeof op.id !== 'string'))
      throw new InvalidInput('every operation must be a function or { id, run }')
    if (new Set(named.map((op) => op.id)).size !== named.length) throw new InvalidInput('operation ids must be distinct')
    const byId = new Map(named.map((op) => [op.id, op.run]))
    const deadlineAt = this.deadlineFor(ms)
    const operationId = this.deps.random.id(12)
    const record = this.record(operationId, this.deps.router.self)
    const machine = coordinatedTimeoutMachine.provide({
      actors: {
        operation: fromPromise<unknown, CoordinatedOperationInput>(({ input, signal }) =>
          runInTimeoutScope({ deadlineAt, signal }, () => byId.get(input.opId)!(signal, this.context(operationId, deadlineAt, signal, record))),
        ),
        deadlineTimer: deadlineTimerActor(this.deps.clock),
      },
    })
    const actor = createActor(machine, { input: { deadlineAt, policy, opIds: named.map((op) => op.id) }, clock: this.deps.clock, ...this.inspectOption() })
    record.actors.add(actor)
    const stopWithEnclosing = this.cancelOnAbort(actor, withEnclosingSignal())
    try {
      const output = await runToOutput(actor)
      if (output.status !== 'succeeded') this.count(output.status === 'cancelled' ? 'timeout.cancellations' : 'timeout.expired')
      return output as CoordinatedResult<T>
    } finally {
      stopWithEnclosing()
      record.actors.delete(actor)
      void this.finish(operationId, 'coordinated operation ended')
    }
  }

  /** Cancels an operation this peer runs or originated, here and on every peer it called. */
  async cancel(operationId: string, reason = 'cancelled'): Promise<number> {
    const record = this.operations.get(operationId)
    if (!record) return 0
    let stopped = 0
    for (const actor of [...record.actors]) {
      actor.send({ type: 'CANCEL', reason })
      stopped++
    }
    this.count('timeout.cancellations', stopped)
    await this.fanOutCancel(operationId, record, reason)
    return stopped
  }

  // ---- core --------------------------------------------------------------------------------

  private async runUnder<T>(operationId: string, origin: string, deadlineAt: number, fn: Operation<T>, outer?: AbortSignal): Promise<T> {
    const startedAt = this.deps.clock.now()
    const record = this.record(operationId, origin)
    const machine = timeoutMachine.provide({
      actors: {
        // fn and all it starts run in the operation's scope: they inherit its deadline and signal
        operation: fromPromise<unknown, TimeoutOperationInput>(({ signal }) =>
          runInTimeoutScope({ deadlineAt, signal }, () => fn(signal, this.context(operationId, deadlineAt, signal, record))),
        ),
        deadlineTimer: deadlineTimerActor(this.deps.clock),
      },
    })
    const actor = createActor(machine, { input: { deadlineAt }, clock: this.deps.clock, ...this.inspectOption() })
    record.actors.add(actor)
    const stopWithOuter = this.cancelOnAbort(actor, outer)
    try {
      const output = await runToOutput(actor)
      this.deps.bus.emit({ type: 'latency', name: 'timeout.elapsed', ms: this.deps.clock.now() - startedAt })
      if (output.status === 'succeeded') {
        this.deps.bus.emit({ type: 'latency', name: 'timeout.time_left', ms: Math.max(0, deadlineAt - this.deps.clock.now()) })
        return output.value as T
      }
      if (output.status === 'expired') {
        this.count('timeout.expired')
        this.deps.bus.emit({ type: 'error', code: 'DEADLINE_EXCEEDED', where: 'timeout', message: `operation ${operationId} passed its deadline` })
        throw new DeadlineExceeded(`operation passed its deadline`, { operationId, deadlineAt })
      }
      if (output.status === 'cancelled') {
        this.count('timeout.cancellations')
        throw new Cancelled(output.error?.message ?? 'operation cancelled', { operationId })
      }
      throw errorFromReport(output.error, 'NETWORK', 'operation failed', { keep: 'any' })
    } finally {
      stopWithOuter()
      record.actors.delete(actor)
      // The caller learns the outcome now; the cancel fan-out to slow or unreachable callees
      // proceeds in the background (it is bounded by its own request timeout).
      void this.finish(operationId, 'operation ended')
    }
  }

  /** Cancels `actor` when `signal` aborts (at once if it has; call after start). Returns the unsubscribe. */
  private cancelOnAbort(actor: AnyActorRef, signal: AbortSignal | undefined): () => void {
    if (!signal) return () => undefined
    const onAbort = () => actor.send({ type: 'CANCEL', reason: 'aborted by caller' })
    signal.addEventListener('abort', onAbort, { once: true })
    if (signal.aborted) queueMicrotask(onAbort)
    return () => signal.removeEventListener('abort', onAbort)
  }

  private context(operationId: string, deadlineAt: number, signal: AbortSignal, record: OperationRecord): OperationContext {
    const clock = this.deps.clock
    return {
      operationId,
      deadlineAt,
      signal,
      remaining: () => Math.max(0, deadlineAt - clock.now()),
      sleep: (ms) => clock.sleep(ms, signal),
      call: async <R>(peerId: string, name: string, payload?: unknown): Promise<R> => {
        if (signal.aborted) throw new Cancelled('operation already ended', { operationId })
        const left = deadlineAt - clock.now()
        if (left <= 0) throw new DeadlineExceeded('no time left to call another peer', { operationId })
        record.callees.set(peerId, (record.callees.get(peerId) ?? 0) + 1)
        try {
          return await this.deps.router.request<R>(peerId, 'timeout', { kind: 'run', deadline: deadlineAt, payload: { operationId, name, payload } }, left)
        } finally {
          const outstanding = (record.callees.get(peerId) ?? 1) - 1
          if (outstanding <= 0) record.callees.delete(peerId)
          else record.callees.set(peerId, outstanding)
        }
      },
    }
  }

  private record(operationId: string, origin: string): OperationRecord {
    let record = this.operations.get(operationId)
    if (!record) this.operations.set(operationId, (record = { origin, actors: new Set(), callees: new Map() }))
    return record
  }

  /** Once no local actor of the operation is left, cancel what callees may still run, and forget it. */
  private async finish(operationId: string, reason: string): Promise<void> {
    const record = this.operations.get(operationId)
    if (!record || record.actors.size > 0) return
    this.operations.delete(operationId)
    if (record.callees.size > 0) await this.fanOutCancel(operationId, record, reason)
  }

  private async fanOutCancel(operationId: string, record: OperationRecord, reason: string): Promise<void> {
    const started = this.deps.clock.now()
    const peers = [...record.callees.keys()]
    record.callees.clear()
    await Promise.all(
      peers.map((peer) =>
        this.deps.router.request(peer, 'timeout', { kind: 'cancel', payload: { operationId, reason } }, 2_000).catch((error) => {
          this.deps.bus.emit({
            type: 'error',
            code: isAuraError(error) ? error.code : 'NETWORK',
            where: 'timeout/cancel',
            message: String(error),
            remote: peer,
          })
        }),
      ),
    )
    if (peers.length > 0) this.deps.bus.emit({ type: 'latency', name: 'timeout.cancel_fanout', ms: this.deps.clock.now() - started })
  }

  // ---- inbound ----------------------------------------------------------------------------

  private async onRun({ envelope, from, deadlineAt }: InboundMessage): Promise<unknown> {
    const parsed = runPayload.safeParse(envelope.payload)
    if (!parsed.success) throw new InvalidInput('invalid run request', { issues: parsed.error.issues })
    const { operationId, name, payload } = parsed.data
    const handler = this.handlers.get(name)
    if (!handler) throw new UnknownProtocol(`no operation named ${name}`, { name })
    if (deadlineAt === undefined) throw new InvalidInput('a run request must carry a budget (envelope budgetMs)')
    if (deadlineAt <= this.deps.clock.now())
      throw new DeadlineExceeded('no budget was left when the request arrived', { operationId, budgetMs: envelope.budgetMs })
    const existing = this.operations.get(operationId)
    if (existing && existing.origin !== from) throw new PermissionDenied('operation id belongs to another caller', { operationId })
    return this.runUnder(operationId, from, deadlineAt, (signal, context) => handler(payload, { ...context, from }))
  }

  private async onCancel({ envelope, from }: InboundMessage): Promise<number> {
    const parsed = cancelPayload.safeParse(envelope.payload)
    if (!parsed.success) throw new InvalidInput('invalid cancel request', { issues: parsed.error.issues })
    const record = this.operations.get(parsed.data.operationId)
    if (!record) return 0 // already finished here: nothing to stop
    if (record.origin !== from) throw new PermissionDenied('only the caller may cancel an operation', { operationId: parsed.data.operationId })
    return this.cancel(parsed.data.operationId, `cancelled by ${from}: ${parsed.data.reason}`)
  }

  private count(name: string, by = 1): void {
    this.deps.bus.emit({ type: 'count', name, by })
  }

  private inspectOption() {
    return this.deps.inspect ? { inspect: this.deps.inspect } : {}
  }
}
