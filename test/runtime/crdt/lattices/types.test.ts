// Behaviour of the shipped types beyond the lattice laws: what a reader sees after races.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  compareEntries,
  lwwRegister,
  mvRegister,
  orMapType,
  orSet,
  pnCounter,
  VectorClock,
  type LWWRegisterState,
} from '../../../../runtime/crdt/lattices/index.js'
import { isAuraError } from '../../../../effects/errors.js'
import { history, type Fixture } from './histories.js'
import { fixtures } from './fixtures.js'

const orSetFixture = fixtures.find((f) => f.type.name === 'or-set') as Fixture<ReturnType<typeof orSet.bottom>>

describe('pn-counter', () => {
  it('counts increments and decrements across replicas', () => {
    let a = pnCounter.bottom()
    let b = pnCounter.bottom()
    a = pnCounter.join(a, pnCounter.increment(a, 'a', 5))
    b = pnCounter.join(b, pnCounter.decrement(b, 'b', 2))
    expect(pnCounter.value(pnCounter.join(a, b))).toBe(3)
  })

  it('a delta overtaking an older one still leaves an honest version', () => {
    let a = pnCounter.bottom()
    const deltas = [pnCounter.increment(a, 'a', 1)]
    a = pnCounter.join(a, deltas[0]!)
    deltas.push(pnCounter.decrement(a, 'a', 1))
    a = pnCounter.join(a, deltas[1]!)
    const observer = a // saw inc and dec
    deltas.push(pnCounter.increment(a, 'a', 1))
    const late = pnCounter.join(pnCounter.bottom(), deltas[2]!) // got only the last delta
    const missing = pnCounter.missingFor(observer, pnCounter.version(late))
    expect(pnCounter.equals(pnCounter.join(late, missing), pnCounter.join(late, observer))).toBe(true)
    expect(pnCounter.value(pnCounter.join(late, observer))).toBe(1)
  })

  it('rejects a non-positive amount with InvalidInput', () => {
    expect(() => pnCounter.increment(pnCounter.bottom(), 'a', 0)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })
})

describe('lww-register', () => {
  const ts = fc.record({ wall: fc.nat(1), logical: fc.nat(1), replica: fc.constantFrom('a', 'b') })
  const entry = fc.record({ value: fc.constantFrom<null | number | string>(1, 2, 'x', null), ts })
  const state: fc.Arbitrary<LWWRegisterState> = fc.record({
    entry: fc.option(entry, { nil: null }),
    clock: fc.dictionary(fc.constantFrom('a', 'b'), fc.nat(3)).map((r) => VectorClock.of(r)),
  })

  it('join is commutative and associative even when timestamps and replica ids collide', () => {
    fc.assert(
      fc.property(state, state, state, (a, b, c) => {
        expect(lwwRegister.equals(lwwRegister.join(a, b), lwwRegister.join(b, a))).toBe(true)
        const l = lwwRegister.join(lwwRegister.join(a, b), c)
        const r = lwwRegister.join(a, lwwRegister.join(b, c))
        expect(lwwRegister.equals(l, r)).toBe(true)
      }),
    )
  })

  it('entry order is total: ties on time fall to the replica id, then to the value', () => {
    const at = { wall: 5, logical: 0 }
    expect(compareEntries({ value: 1, ts: { ...at, replica: 'b' } }, { value: 2, ts: { ...at, replica: 'a' } })).toBe(1)
    expect(compareEntries({ value: 'y', ts: { ...at, replica: 'a' } }, { value: 'x', ts: { ...at, replica: 'a' } })).toBe(1)
  })

  it('a write wins over everything its replica had seen, even with an earlier wall clock', () => {
    let s = lwwRegister.bottom()
    s = lwwRegister.join(s, lwwRegister.set(s, 'b', 'first', 100))
    s = lwwRegister.join(s, lwwRegister.set(s, 'a', 'second', 50))
    expect(lwwRegister.value(s)).toBe('second')
  })

  it('concurrent writes at the same instant resolve the same way on every replica', () => {
    const base = lwwRegister.bottom()
    const fromA = lwwRegister.set(base, 'a', 'A', 7)
    const fromB = lwwRegister.set(base, 'b', 'B', 7)
    expect(lwwRegister.value(lwwRegister.join(fromA, fromB))).toBe('B')
    expect(lwwRegister.value(lwwRegister.join(fromB, fromA))).toBe('B')
  })
})

describe('mv-register', () => {
  it('keeps concurrent values, and a write that saw them replaces them all', () => {
    const base = mvRegister.bottom()
    const a = mvRegister.join(base, mvRegister.set(base, 'a', 'left'))
    const b = mvRegister.join(base, mvRegister.set(base, 'b', 'right'))
    const both = mvRegister.join(a, b)
    expect(mvRegister.values(both)).toEqual(['"left"', '"right"'].map((s) => JSON.parse(s)))
    const resolved = mvRegister.join(both, mvRegister.set(both, 'c', 'merged'))
    expect(mvRegister.values(resolved)).toEqual(['merged'])
    // The replaced values stay gone after joining with the states that held them.
    expect(mvRegister.values(mvRegister.join(mvRegister.join(resolved, a), b))).toEqual(['merged'])
  })

  it('MV register keeps concurrent values: writes no replica saw together all survive', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.constantFrom('a', 'b', 'c', 'd'), { minLength: 1 }), (writers) => {
        const base = mvRegister.bottom()
        const states = writers.map((w) => mvRegister.join(base, mvRegister.set(base, w, w)))
        const joined = states.reduce((x, y) => mvRegister.join(x, y), base)
        expect(mvRegister.values(joined)).toEqual([...writers].sort())
      }),
    )
  })
})

