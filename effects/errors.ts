// Typed errors shared by every layer. Each has a stable `code` so callers (and metrics) can
// branch on it without string matching, and a `details` object safe to log.

import type { ZodType } from 'zod'

/**
 * Every error code, and whether retrying the same operation can help. This table is the one
 * answer to "retry this?" for every pattern (the retry machine's default predicate, withRetry,
 * transport sends, CRDT and session retries). Retryable: the peer, the network or time may
 * change the outcome; not: the request itself is wrong, not allowed, or over a limit.
 */
export const ERROR_CODES = {
  INVALID_INPUT: { retryable: false },
  CONFIG_INVALID: { retryable: false },
  PERMISSION_DENIED: { retryable: false },
  NOT_FOUND: { retryable: true },
  FRAME_TOO_LARGE: { retryable: false },
  MALFORMED_FRAME: { retryable: true },
  UNKNOWN_SESSION: { retryable: true },
  UNKNOWN_ROLE: { retryable: false },
  UNKNOWN_PROTOCOL: { retryable: false },
  INVALID_TRANSITION: { retryable: true },
  LIMIT_EXCEEDED: { retryable: false },
  DEADLINE_EXCEEDED: { retryable: true },
  ATTEMPT_BUDGET_EXHAUSTED: { retryable: true },
  CANCELLED: { retryable: false },
  NETWORK: { retryable: true },
  PEER_UNREACHABLE: { retryable: true },
  // a channel's budget, epoch or closing are final for that channel
  BUDGET_EXHAUSTED: { retryable: false },
  EPOCH_REGRESSION: { retryable: false },
  CHANNEL_CLOSED: { retryable: false },
  STORAGE: { retryable: true },
  CONFLICT: { retryable: true },
  DECODE: { retryable: true },
  /** a peer's timestamp lies further ahead of our physical clock than the accepted drift */
  CLOCK_DRIFT: { retryable: true },
} as const satisfies Record<string, { retryable: boolean }>

export type AuraErrorCode = keyof typeof ERROR_CODES

/**
 * Whether retrying can help: false for a known permanent code, true otherwise (unknown errors included).
 * @example
 * isRetryable(new DeadlineExceeded('late')) // true
 * isRetryable(new PermissionDenied('no'))   // false
 */
export function isRetryable(error: unknown): boolean {
  if (error === null || typeof error !== 'object') return true
  const e = error as { retryable?: unknown; code?: unknown }
  if (e.retryable === false) return false
  return !(typeof e.code === 'string' && Object.hasOwn(ERROR_CODES, e.code) && !ERROR_CODES[e.code as AuraErrorCode].retryable)
}

/** A machine's report of a failure (`ErrorInfo` in machines/): a code, a message, maybe the original error. */
export interface FailureReport {
  code?: string
  message?: string
  cause?: unknown
}

/**
 * The error a machine's failure report stands for. The original error is kept when it is one of
 * ours (or, with `keep: 'any'`, any Error: an application's own failure passes through unchanged);
 * otherwise an AuraError of the reported code (`fallback` when the code is not one we know).
 * @example
 * const output = await runToOutput(actor)
 * if (output.status === 'failed') throw errorFromReport(output.error, 'NETWORK', 'operation failed')
 */
export function errorFromReport(
  report: FailureReport | undefined,
  fallback: AuraErrorCode,
  message: string,
  options: { details?: Record<string, unknown>; keep?: 'typed' | 'any' } = {},
): Error {
  const cause = report?.cause
  if (isAuraError(cause) || (options.keep === 'any' && cause instanceof Error)) return cause
  const code = typeof report?.code === 'string' && Object.hasOwn(ERROR_CODES, report.code) ? (report.code as AuraErrorCode) : fallback
  return errorOf(code, report?.message ?? message, options.details ?? {}, cause === undefined ? undefined : { cause })
}

export class AuraError extends Error {
  readonly code: AuraErrorCode
  readonly details: Record<string, unknown>
  constructor(code: AuraErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.code = code
    this.details = details
  }
  toJSON(): { code: AuraErrorCode; message: string; details: Record<string, unknown> } {
    return { code: this.code, message: this.message, details: this.details }
  }
}

type AuraErrorClass = new (message: string, details?: Record<string, unknown>, options?: { cause?: unknown }) => AuraError
/** code → its class, so an error made from a code alone is still `instanceof` its class */
const CLASS_OF = new Map<AuraErrorCode, AuraErrorClass>()

const define = (code: AuraErrorCode, name: string) => {
  const named = {
    [name]: class extends AuraError {
      constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
        super(code, message, details, options)
      }
    },
  }[name]!
  CLASS_OF.set(code, named)
  return named
}

/**
 * An error of `code`, made with the class for that code (`errorOf('DEADLINE_EXCEEDED', …) instanceof DeadlineExceeded`).
 * @example
 * errorOf('DEADLINE_EXCEEDED', 'late') instanceof DeadlineExceeded // true
 */
export function errorOf(code: AuraErrorCode, message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }): AuraError {
  const ErrorClass = CLASS_OF.get(code)
  return ErrorClass ? new ErrorClass(message, details, options) : new AuraError(code, message, details, options)
}

