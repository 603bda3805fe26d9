// Causal delivery for operation-based types.

import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  createCmHandler,
  decodeCausalOp,
  encodeCausalOp,
  opCounter,
  opOrSet,
  VectorClock,
  type CausalOp,
  type CmType,
} from '../../../../runtime/crdt/lattices/index.js'

const replicas = ['a', 'b', 'c']

type Intent<S, Op> = (s: S) => Op

interface CmFixture<S, Op> {
  type: CmType<S, Op>
  intent: fc.Arbitrary<Intent<S, Op>>
}

const element = fc.constantFrom('x', 'y')
const cmFixtures: CmFixture<any, any>[] = [
  { type: opCounter, intent: fc.integer({ min: -3, max: 3 }).map((n) => () => ({ add: n })) },
  {
    type: opOrSet,
    intent: fc.tuple(fc.boolean(), element).map(
      ([add, e]) =>
        (s: any) =>
          add ? opOrSet.addOp(e) : opOrSet.removeOp(s, e),
    ),
  },
]

type Step = { kind: 'emit'; at: number; intent: Intent<any, any> } | { kind: 'deliver'; at: number; pick: number }

/** Replicas emitting ops and receiving each other's in arbitrary order, with duplicates. */
function causalHistory<S, Op>(fx: CmFixture<S, Op>) {
  const at = fc.nat(replicas.length - 1)
  const step: fc.Arbitrary<Step> = fc.oneof(
    fc.record({ kind: fc.constant('emit' as const), at, intent: fx.intent }),
    fc.record({ kind: fc.constant('deliver' as const), at, pick: fc.nat(1000) }),
  )
  return fc.array(step, { maxLength: 25, size: 'max' }).map((steps) => {
    const handlers = replicas.map((r) => createCmHandler(fx.type, r))
    const ops: CausalOp<Op>[] = []
    for (const st of steps) {
      const h = handlers[st.at]!
      if (st.kind === 'emit') ops.push(h.emit(st.intent(h.state())))
      else if (ops.length > 0) h.receive(ops[st.pick % ops.length]!)
    }
    return { handlers, ops }
  })
}

const deliverable = (op: CausalOp<unknown>, seen: VectorClock) => op.deps.get(op.origin) === seen.get(op.origin) && seen.dominates(op.deps)

for (const fx of cmFixtures) {
  describe(`${fx.type.name} causal delivery`, () => {
    it('CmRDT ops delivered in any causal-respecting order give one state', () => {
      fc.assert(
        fc.property(causalHistory(fx), fc.array(fc.nat(), { minLength: 30, maxLength: 30 }), ({ ops }, choices) => {
          // Reference: the emission order, which respects causality.
          let reference = fx.type.initial()
          for (const op of ops) reference = fx.type.apply(reference, op.op, op)
          // Another linear extension of the causal order, chosen at random.
          let pending = [...ops]
          let seen = VectorClock.empty
          let state = fx.type.initial()
          let i = 0
          while (pending.length > 0) {
            const ready = pending.filter((op) => deliverable(op, seen))
            const op = ready[(choices[i++ % choices.length] ?? 0) % ready.length]!
            state = fx.type.apply(state, op.op, op)
            seen = seen.with(op.origin, op.seq)
            pending = pending.filter((o) => o !== op)
          }
          expect(fx.type.equals(state, reference)).toBe(true)
        }),
      )
    })

    it('arrival in any order with duplicates: the buffer delivers causally, to a fixed point, once each', () => {
      fc.assert(
        fc.property(causalHistory(fx), fc.array(fc.nat()), ({ ops, handlers }, noise) => {
          // Arrival order: ops reversed-and-shuffled plus duplicates.
          const arrivals = [...ops].reverse()
          noise.forEach((n, i) => {
            if (arrivals.length === 0) return
            if (n % 3 === 0) arrivals.push(arrivals[n % arrivals.length]!)
            else {
              const j = i % arrivals.length
              const k = n % arrivals.length
              ;[arrivals[j], arrivals[k]] = [arrivals[k]!, arrivals[j]!]
            }
          })
          const receiver = createCmHandler(fx.type, 'z')
          const order: CausalOp<unknown>[] = []
          for (const op of arrivals) order.push(...receiver.receive(op).delivered)
          expect(receiver.pending()).toBe(0)
          expect(order.length).toBe(ops.length)
          let seen = VectorClock.empty
          for (const op of order) {
            expect(deliverable(op, seen)).toBe(true)
            seen = seen.with(op.origin, op.seq)
          }
          // Everyone who gets every op ends in one state.
          for (const h of handlers) for (const op of ops) h.receive(op)
          for (const h of handlers) expect(fx.type.equals(h.state(), receiver.state())).toBe(true)
        }),
      )
    })

    it('opsSince gives a peer exactly the ops it lacks, in an order it can deliver', () => {
      fc.assert(
        fc.property(causalHistory(fx), ({ handlers }) => {
          const [a, b] = handlers as [ReturnType<typeof createCmHandler<any, any>>, ReturnType<typeof createCmHandler<any, any>>]
          for (const op of a.opsSince(b.clock())) {
            const r = b.receive(op)
            expect(r.buffered).toBe(false)
          }
          expect(b.clock().dominates(a.clock())).toBe(true)
        }),
      )
    })
  })
}

