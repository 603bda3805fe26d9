// The machine kernel: the contracts every pattern's statechart shares. Errors are kept as
// ErrorInfo (a stable code, a message, the original as `cause`); deadlines are absolute times on
// this peer's clock, armed by an injected `deadlineTimer`; retries wait `backoffDelay` through an
// injected `backoffTimer`; whether a retry can help comes from the one error table
// (effects/errors.ts). Nothing here reads a clock or randomness.
import { z } from 'zod'
import { isRetryable } from '../effects/errors.js'

// ---------------------------------------------------------------------------------------------
// Budgets and profiles

export type Budget = { startedAt: number; deadlineAt: number }

export const budgetSchema = z
  .object({ startedAt: z.number().finite(), deadlineAt: z.number().finite() })
  .refine((b) => b.deadlineAt >= b.startedAt, { message: 'deadlineAt must not precede startedAt' })

/** Milliseconds left before the deadline; never negative. */
export function remaining(budget: Budget, now: number): number {
  return Math.max(0, budget.deadlineAt - now)
}

/** A child's budget: what it asked for, capped by what the parent has left, so it never outlives the parent. */
export function childBudget(parent: Budget, requestedMs: number, now: number): Budget {
  const wanted = now + Math.max(0, requestedMs)
  return { startedAt: now, deadlineAt: Math.min(wanted, parent.deadlineAt) }
}

/** Scales every timeout at once: production runs at 1.0, tests and simulation much faster. */
export type TimeoutProfile = { name: string; factor: number }

export const timeoutProfileSchema = z.object({ name: z.string().min(1), factor: z.number().positive().finite() })

export const timeoutProfiles = {
  production: { name: 'production', factor: 1 },
  test: { name: 'test', factor: 0.1 },
  simulation: { name: 'simulation', factor: 0.01 },
} as const satisfies Record<string, TimeoutProfile>

/** A positive timeout stays positive (at least 1 ms) so scaling never turns "soon" into "already expired". */
export function scaleTimeout(ms: number, profile: TimeoutProfile): number {
  if (ms <= 0) return 0
  return Math.max(1, Math.round(ms * profile.factor))
}

// ---------------------------------------------------------------------------------------------
// Deadlines and errors

/**
 * Input of every `deadlineTimer` actor: it sends `{ type: 'DEADLINE' }` once the clock reaches
 * deadlineAt, or the event `says` names, for a machine that runs a second timer beside its
 * deadline and must tell the two apart.
 */
export type DeadlineTimerInput = { deadlineAt: number; says?: GraceOverEvent['type'] }
export type DeadlineEvent = { type: 'DEADLINE' }
/** A grace period past the deadline has ended (a deadlineTimer told to say so). */
export type GraceOverEvent = { type: 'GRACE_OVER' }

/** What a machine keeps of an error: a stable code, a message, and the original for callers to rethrow. */
export type ErrorInfo = { code: string; message: string; cause?: unknown }

export function errorInfo(error: unknown, fallbackCode = 'UNKNOWN'): ErrorInfo {
  if (error !== null && typeof error === 'object') {
    const e = error as { code?: unknown; message?: unknown }
    return {
      code: typeof e.code === 'string' ? e.code : fallbackCode,
      message: typeof e.message === 'string' ? e.message : String(error),
      cause: error,
    }
  }
  return { code: fallbackCode, message: String(error), cause: error }
}

// ---------------------------------------------------------------------------------------------
// Backoff

export const backoffPolicySchema = z.object({
  maxAttempts: z.number().int().min(1),
  initialDelayMs: z.number().finite().min(0),
  maxDelayMs: z.number().finite().min(0),
  multiplier: z.number().finite().min(1),
  jitter: z.enum(['none', 'full', 'equal']),
})
export type BackoffPolicy = z.infer<typeof backoffPolicySchema>

/**
 * Delay before the attempt after `attempt` (1-based: attempt 1 failed → first delay). The
 * un-jittered delay is initialDelayMs · multiplier^(attempt−1), capped at maxDelayMs; `full`
 * jitter draws from [0, d), `equal` from [d/2, d). `uniform01` is a draw in [0, 1).
 */
export function backoffDelay(attempt: number, policy: BackoffPolicy, uniform01: number): number {
  const exponent = Math.max(0, attempt - 1)
  // 0 · Infinity is NaN once the power overflows, so a zero initial delay short-circuits.
  const uncapped = policy.initialDelayMs === 0 ? 0 : policy.initialDelayMs * policy.multiplier ** exponent
  const base = Math.min(policy.maxDelayMs, uncapped)
  const u = Math.min(Math.max(uniform01, 0), 1)
  switch (policy.jitter) {
    case 'none':
      return base
    case 'full':
      return u * base
    case 'equal':
      return base / 2 + (u * base) / 2
  }
}

/** Default predicate: the shared error table (effects/errors.ts) says which codes a retry cannot fix. */
export const defaultIsRetryable = isRetryable

/** Input of every `backoffTimer` actor: it sends `{ type: 'RETRY' }` after backoffDelay(attempt, policy). */
export type BackoffTimerInput = { attempt: number; policy: BackoffPolicy; deadlineAt?: number }
