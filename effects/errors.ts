// Typed errors shared by every layer. Each has a stable `code` so callers (and metrics) can
// branch on it without string matching, and a `details` object safe to log.

export type AuraErrorCode =
  | 'INVALID_INPUT'
  | 'CONFIG_INVALID'
  | 'PERMISSION_DENIED'
  | 'NOT_FOUND'
  | 'FRAME_TOO_LARGE'
  | 'MALFORMED_FRAME'
  | 'UNKNOWN_SESSION'
  | 'UNKNOWN_ROLE'
  | 'UNKNOWN_PROTOCOL'
  | 'INVALID_TRANSITION'
  | 'LIMIT_EXCEEDED'
  | 'DEADLINE_EXCEEDED'
  | 'ATTEMPT_BUDGET_EXHAUSTED'
  | 'CANCELLED'
  | 'NETWORK'
  | 'PEER_UNREACHABLE'
  | 'BUDGET_EXHAUSTED'
  | 'EPOCH_REGRESSION'
  | 'CHANNEL_CLOSED'
  | 'STORAGE'
  | 'CONFLICT'
  | 'DECODE'
  /** a peer's timestamp lies further ahead of our physical clock than the accepted drift */
  | 'CLOCK_DRIFT'

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

const define = (code: AuraErrorCode, name: string) =>
  ({
    [name]: class extends AuraError {
      constructor(message: string, details: Record<string, unknown> = {}, options?: { cause?: unknown }) {
        super(code, message, details, options)
      }
    },
  })[name]!

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

export const isAuraError = (e: unknown): e is AuraError => e instanceof AuraError

/** Wraps a zod failure (or anything thrown while parsing) as InvalidInput with the issues listed. */
export function invalidInput(what: string, issues: unknown): AuraError {
  return new InvalidInput(`invalid ${what}`, { issues })
}