for (const fx of cmFixtures) {
  describe(`${fx.type.name} log compaction`, () => {
    it('law: after folding the ops two replicas share into a snapshot, a third replica (behind it, with ops of its own beyond it) or a new one converges through snapshot and ops', () => {
      fc.assert(
        fc.property(causalHistory(fx), ({ handlers, ops }) => {
          const [a, b, c] = handlers as Array<ReturnType<typeof createCmHandler<any, any>>>
          const reference = createCmHandler(fx.type, 'ref')
          for (const op of ops) reference.receive(op)
          const before = a!.state()
          const folded = a!.compact(a!.clock().meet(b!.clock()))
          expect(fx.type.equals(a!.state(), before)).toBe(true)
          expect(a!.opsSince(VectorClock.empty).length).toBe(ops.filter((op) => a!.clock().get(op.origin) >= op.seq).length - folded)
          for (const target of [c!, createCmHandler(fx.type, 'fresh')]) {
            const snapshot = a!.snapshotFor(target.clock())
            const missing = a!.opsSince(target.clock())
            if (snapshot) target.adopt(snapshot)
            for (const op of missing) target.receive(op)
            // the target now holds everything a delivered, snapshot or not
            expect(target.clock().dominates(a!.clock())).toBe(true)
            for (const op of target.opsSince(a!.clock())) a!.receive(op)
          }
          // nothing was lost or counted twice: once every op arrives everywhere, every replica,
          // compacted, adopted or neither, is the replica that never compacted
          for (const h of [a!, b!, c!]) for (const op of ops) h.receive(op)
          for (const h of [a!, b!, c!]) {
            expect(h.pending()).toBe(0)
            expect(h.clock().equals(reference.clock())).toBe(true)
            expect(fx.type.equals(h.state(), reference.state())).toBe(true)
          }
        }),
      )
    })
  })
}

describe('compaction conflicts', () => {
  it("a snapshot that crosses this replica's own compaction is Conflict, state untouched", () => {
    const a = createCmHandler(opCounter, 'a')
    const b = createCmHandler(opCounter, 'b')
    a.emit({ add: 1 })
    b.emit({ add: 2 })
    // each folded an op the other never saw (membership views that disagreed)
    a.compact(VectorClock.of({ a: 1 }))
    b.compact(VectorClock.of({ b: 1 }))
    expect(() => a.adopt(b.snapshotFor(VectorClock.empty)!)).toThrow(expect.objectContaining({ code: 'CONFLICT' }))
    expect(a.state()).toBe(1)
    expect(a.clock().equals(VectorClock.of({ a: 1 }))).toBe(true)
  })
})

describe('causal buffer', () => {
  it('one arrival delivers a whole chain that was waiting on it (fixed point)', () => {
    const source = createCmHandler(opCounter, 'a')
    const ops = [source.emit({ add: 1 }), source.emit({ add: 2 }), source.emit({ add: 3 })]
    const sink = createCmHandler(opCounter, 'b')
    expect(sink.receive(ops[2]!).buffered).toBe(true)
    expect(sink.receive(ops[1]!).buffered).toBe(true)
    const receipt = sink.receive(ops[0]!)
    expect(receipt.delivered.map((o) => o.seq)).toEqual([1, 2, 3])
    expect(sink.state()).toBe(6)
    expect(sink.receive(ops[1]!).duplicate).toBe(true)
  })

  it('is bounded: a full buffer is LimitExceeded and the state is untouched', () => {
    const source = createCmHandler(opCounter, 'a')
    const ops = Array.from({ length: 4 }, () => source.emit({ add: 1 }))
    const sink = createCmHandler(opCounter, 'b', { maxBuffered: 2 })
    sink.receive(ops[1]!)
    sink.receive(ops[2]!)
    expect(() => sink.receive(ops[3]!)).toThrow(expect.objectContaining({ code: 'LIMIT_EXCEEDED' }))
    expect(sink.state()).toBe(0)
    expect(sink.receive(ops[0]!).delivered.length).toBe(3)
  })

  it('a remove delivered before the add it observed is held back (op OR-Set needs causal order)', () => {
    const a = createCmHandler(opOrSet, 'a')
    const add = a.emit(opOrSet.addOp('x'))
    const remove = a.emit(opOrSet.removeOp(a.state(), 'x'))
    const b = createCmHandler(opOrSet, 'b')
    b.receive(remove)
    b.receive(add)
    expect(opOrSet.values(b.state())).toEqual([])
  })

  it('causal ops round-trip through the wire and malformed ones are InvalidInput', () => {
    const a = createCmHandler(opOrSet, 'a')
    a.emit(opOrSet.addOp('x'))
    const op = a.emit(opOrSet.addOp('y'))
    const back = decodeCausalOp(opOrSet, JSON.parse(JSON.stringify(encodeCausalOp(opOrSet, op))))
    expect(back.opId).toBe(op.opId)
    expect(back.deps.equals(op.deps)).toBe(true)
    const wire = encodeCausalOp(opOrSet, op) as Record<string, unknown>
    for (const bad of [
      { ...wire, opId: 'a#9' },
      { ...wire, deps: { a: 'x' } },
      { ...wire, seq: 5 },
      { ...wire, op: { kind: 'nope' } },
    ]) {
      expect(() => decodeCausalOp(opOrSet, bad)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    }
  })
})
