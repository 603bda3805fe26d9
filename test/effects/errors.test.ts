// One error table for every pattern: each code says whether a retry can help, and each error
// class is also a type that `instanceof` narrows to.
import { describe, expect, it } from 'vitest'
import {
  AuraError,
  DeadlineExceeded,
  ERROR_CODES,
  LimitExceeded,
  NetworkError,
  PermissionDenied,
  StorageError,
  errorFromReport,
  errorOf,
  isRetryable,
  type AuraErrorCode,
} from '../../effects/errors.js'
import { defaultIsRetryable } from '../../machines/kernel.js'
import { isTransient } from '../../runtime/timeouts/with-retry.js'

describe('error table', () => {
  it('permanent codes are not retried, transient ones are, unknown errors are', () => {
    expect(isRetryable(new PermissionDenied('no'))).toBe(false)
    expect(isRetryable(new LimitExceeded('too many'))).toBe(false)
    expect(isRetryable(new DeadlineExceeded('late'))).toBe(true)
    expect(isRetryable(new Error('anything'))).toBe(true)
    expect(isRetryable({ code: 'CHANNEL_CLOSED', message: 'closed' })).toBe(false) // an ErrorInfo off the wire
    expect(isRetryable({ code: 'NETWORK', retryable: false })).toBe(false) // the error says so itself
  })

  it('the retry machine, withRetry and every pattern read the same table', () => {
    for (const code of Object.keys(ERROR_CODES) as AuraErrorCode[]) {
      const error = new AuraError(code, code)
      expect(defaultIsRetryable(error), code).toBe(ERROR_CODES[code].retryable)
      expect(isTransient(error), code).toBe(ERROR_CODES[code].retryable)
    }
  })

  it('an error class is a type instanceof narrows to', () => {
    const caught: unknown = new DeadlineExceeded('late', { deadline: 1 })
    let named: DeadlineExceeded | undefined
    if (caught instanceof DeadlineExceeded) named = caught
    expect(named?.code).toBe('DEADLINE_EXCEEDED')
    expect(named?.name).toBe('DeadlineExceeded')
  })
})

describe('errorFromReport: what a machine reported as a failure, as the error callers catch', () => {
  it('keeps our own error, wraps anything else in the reported code, falls back on unknown codes', () => {
    const own = new DeadlineExceeded('late')
    expect(errorFromReport({ code: 'X', cause: own }, 'NETWORK', 'failed')).toBe(own)
    const app = new Error('application failure')
    expect(errorFromReport({ code: 'UNKNOWN', cause: app }, 'NETWORK', 'failed', { keep: 'any' })).toBe(app)
    const wrapped = errorFromReport({ code: 'UNKNOWN', message: 'boom', cause: app }, 'STORAGE', 'failed')
    expect(wrapped).toMatchObject({ code: 'STORAGE', message: 'boom', cause: app })
    expect(errorFromReport({ code: 'PERMISSION_DENIED' }, 'NETWORK', 'failed', { details: { peer: 'p' } })).toMatchObject({
      code: 'PERMISSION_DENIED',
      message: 'failed',
      details: { peer: 'p' },
    })
    expect(errorFromReport(undefined, 'NETWORK', 'failed')).toBeInstanceOf(NetworkError)
  })
})

describe('errorOf', () => {
  it('makes every known code with its own class', () => {
    for (const code of Object.keys(ERROR_CODES) as AuraErrorCode[]) {
      const error = errorOf(code, 'x')
      expect(error.code).toBe(code)
      expect(error.constructor).not.toBe(AuraError)
    }
    expect(errorOf('STORAGE', 'disk')).toBeInstanceOf(StorageError)
  })
})
