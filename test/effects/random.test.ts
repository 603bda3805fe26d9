import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { isAuraError } from '../../effects/errors.js'
import { CryptoRandom, SeededRandom, type Random } from '../../effects/random/index.js'

const draw = (r: Random, n: number): number[] => Array.from({ length: n }, () => r.int(1_000_000))

describe('SeededRandom', () => {
  it('replays the same sequence for the same seed', () => {
    for (const seed of [0, 42, -7.5, 'peer-a', '']) {
      const a = new SeededRandom(seed)
      const b = new SeededRandom(seed)
      expect(draw(a, 50)).toEqual(draw(b, 50))
      expect(a.bytes(33)).toEqual(b.bytes(33))
      expect(a.float()).toBe(b.float())
      expect(a.id()).toBe(b.id())
    }
  })

  it('different seeds give different sequences, and a number seed differs from its string', () => {
    expect(draw(new SeededRandom(1), 20)).not.toEqual(draw(new SeededRandom(2), 20))
    expect(draw(new SeededRandom(1), 20)).not.toEqual(draw(new SeededRandom('1'), 20))
  })

  it('derive gives deterministic streams that differ per label and do not depend on parent draws', () => {
    const root = new SeededRandom('sim-7')
    const a1 = draw(root.derive('peer-a'), 20)
    draw(root, 100) // consuming the parent must not shift a child
    const a2 = draw(root.derive('peer-a'), 20)
    const b = draw(root.derive('peer-b'), 20)
    expect(a1).toEqual(a2)
    expect(a1).not.toEqual(b)
    expect(a1).not.toEqual(draw(new SeededRandom('sim-7'), 20))
    expect(draw(root.derive('x').derive('y'), 10)).toEqual(draw(new SeededRandom('sim-7').derive('x').derive('y'), 10))
  })

  it('property: int stays in [0, max) for any bound and seed', () => {
    fc.assert(
      fc.property(fc.integer(), fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }), (seed, max) => {
        const r = new SeededRandom(seed)
        for (let i = 0; i < 20; i++) {
          const v = r.int(max)
          if (!Number.isInteger(v) || v < 0 || v >= max) return false
        }
        return true
      }),
    )
  })

  it('int hits every value of a small range with roughly equal frequency', () => {
    const r = new SeededRandom('histogram')
    const counts = new Array<number>(6).fill(0)
    const n = 60_000
    for (let i = 0; i < n; i++) counts[r.int(6)]!++
    // Expected 10000 each; 5 standard deviations (~456) is far outside chance for an unbiased die.
    for (const c of counts) expect(Math.abs(c - n / 6)).toBeLessThan(500)
  })

  it('float is in [0, 1); shuffle is a permutation; choice picks a member', () => {
    const r = new SeededRandom(9)
    for (let i = 0; i < 1000; i++) {
      const f = r.float()
      expect(f >= 0 && f < 1).toBe(true)
    }
    const items = ['a', 'b', 'c', 'd', 'e', 'f', 'g']
    const shuffled = r.shuffle(items)
    expect([...shuffled].sort()).toEqual(items)
    expect(items).toEqual(['a', 'b', 'c', 'd', 'e', 'f', 'g'])
    expect(items).toContain(r.choice(items))
    expect(r.id(8)).toMatch(/^[0-9a-f]{16}$/)
  })

  it('rejects bad input with InvalidInput', () => {
    const r = new SeededRandom(1)
    for (const bad of [() => r.int(0), () => r.int(1.5), () => r.int(-3), () => r.choice([]), () => r.bytes(-1), () => new SeededRandom(Number.NaN)]) {
      let error: unknown
      try {
        bad()
      } catch (e) {
        error = e
      }
      expect(isAuraError(error) && error.code).toBe('INVALID_INPUT')
    }
  })
})

describe('CryptoRandom', () => {
  it('gives bytes of the asked length, beyond one getRandomValues call', () => {
    const r = new CryptoRandom()
    expect(r.bytes(0)).toHaveLength(0)
    const big = r.bytes(100_000)
    expect(big).toHaveLength(100_000)
    // 100k random bytes are all zero with probability 2^-800000.
    expect(big.some((b) => b !== 0)).toBe(true)
    expect(r.id()).toMatch(/^[0-9a-f]{32}$/)
    expect(r.id()).not.toBe(r.id())
  })

  it('int respects bounds, including above 2^32', () => {
    const r = new CryptoRandom()
    for (const max of [1, 2, 7, 2 ** 32, 2 ** 32 + 1, Number.MAX_SAFE_INTEGER]) {
      for (let i = 0; i < 200; i++) {
        const v = r.int(max)
        expect(Number.isInteger(v) && v >= 0 && v < max).toBe(true)
      }
    }
    expect(r.int(1)).toBe(0)
  })
})
