import { Cancelled } from '../errors.js'
import type { Clock, TimerHandle } from './clock.js'

export interface SystemClockOptions {
  /**
   * When true, pending timers do not keep the Node process alive (the handle is unref'd).
   * Off by default: a timer someone is waiting on should normally hold the process open.
   */
  unref?: boolean
}

/** Wall-clock time and the host's timers. */
export class SystemClock implements Clock {
  readonly #unref: boolean

  constructor(options: SystemClockOptions = {}) {
    this.#unref = options.unref === true
  }

  now(): number {
    return Date.now()
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = globalThis.setTimeout(fn, ms)
    if (this.#unref) (handle as { unref?: () => void }).unref?.()
    return handle
  }

  clearTimeout(handle: TimerHandle): void {
    globalThis.clearTimeout(handle as ReturnType<typeof globalThis.setTimeout>)
  }

  sleep(ms: number, signal?: AbortSignal): Promise<void> {
    return sleepOn(this, ms, signal)
  }
}

/** sleep() in terms of setTimeout/clearTimeout, shared by every Clock so abort behaves the same. */
export function sleepOn(clock: Pick<Clock, 'setTimeout' | 'clearTimeout'>, ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    if (signal?.aborted) {
      reject(abortReason(signal))
      return
    }
    const onAbort = (): void => {
      clock.clearTimeout(handle)
      reject(abortReason(signal!))
    }
    const handle = clock.setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new Cancelled('sleep aborted')
}
