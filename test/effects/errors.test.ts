// One error table for every pattern: each code says whether a retry can help, and each error
// class is also a type that `instanceof` narrows to.
import { describe, expect, it } from 'vitest'
import { AuraError, DeadlineExceeded, ERROR_CODES, LimitExceeded, PermissionDenied, isRetryable, type AuraErrorCode } from '../../effects/errors.js'
import { defaultIsRetryable } from '../../machines/retry.js'
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