export const InvalidInput = define('INVALID_INPUT', 'InvalidInput')
export const ConfigInvalid = define('CONFIG_INVALID', 'ConfigInvalid')
export const PermissionDenied = define('PERMISSION_DENIED', 'PermissionDenied')
export const NotFound = define('NOT_FOUND', 'NotFound')
export const FrameTooLarge = define('FRAME_TOO_LARGE', 'FrameTooLarge')
export const MalformedFrame = define('MALFORMED_FRAME', 'MalformedFrame')
export const UnknownSession = define('UNKNOWN_SESSION', 'UnknownSession')
export const UnknownRole = define('UNKNOWN_ROLE', 'UnknownRole')
export const UnknownProtocol = define('UNKNOWN_PROTOCOL', 'UnknownProtocol')
export const InvalidTransition = define('INVALID_TRANSITION', 'InvalidTransition')
export const LimitExceeded = define('LIMIT_EXCEEDED', 'LimitExceeded')
export const DeadlineExceeded = define('DEADLINE_EXCEEDED', 'DeadlineExceeded')
export const AttemptBudgetExhausted = define('ATTEMPT_BUDGET_EXHAUSTED', 'AttemptBudgetExhausted')
export const Cancelled = define('CANCELLED', 'Cancelled')
export const NetworkError = define('NETWORK', 'NetworkError')
export const PeerUnreachable = define('PEER_UNREACHABLE', 'PeerUnreachable')
export const BudgetExhausted = define('BUDGET_EXHAUSTED', 'BudgetExhausted')
export const EpochRegression = define('EPOCH_REGRESSION', 'EpochRegression')
export const ChannelClosed = define('CHANNEL_CLOSED', 'ChannelClosed')
export const StorageError = define('STORAGE', 'StorageError')
export const Conflict = define('CONFLICT', 'Conflict')
export const DecodeError = define('DECODE', 'DecodeError')
export const ClockDrift = define('CLOCK_DRIFT', 'ClockDrift')

// Each error is also a type: `catch (e) { if (e instanceof DeadlineExceeded) … }`, `let e: DeadlineExceeded`.
export type InvalidInput = InstanceType<typeof InvalidInput>
export type ConfigInvalid = InstanceType<typeof ConfigInvalid>
export type PermissionDenied = InstanceType<typeof PermissionDenied>
export type NotFound = InstanceType<typeof NotFound>
export type FrameTooLarge = InstanceType<typeof FrameTooLarge>
export type MalformedFrame = InstanceType<typeof MalformedFrame>
export type UnknownSession = InstanceType<typeof UnknownSession>
export type UnknownRole = InstanceType<typeof UnknownRole>
export type UnknownProtocol = InstanceType<typeof UnknownProtocol>
export type InvalidTransition = InstanceType<typeof InvalidTransition>
export type LimitExceeded = InstanceType<typeof LimitExceeded>
export type DeadlineExceeded = InstanceType<typeof DeadlineExceeded>
export type AttemptBudgetExhausted = InstanceType<typeof AttemptBudgetExhausted>
export type Cancelled = InstanceType<typeof Cancelled>
export type NetworkError = InstanceType<typeof NetworkError>
export type PeerUnreachable = InstanceType<typeof PeerUnreachable>
export type BudgetExhausted = InstanceType<typeof BudgetExhausted>
export type EpochRegression = InstanceType<typeof EpochRegression>
export type ChannelClosed = InstanceType<typeof ChannelClosed>
export type StorageError = InstanceType<typeof StorageError>
export type Conflict = InstanceType<typeof Conflict>
export type DecodeError = InstanceType<typeof DecodeError>
export type ClockDrift = InstanceType<typeof ClockDrift>

/**
 * @example
 * try { await runtime.sessions.joinSession(id, 'server') } catch (e) { if (isAuraError(e)) console.log(e.code) }
 */
export const isAuraError = (e: unknown): e is AuraError => e instanceof AuraError

/**
 * Wraps a zod failure (or anything thrown while parsing) as InvalidInput with the issues listed.
 * @example
 * const parsed = schema.safeParse(input)
 * if (!parsed.success) throw invalidInput('session config', parsed.error.issues)
 */
export function invalidInput(what: string, issues: unknown): AuraError {
  return new InvalidInput(`invalid ${what}`, { issues })
}

/**
 * `value` as `schema` gives it, or InvalidInput "invalid <what>" with the schema's issues: how wire
 * messages and API arguments are validated (configs use ConfigInvalid, runtime/core/service-init.ts).
 * With `fast`, a value it accepts is taken as it is: a fast check must accept only values the
 * schema passes unchanged (runtime/sessions/session-wire-fast.ts, runtime/crdt/sync-wire-fast.ts).
 */
export function parseInput<T>(schema: ZodType<T>, value: unknown, what: string, fast?: (value: unknown) => boolean): T {
  if (fast?.(value)) return value as T
  const parsed = schema.safeParse(value)
  if (!parsed.success) throw invalidInput(what, parsed.error.issues)
  return parsed.data
}
