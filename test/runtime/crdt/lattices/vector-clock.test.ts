import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { CausalContext, VectorClock, vectorClockPairsSchema } from '../../../../runtime/crdt/lattices/index.js'
import { isVectorClockPairs } from '../../../../runtime/crdt/lattices/vector-clock.js'

const clock = fc.dictionary(fc.constantFrom('a', 'b', 'c'), fc.nat(4)).map((r) => VectorClock.of(r))

describe('VectorClock', () => {
  it('merge is associative, commutative, idempotent and dominates both', () => {
    fc.assert(
      fc.property(clock, clock, clock, (a, b, c) => {
        expect(
          a
            .merge(b)
            .merge(c)
            .equals(a.merge(b.merge(c))),
        ).toBe(true)
        expect(a.merge(b).equals(b.merge(a))).toBe(true)
        expect(a.merge(a).equals(a)).toBe(true)
        expect(a.merge(b).dominates(a) && a.merge(b).dominates(b)).toBe(true)
      }),
    )
  })

  it('compare is antisymmetric and agrees with dominates', () => {
    const flip = { equal: 'equal', before: 'after', after: 'before', concurrent: 'concurrent' } as const
    fc.assert(
      fc.property(clock, clock, (a, b) => {
        const o = a.compare(b)
        expect(b.compare(a)).toBe(flip[o])
        expect(a.dominates(b)).toBe(o === 'equal' || o === 'after')
      }),
    )
  })

  it('increment moves strictly after; immutability: the original is unchanged', () => {
    fc.assert(
      fc.property(clock, fc.constantFrom('a', 'b', 'z'), (a, r) => {
        const before = a.encode()
        expect(a.increment(r).compare(a)).toBe('after')
        expect(a.encode()).toEqual(before)
      }),
    )
  })

  it('the wire form is built once and frozen: callers share it and cannot change the clock through it', () => {
    const a = VectorClock.of({ b: 2, a: 1 })
    const wire = a.encode()
    expect(Object.keys(wire)).toEqual(['a', 'b'])
    expect(a.encode()).toBe(wire)
    expect(Object.isFrozen(wire)).toBe(true)
    expect(() => {
      ;(wire as Record<string, number>).a = 5
    }).toThrow(TypeError)
    expect(a.get('a')).toBe(1)
  })

  it('zero entries are dropped so equal clocks encode alike', () => {
    expect(VectorClock.of({ a: 0, b: 2 }).encode()).toEqual({ b: 2 })
    expect(VectorClock.decode({ b: 2, a: 0 }).equals(VectorClock.of({ b: 2 }))).toBe(true)
  })

  it('malformed wire clocks are InvalidInput', () => {
    for (const bad of [{ a: -1 }, { a: 0.5 }, { a: '1' }, null, 'x', { '': 1 }, { a: Number.MAX_SAFE_INTEGER + 2 }]) {
      expect(() => VectorClock.decode(bad)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    }
  })

  it('the pairs form is sorted, built once, frozen, and decodes to the same clock as the record', () => {
    fc.assert(
      fc.property(clock, (a) => {
        const pairs = a.pairs()
        expect(pairs).toEqual(Object.entries(a.encode()))
        expect(a.pairs()).toBe(pairs)
        expect(Object.isFrozen(pairs) && pairs.every((p) => Object.isFrozen(p))).toBe(true)
        expect(VectorClock.decode(pairs).equals(a)).toBe(true)
        expect(VectorClock.decode(structuredClone(pairs)).equals(VectorClock.decode(a.encode()))).toBe(true)
      }),
    )
    // Yjs client ids as replicas: integer keys, the case the pairs form is for
    const yjs = VectorClock.of([
      ['2224249343', 10],
      ['17', 3],
    ])
    expect(yjs.pairs()).toEqual([
      ['17', 3],
      ['2224249343', 10],
    ])
  })

  it('malformed pairs are InvalidInput, a replica listed twice included', () => {
    const bad: unknown[] = [
      [['a', -1]],
      [['a', 0.5]],
      [['a']],
      [['a', 1, 2]],
      [[1, 1]],
      [['', 1]],
      ['a', 1],
      [
        ['a', 1],
        ['a', 2],
      ],
      [
        ['a', 1],
        ['b', 1],
        ['c', 1],
        ['d', 1],
        ['e', 1],
        ['f', 1],
        ['g', 1],
        ['h', 1],
        ['i', 1],
        ['a', 1],
      ],
    ]
    for (const wire of bad) expect(() => VectorClock.decode(wire), JSON.stringify(wire)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })

  it('the fast check of pairs accepts nothing the schema refuses', () => {
    const entry = fc.tuple(fc.oneof(fc.constantFrom('a', 'b', '', 'x'.repeat(257)), fc.anything()), fc.oneof(fc.nat(), fc.double(), fc.anything()))
    fc.assert(
      fc.property(fc.array(fc.oneof(entry, fc.anything()), { maxLength: 12 }), (wire) => {
        if (isVectorClockPairs(wire)) expect(vectorClockPairsSchema.safeParse(wire).success).toBe(true)
      }),
    )
  })
})

describe('CausalContext', () => {
  const dots = fc.array(fc.record({ replica: fc.constantFrom('a', 'b'), seq: fc.integer({ min: 1, max: 8 }) }))

  it('contains exactly the dots put in, and union is set union', () => {
    fc.assert(
      fc.property(dots, dots, (xs, ys) => {
        const u = CausalContext.ofDots(xs).union(CausalContext.ofDots(ys))
        for (const r of ['a', 'b'])
          for (let seq = 1; seq <= 9; seq++) {
            const inAny = [...xs, ...ys].some((d) => d.replica === r && d.seq === seq)
            expect(u.contains({ replica: r, seq })).toBe(inAny)
          }
        expect(u.equals(CausalContext.ofDots([...ys, ...xs]))).toBe(true)
      }),
    )
  })

  it('toClock is the contiguous prefix, above() the rest', () => {
    const c = CausalContext.ofDots([1, 2, 3, 5, 6].map((seq) => ({ replica: 'a', seq })))
    expect(c.toClock().encode()).toEqual({ a: 3 })
    expect(c.above(VectorClock.of({ a: 3 })).encode()).toEqual({ a: [[5, 6]] })
    expect(
      c
        .union(CausalContext.ofDots([{ replica: 'a', seq: 4 }]))
        .toClock()
        .encode(),
    ).toEqual({ a: 6 })
  })
})
