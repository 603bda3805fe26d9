// State-based, delta and meet handlers.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  capabilitySet,
  createCvHandler,
  createDeltaHandler,
  createMvHandler,
  gCounter,
  orSet,
  type CapabilitySetState,
} from '../../../../runtime/crdt/lattices/index.js'

describe('delta handler', () => {
  it('compacts when the buffer reaches the threshold, and buffered deltas joined equal the changes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.array(fc.tuple(fc.boolean(), fc.constantFrom('x', 'y', 'z')), { maxLength: 20 }), (threshold, ops) => {
        const h = createDeltaHandler(orSet, { threshold })
        for (const [add, e] of ops) h.mutate((s) => (add ? orSet.add(s, 'a', e) : orSet.remove(s, 'a', e)))
        expect(h.buffered().length).toBeLessThanOrEqual(Math.max(1, threshold - 1))
        expect(h.seq()).toBe(ops.length)
        const all = h.deltaSince(0) ?? orSet.bottom()
        expect(orSet.equals(orSet.join(orSet.bottom(), all), h.state())).toBe(true)
      }),
    )
  })

  it('deltaSince sends a peer what came after its acknowledgement', () => {
    const h = createDeltaHandler(gCounter, { threshold: 100 })
    const peer = createCvHandler(gCounter)
    h.mutate((s) => gCounter.increment(s, 'a'))
    peer.join(h.deltaSince(0)!)
    h.mutate((s) => gCounter.increment(s, 'a', 4))
    h.mutate((s) => gCounter.increment(s, 'b'))
    const delta = h.deltaSince(1)!
    expect(gCounter.value(delta)).toBe(6) // a's entry (5) and b's (1); not the whole history
    peer.join(delta)
    expect(gCounter.equals(peer.state(), h.state())).toBe(true)
    h.acknowledge(3)
    expect(h.deltaSince(1)).toBeNull()
  })

  it('a received delta changes the state without entering the local buffer', () => {
    const h = createDeltaHandler(gCounter, { threshold: 2 })
    expect(h.receive(gCounter.increment(gCounter.bottom(), 'b', 2))).toBe(true)
    expect(h.receive(gCounter.increment(gCounter.bottom(), 'b', 2))).toBe(false)
    expect(h.buffered()).toEqual([])
    expect(gCounter.value(h.state())).toBe(2)
  })

  it('rejects a threshold below 1', () => {
    expect(() => createDeltaHandler(gCounter, { threshold: 0 })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })
})

describe('cv handler', () => {
  it('a state handed out never changes under its holder (copy-on-write over in-place joins)', () => {
    const h = createCvHandler(orSet)
    h.mutate((s) => orSet.add(s, 'a', 'x'))
    const held = h.state()
    h.mutate((s) => orSet.add(s, 'a', 'y'))
    h.mutate((s) => orSet.remove(s, 'a', 'x'))
    expect(orSet.values(held)).toEqual(['x'])
    expect(orSet.values(h.state())).toEqual(['y'])
  })

  it('mutate returns the delta and missing() answers a peer from its version', () => {
    const a = createCvHandler(orSet)
    const b = createCvHandler(orSet)
    const delta = a.mutate((s) => orSet.add(s, 'a', 'x'))
    expect(orSet.values(delta)).toEqual(['x'])
    expect(b.join(a.missing(b.version()))).toBe(true)
    expect(b.join(a.missing(b.version()))).toBe(false)
    expect(orSet.values(b.state())).toEqual(['x'])
  })
})

describe('meet semilattice (capability sets)', () => {
  const rights = fc.constantFrom('read', 'write', 'admin', 'sync')
  const caps: fc.Arbitrary<CapabilitySetState> = fc.oneof(
    fc.constant(capabilitySet.top()),
    fc.uniqueArray(rights).map((r) => capabilitySet.of(r)),
  )
  const M = capabilitySet

  it('meet is associative, commutative, idempotent', () => {
    fc.assert(
      fc.property(caps, caps, caps, (a, b, c) => {
        expect(M.equals(M.meet(M.meet(a, b), c), M.meet(a, M.meet(b, c)))).toBe(true)
        expect(M.equals(M.meet(a, b), M.meet(b, a))).toBe(true)
        expect(M.equals(M.meet(a, a), a)).toBe(true)
      }),
    )
  })

  it('meet semilattice only shrinks: every accepted constraint leaves a state ≤ the one before', () => {
    fc.assert(
      fc.property(fc.array(caps, { maxLength: 8 }), (constraints) => {
        const h = createMvHandler(M, 'a')
        let before = h.state()
        constraints.forEach((c, i) => {
          h.receive({ origin: 'b', counter: i + 1, constraint: c })
          expect(M.leq(h.state(), before)).toBe(true)
          expect(M.leq(h.state(), c)).toBe(true)
          before = h.state()
        })
      }),
    )
  })

  it('rejects a meet message whose counter did not increase, leaving the state untouched', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), fc.integer({ min: -2, max: 0 }), caps, (first, step, c) => {
        const h = createMvHandler(M, 'a')
        h.receive({ origin: 'b', counter: first, constraint: M.of(['read', 'write']) })
        const before = h.state()
        expect(() => h.receive({ origin: 'b', counter: first + step, constraint: c })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
        expect(M.equals(h.state(), before)).toBe(true)
        expect(h.counters().get('b')).toBe(first)
      }),
    )
  })

  it('local constraints carry this replica’s increasing counter', () => {
    const a = createMvHandler(M, 'a')
    const b = createMvHandler(M, 'b')
    const m1 = a.constrain(M.of(['read', 'write']))
    const m2 = a.constrain(M.of(['read']))
    expect([m1.counter, m2.counter]).toEqual([1, 2])
    b.receive(m1)
    b.receive(m2)
    expect(M.allows(b.state(), 'write')).toBe(false)
    expect(M.allows(b.state(), 'read')).toBe(true)
    expect(() => b.receive(m1)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })

  it('wire form round-trips and malformed sets are InvalidInput', () => {
    fc.assert(
      fc.property(caps, (a) => {
        expect(M.equals(M.decode(JSON.parse(JSON.stringify(M.encode(a)))), a)).toBe(true)
      }),
    )
    expect(() => M.decode({ rights: [1] })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })
})
