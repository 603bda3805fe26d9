import { InvalidInput } from '../errors.js'
import type { Random } from './random.js'

const TWO_32 = 0x1_0000_0000

/**
 * Everything a Random offers, derived from one source of uniform 32-bit words, so the crypto
 * and seeded handlers cannot differ in how they turn words into ints, floats and shuffles.
 */
export abstract class RandomDraws implements Random {
  /** a uniform integer in [0, 2^32) */
  protected abstract nextUint32(): number

  bytes(n: number): Uint8Array {
    checkCount(n, 'byte count')
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i += 4) {
      let word = this.nextUint32()
      for (let j = i; j < Math.min(i + 4, n); j++) {
        out[j] = word & 0xff
        word >>>= 8
      }
    }
    return out
  }

  float(): number {
    // 53 random bits: every representable step of 2^-53 in [0, 1) is equally likely.
    const high = this.nextUint32() >>> 5
    const low = this.nextUint32() >>> 6
    return (high * 0x400_0000 + low) / 2 ** 53
  }

  int(maxExclusive: number): number {
    if (!Number.isSafeInteger(maxExclusive) || maxExclusive < 1) {
      throw new InvalidInput('int() needs a positive safe integer bound', { maxExclusive })
    }
    if (maxExclusive <= TWO_32) {
      // Rejection sampling: drop the top sliver of words that would make `% max` uneven.
      const limit = TWO_32 - (TWO_32 % maxExclusive)
      for (;;) {
        const word = this.nextUint32()
        if (word < limit) return word % maxExclusive
      }
    }
    const space = 2 ** 53
    const limit = space - (space % maxExclusive)
    for (;;) {
      const value = (this.nextUint32() >>> 11) * TWO_32 + this.nextUint32()
      if (value < limit) return value % maxExclusive
    }
  }

  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new InvalidInput('choice() needs a non-empty array')
    return items[this.int(items.length)]!
  }

  shuffle<T>(items: readonly T[]): T[] {
    const out = items.slice()
    for (let i = out.length - 1; i > 0; i--) {
      const j = this.int(i + 1)
      ;[out[i], out[j]] = [out[j]!, out[i]!]
    }
    return out
  }

  id(bytes = 16): string {
    checkCount(bytes, 'id length')
    let hex = ''
    for (const b of this.bytes(bytes)) hex += b.toString(16).padStart(2, '0')
    return hex
  }
}

function checkCount(n: number, what: string): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new InvalidInput(`${what} must be a non-negative integer`, { value: n })
}
