// Timeout coordination for local work: `withTimeout(ms, fn)` and `withCoordinatedTimeouts(ops,
// policy)` over the timeout machines. The operation receives an AbortSignal that aborts when the
// deadline passes or the work is cancelled, so everything it started can stop with it.

import { createActor, fromPromise, toPromise } from 'xstate'
import { z } from 'zod'
import { AuraError, Cancelled, DeadlineExceeded, InvalidInput } from '../effects/errors.js'
import type { Clock } from '../effects/time/index.js'
import { timeoutMachine, coordinatedTimeoutMachine, type CoordinatedOperationInput, type CoordinatedTimeoutOutput, type TimeoutOperationInput } from '../machines/timeout.js'
import { deadlineTimerActor } from './effect-actors.js'
import type { EventBus } from './events.js'

export type TimeoutPolicy = 'fail-fast' | 'best-effort'

export type Operation<T> = (signal: AbortSignal) => Promise<T>

export interface NamedOperation<T> {
  id: string
  run: Operation<T>
}

/** status, results by op id, errors by op id, `unfinished` ops (timed out or stopped), and for
 * fail-fast the op that failed (`failedOp`) and why (`error`). */
export type CoordinatedResult<T> = Omit<CoordinatedTimeoutOutput, 'results'> & { results: Record<string, T> }

const msSchema = z.number().finite().positive().max(7 * 24 * 3600_000)

export interface TimeoutDeps {
  clock: Clock
  bus: EventBus
  factor: number
  inspect?: (event: unknown) => void
}

export class TimeoutCoordinator {
  constructor(private readonly deps: TimeoutDeps) {}

  private deadlineFor(ms: unknown): number {
    const parsed = msSchema.safeParse(ms)
    if (!parsed.success) throw new InvalidInput('timeout must be a positive, finite number of milliseconds', { issues: parsed.error.issues })
    return this.deps.clock.now() + parsed.data * this.deps.factor
  }

  /** Runs `fn` under a deadline `ms` from now; rejects DeadlineExceeded (and aborts fn's signal) when it passes. */
  async withTimeout<T>(ms: number, fn: Operation<T>): Promise<T> {
    if (typeof fn !== 'function') throw new InvalidInput('withTimeout needs a function')
    const startedAt = this.deps.clock.now()
    const deadlineAt = this.deadlineFor(ms)
    const machine = timeoutMachine.provide({
      actors: {
        operation: fromPromise<unknown, TimeoutOperationInput>(({ signal }) => fn(signal)),
        deadlineTimer: deadlineTimerActor(this.deps.clock),
      },
    })
    const actor = createActor(machine, { input: { deadlineAt }, clock: this.deps.clock, ...(this.deps.inspect ? { inspect: this.deps.inspect } : {}) })
    actor.start()
    const output = await toPromise(actor)
    this.deps.bus.emit({ type: 'latency', name: 'timeout.elapsed', ms: this.deps.clock.now() - startedAt })
    if (output.status === 'succeeded') {
      this.deps.bus.emit({ type: 'latency', name: 'timeout.time_left', ms: Math.max(0, deadlineAt - this.deps.clock.now()) })
      return output.value as T
    }
    if (output.status === 'expired') {
      this.deps.bus.emit({ type: 'error', code: 'DEADLINE_EXCEEDED', where: 'timeout', message: `operation exceeded ${ms} ms` })
      throw new DeadlineExceeded(`operation exceeded its ${ms} ms deadline`, { ms })
    }
    if (output.status === 'cancelled') throw new Cancelled('operation cancelled')
    throw output.error?.cause ?? new AuraError('NETWORK', output.error?.message ?? 'operation failed')
  }

  /** Runs operations under one deadline with a policy: fail-fast (first failure or expiry fails all) or best-effort. */
  async withCoordinatedTimeouts<T>(ms: number, operations: Array<Operation<T> | NamedOperation<T>>, policy: TimeoutPolicy = 'fail-fast'): Promise<CoordinatedResult<T>> {
    if (!Array.isArray(operations) || operations.length === 0) throw new InvalidInput('withCoordinatedTimeouts needs a non-empty array of operations')
    if (policy !== 'fail-fast' && policy !== 'best-effort') throw new InvalidInput(`unknown timeout policy ${String(policy)}`)
    const named = operations.map((op, index) => (typeof op === 'function' ? { id: `op${index}`, run: op } : op))
    if (named.some((op) => typeof op?.run !== 'function' || typeof op.id !== 'string')) throw new InvalidInput('every operation must be a function or { id, run }')
    if (new Set(named.map((op) => op.id)).size !== named.length) throw new InvalidInput('operation ids must be distinct')
    const byId = new Map(named.map((op) => [op.id, op.run]))
    const deadlineAt = this.deadlineFor(ms)
    const machine = coordinatedTimeoutMachine.provide({
      actors: {
        operation: fromPromise<unknown, CoordinatedOperationInput>(({ input, signal }) => byId.get(input.opId)!(signal)),
        deadlineTimer: deadlineTimerActor(this.deps.clock),
      },
    })
    const actor = createActor(machine, {
      input: { deadlineAt, policy, opIds: named.map((op) => op.id) },
      clock: this.deps.clock,
      ...(this.deps.inspect ? { inspect: this.deps.inspect } : {}),
    })
    actor.start()
    const output = await toPromise(actor)
    return output as CoordinatedResult<T>
  }
}
