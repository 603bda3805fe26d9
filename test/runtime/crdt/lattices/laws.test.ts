// Semilattice laws for every shipped state-based type, on reachable states (see histories.ts).

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { fixtures } from './fixtures.js'
import { history, statesFrom } from './histories.js'

for (const fx of fixtures) {
  const T = fx.type
  describe(`${T.name} laws`, () => {
    it('join is associative', () => {
      fc.assert(
        fc.property(statesFrom(fx, 3), ({ states: [a, b, c] }) => {
          expect(T.equals(T.join(T.join(a, b), c), T.join(a, T.join(b, c)))).toBe(true)
        }),
      )
    })

    it('join is commutative', () => {
      fc.assert(
        fc.property(statesFrom(fx, 2), ({ states: [a, b] }) => {
          expect(T.equals(T.join(a, b), T.join(b, a))).toBe(true)
        }),
      )
    })

    it('join is idempotent', () => {
      fc.assert(
        fc.property(statesFrom(fx, 2), ({ states: [a, b] }) => {
          expect(T.equals(T.join(a, a), a)).toBe(true)
          const ab = T.join(a, b)
          expect(T.equals(T.join(ab, b), ab)).toBe(true)
        }),
      )
    })

    it('bottom is the identity of join', () => {
      fc.assert(
        fc.property(statesFrom(fx, 1), ({ states: [a] }) => {
          expect(T.equals(T.join(T.bottom(), a), a)).toBe(true)
          expect(T.isBottom(T.bottom())).toBe(true)
        }),
      )
    })

    it('deltas joined (in any order, from bottom) equal the state', () => {
      fc.assert(
        fc.property(history(fx), fc.array(fc.nat()), (h, shuffle) => {
          for (const { state, absorbed } of h.finals) {
            const order = [...absorbed]
            shuffle.forEach((r, i) => {
              if (order.length < 2) return
              const j = i % order.length
              const k = r % order.length
              ;[order[j], order[k]] = [order[k]!, order[j]!]
            })
            const joined = order.reduce((acc, d) => T.join(acc, h.deltas[d]), T.bottom())
            expect(T.equals(joined, state)).toBe(true)
          }
        }),
      )
    })

    it('missingFor applied to the remote gives the join', () => {
      fc.assert(
        fc.property(statesFrom(fx, 2), ({ h, states }) => {
          const pairs: [unknown, unknown][] = [[states[0], states[1]]]
          for (const x of h.finals) for (const y of h.finals) pairs.push([x.state, y.state])
          for (const [local, remote] of pairs) {
            const missing = T.missingFor(local, T.version(remote))
            expect(T.equals(T.join(remote, missing), T.join(remote, local))).toBe(true)
          }
        }),
      )
    })

    it('missingFor sends nothing to a peer that has everything', () => {
      // Yjs always re-sends its (unversioned) delete set; what matters is that it carries no structs.
      const nothing = (m: unknown) => (T.name === 'yjs' ? T.version(m).size === 0 : T.isBottom(m))
      fc.assert(
        fc.property(statesFrom(fx, 2), ({ states: [local, remote] }) => {
          const ahead = T.join(local, remote)
          // A context with gaps (deltas that arrived out of order) cannot be said by a version
          // vector; such a peer is sent the part above its prefix until the gap fills.
          fc.pre(nothing(T.missingFor(ahead, T.version(ahead))))
          expect(nothing(T.missingFor(local, T.version(ahead)))).toBe(true)
        }),
      )
    })

    it('version of a join dominates both versions', () => {
      fc.assert(
        fc.property(statesFrom(fx, 2), ({ states: [a, b] }) => {
          const v = T.version(T.join(a, b))
          expect(v.dominates(T.version(a)) && v.dominates(T.version(b))).toBe(true)
        }),
      )
    })

    if (T.absorb !== undefined)
      it('in-place absorb equals join and never changes a state it did not own', () => {
        fc.assert(
          fc.property(statesFrom(fx, 3), ({ states: [a, b, c] }) => {
            const snapshot = T.encode(a)
            let owned = T.own!(a)
            owned = T.absorb!(owned, b)
            owned = T.absorb!(owned, c)
            expect(T.equals(owned, T.join(T.join(a, b), c))).toBe(true)
            expect(T.equals(T.decode(snapshot), a)).toBe(true)
            expect(T.encode(a)).toEqual(snapshot)
          }),
        )
      })

    it('wire encoding round-trips', () => {
      fc.assert(
        fc.property(statesFrom(fx, 1), ({ states: [a] }) => {
          const wire = T.encode(a)
          const carried = wire instanceof Uint8Array ? wire : JSON.parse(JSON.stringify(wire))
          expect(T.equals(T.decode(carried), a)).toBe(true)
        }),
      )
    })
  })
}