describe('or-set', () => {
  it('concurrent add and remove of one element: the add wins', () => {
    let a = orSet.bottom()
    a = orSet.join(a, orSet.add(a, 'a', 'x'))
    let b = a
    b = orSet.join(b, orSet.remove(b, 'b', 'x'))
    a = orSet.join(a, orSet.add(a, 'a', 'x'))
    expect(orSet.has(orSet.join(a, b), 'x')).toBe(true)
    expect(orSet.has(orSet.join(b, a), 'x')).toBe(true)
  })

  it('removed OR-Set element does not come back after joins with states whose adds the remover saw', () => {
    fc.assert(
      fc.property(history(orSetFixture), fc.nat(2), fc.constantFrom('x', 'y', 'z'), (h, who, element) => {
        const replica = ['a', 'b', 'c'][who]!
        const before = h.finals[who]!.state
        const after = orSet.join(before, orSet.remove(before, replica, element))
        expect(orSet.has(after, element)).toBe(false)
        for (const other of h.pool) {
          const unseenAdd = [...(other.live.get(element)?.values() ?? [])].some((p) => !before.context.contains(p.dot))
          const joined = orSet.join(after, other)
          expect(orSet.has(joined, element)).toBe(unseenAdd)
          expect(orSet.has(orSet.join(other, after), element)).toBe(unseenAdd)
        }
      }),
    )
  })

  it('a removal reaches a peer that still holds the element through missingFor', () => {
    let a = orSet.bottom()
    a = orSet.join(a, orSet.add(a, 'a', 'x'))
    const b = a
    a = orSet.join(a, orSet.remove(a, 'a', 'x'))
    const missing = orSet.missingFor(a, orSet.version(b))
    expect(missing.live.size).toBe(0)
    expect(orSet.has(orSet.join(b, missing), 'x')).toBe(false)
  })

  it('a replica that learnt of a write only from its removal is still sent what that write removed (no silent divergence)', () => {
    // c adds x twice (the second add supersedes the first); a sees only the second and removes
    // x; f got c's first add and a's removal, so it knows c's second dot only as removed. A
    // version read off f's whole context would claim c's second add, and f would keep x forever.
    let c = orSet.bottom()
    const firstAdd = orSet.add(c, 'c', 'x')
    c = orSet.join(c, firstAdd)
    const secondAdd = orSet.add(c, 'c', 'x')
    c = orSet.join(c, secondAdd)
    let a = orSet.join(orSet.bottom(), secondAdd)
    const removal = orSet.remove(a, 'a', 'x')
    a = orSet.join(a, removal)
    let f = orSet.join(orSet.join(orSet.bottom(), firstAdd), removal)
    expect(orSet.has(f, 'x')).toBe(true)
    f = orSet.join(f, orSet.missingFor(c, orSet.version(f)))
    f = orSet.join(f, orSet.missingFor(a, orSet.version(f)))
    c = orSet.join(c, orSet.missingFor(a, orSet.version(c)))
    expect([orSet.has(f, 'x'), orSet.has(c, 'x'), orSet.has(a, 'x')]).toEqual([false, false, false])
    expect(orSet.equals(f, c) && orSet.equals(c, a)).toBe(true)
  })

  it('collect drops the removal records every replica has seen; a replica behind them is sent the whole state', () => {
    let a = orSet.bottom()
    let b = orSet.bottom()
    const deltas = [orSet.add(a, 'a', 'x')]
    a = orSet.join(a, deltas[0]!)
    const behind = orSet.join(orSet.bottom(), deltas[0]!) // saw the add, never the removal
    for (let i = 0; i < 5; i++) a = orSet.join(a, orSet.add(a, 'a', `y${i}`))
    for (let i = 0; i < 5; i++) a = orSet.join(a, orSet.remove(a, 'a', `y${i}`))
    a = orSet.join(a, orSet.remove(a, 'a', 'x'))
    b = orSet.join(b, orSet.missingFor(a, orSet.version(b)))
    expect(a.removals.size).toBe(6)
    // a and b are the only replicas a knows of: what both have seen is stable
    const stable = orSet.version(a).meet(orSet.version(b))
    const collected = orSet.collect(a, stable)
    expect(collected.removals.size).toBe(0)
    expect(orSet.equals(collected, a)).toBe(true)
    // b, at the frontier, still gets deltas (nothing here); the replica a did not know of gets the
    // whole state, and with it every removal
    expect(orSet.isBottom(orSet.missingFor(collected, orSet.version(b)))).toBe(true)
    const caughtUp = orSet.join(behind, orSet.missingFor(collected, orSet.version(behind)))
    expect(orSet.values(caughtUp)).toEqual([])
    expect(orSet.equals(caughtUp, a)).toBe(true)
    // the frontier travels with the state and survives the wire
    expect(orSet.decode(JSON.parse(JSON.stringify(orSet.encode(collected)))).collected.equals(collected.collected)).toBe(true)
  })

  it('missingFor carries only the difference', () => {
    let a = orSet.bottom()
    for (let i = 0; i < 200; i++) a = orSet.join(a, orSet.add(a, 'a', `k${i}`))
    const b = a
    a = orSet.join(a, orSet.add(a, 'a', 'new'))
    const missing = orSet.missingFor(a, orSet.version(b))
    expect(orSet.values(missing)).toEqual(['new'])
  })
})

describe('or-map', () => {
  const counters = orMapType(pnCounter)

  it('names its value type and merges concurrent updates of one key through it', () => {
    expect(counters.name).toBe('or-map<pn-counter>')
    const base = counters.bottom()
    const a = counters.join(
      base,
      counters.update(base, 'a', 'hits', (v) => pnCounter.increment(v, 'a', 2)),
    )
    const b = counters.join(
      base,
      counters.update(base, 'b', 'hits', (v) => pnCounter.increment(v, 'b', 3)),
    )
    expect(pnCounter.value(counters.get(counters.join(a, b), 'hits')!)).toBe(5)
  })

  it('an update concurrent with a removal wins; a removed key stays removed otherwise', () => {
    let s = counters.bottom()
    s = counters.join(
      s,
      counters.update(s, 'a', 'k', (v) => pnCounter.increment(v, 'a', 1)),
    )
    const removed = counters.join(s, counters.remove(s, 'b', 'k'))
    expect(counters.has(counters.join(removed, s), 'k')).toBe(false)
    const updated = counters.join(
      s,
      counters.update(s, 'a', 'k', (v) => pnCounter.increment(v, 'a', 1)),
    )
    const merged = counters.join(removed, updated)
    expect(counters.keys(merged)).toEqual(['k'])
    expect(pnCounter.value(counters.get(merged, 'k')!)).toBe(2)
  })

  it('rejects a wire state of another value type', () => {
    const sets = orMapType(orSet)
    expect(() => sets.decode(counters.encode(counters.bottom()))).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })
})

describe('malformed states are InvalidInput', () => {
  const cases: [string, () => unknown][] = [
    ['negative vector clock entry', () => VectorClock.decode({ a: -1 })],
    ['fractional vector clock entry', () => VectorClock.decode({ a: 1.5 })],
    ['vector clock that is not a record', () => VectorClock.decode([1, 2])],
    ['or-set live dot outside its context', () => orSet.decode({ context: {}, live: [['x', [['a', 1, null]]]], removals: [] })],
    ['or-set interval with lo > hi', () => orSet.decode({ context: { a: [[3, 1]] }, live: [], removals: [] })],
    ['lww-register with a string timestamp', () => lwwRegister.decode({ entry: { value: 1, ts: { wall: 'x', logical: 0, replica: 'a' } }, clock: {} })],
    ['pn-counter with extra fields', () => pnCounter.decode({ p: {}, n: {}, evil: 1 })],
  ]
  for (const [what, run] of cases) {
    it(what, () => {
      let error: unknown
      try {
        run()
      } catch (e) {
        error = e
      }
      expect(isAuraError(error) && error.code === 'INVALID_INPUT').toBe(true)
    })
  }
})
