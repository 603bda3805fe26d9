// The fast checks in front of the LWW register's and the PN counter's wire schemas (and the JSON
// value schema inside the register's) never accept what the schemas refuse, return what the schemas would (equal content), and
// accept the states a pull actually carries, so the fast path is the one taken.
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { z } from 'zod'
import { isJsonValue, jsonValueSchema } from '../../../../runtime/crdt/lattices/lattice-wire.js'
import { isLWWWire, lwwRegister, lwwWireSchema } from '../../../../runtime/crdt/lattices/lww-register.js'
import { isPNCounterWire, pnCounter, pnCounterWireSchema } from '../../../../runtime/crdt/lattices/pn-counter.js'
import { oddValue, withProto } from '../../../fixtures/fast-check-shapes.js'

const SEED = 20261203

/** Whatever `check` accepts, `schema` accepts too, and gives back equal content. */
function agrees(check: (value: unknown) => boolean, schema: z.ZodType, arb: fc.Arbitrary<unknown>): void {
  fc.assert(
    fc.property(arb, (value) => {
      if (!check(value)) return
      const parsed = schema.safeParse(value)
      expect(parsed.success).toBe(true)
      expect(parsed.data).toStrictEqual(value)
    }),
    { seed: SEED, numRuns: 3_000 },
  )
}

/** JSON-like values with the odd ones mixed in at every level: holes, bytes, symbols, prototypes, `__proto__` keys. */
const { value: jsonish } = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small' },
    { weight: 12, arbitrary: fc.jsonValue({ maxDepth: 2 }) },
    oddValue,
    fc.constantFrom(-0, Number.NEGATIVE_INFINITY, 10n, new Uint8Array([1]), new Date(0), Symbol('s')),
    fc.array(tie('value'), { maxLength: 3 }),
    fc.array(tie('value'), { maxLength: 3 }).map((items) => Object.assign(new Array(items.length + 1), items)),
    withProto(fc.dictionary(fc.string({ maxLength: 3 }), tie('value'), { maxKeys: 3 })),
    fc.jsonValue({ maxDepth: 1 }).map((inner) => JSON.parse(`{"__proto__": ${JSON.stringify(inner)}}`)),
    tie('value').map((inner) => ({ a: inner, [Symbol('k')]: 1 })),
  ),
}))

const replica = fc.string({ minLength: 1, maxLength: 4 })
const validWire = fc
  .record({
    entry: fc.option(fc.record({ value: fc.jsonValue({ maxDepth: 2 }), ts: fc.record({ wall: fc.nat(), logical: fc.nat(), replica }) }), { nil: null }),
    clock: fc.dictionary(replica, fc.nat(), { maxKeys: 3 }),
  })
  // as MessagePack decodes it: plain objects (fast-check makes some with a null prototype)
  .map((w) => JSON.parse(JSON.stringify(w)) as unknown)
type Wire = { entry: { value: unknown; ts: Record<string, unknown> } | null; clock: Record<string, unknown> }

/** One rule broken at a time (or none): each of these alone makes the schema refuse the state. */
const breaks: Array<(w: Wire, odd: unknown) => unknown> = [
  (w, odd) => ({ ...w, entry: odd }),
  (w, odd) => ({ ...w, clock: odd }),
  (w) => ({ ...w, extra: 1 }),
  (w) => ({ clock: w.clock }),
  (w) => Object.assign(Object.create({ inherited: 1 }), w),
  (w) => ({ ...w, clock: { ...w.clock, '': 1 } }),
  (w) => ({ ...w, clock: { ...w.clock, ['r'.repeat(257)]: 1 } }),
  (w, odd) => ({ ...w, clock: { ...w.clock, r: odd } }),
  (w, odd) => (w.entry ? { ...w, entry: { ...w.entry, value: odd } } : w),
  (w) => (w.entry ? { ...w, entry: { ts: w.entry.ts } } : w),
  (w) => (w.entry ? { ...w, entry: { ...w.entry, extra: 1 } } : w),
  (w, odd) => (w.entry ? { ...w, entry: { ...w.entry, ts: odd } } : w),
  (w, odd) => (w.entry ? { ...w, entry: { ...w.entry, ts: { ...w.entry.ts, wall: odd } } } : w),
  (w, odd) => (w.entry ? { ...w, entry: { ...w.entry, ts: { ...w.entry.ts, logical: odd } } } : w),
  (w) => (w.entry ? { ...w, entry: { ...w.entry, ts: { ...w.entry.ts, logical: 2 ** 53 } } } : w),
  (w, odd) => (w.entry ? { ...w, entry: { ...w.entry, ts: { ...w.entry.ts, replica: odd } } } : w),
  (w) => (w.entry ? { ...w, entry: { ...w.entry, ts: { ...w.entry.ts, replica: 'r'.repeat(257) } } } : w),
  (w) => (w.entry ? { ...w, entry: { ...w.entry, ts: { ...w.entry.ts, extra: 1 } } } : w),
  (w) => (w.entry ? { ...w, entry: { ...w.entry, ts: Object.assign(Object.create({ x: 1 }), w.entry.ts) } } : w),
]
const wire = fc
  .tuple(validWire, fc.nat(breaks.length * 2 - 1), fc.oneof(oddValue, jsonish))
  .map(([w, which, odd]) => (which < breaks.length ? breaks[which]!(w as Wire, odd) : w))

const validCounter = fc
  .record({ p: fc.dictionary(replica, fc.nat(), { maxKeys: 3 }), n: fc.dictionary(replica, fc.nat(), { maxKeys: 3 }) })
  .map((w) => JSON.parse(JSON.stringify(w)) as { p: Record<string, unknown>; n: Record<string, unknown> })
const counterBreaks: Array<(w: { p: Record<string, unknown>; n: Record<string, unknown> }, odd: unknown) => unknown> = [
  (w, odd) => ({ ...w, p: odd }),
  (w, odd) => ({ ...w, n: odd }),
  (w) => ({ p: w.p }),
  (w) => ({ ...w, extra: 1 }),
  (w, odd) => ({ ...w, n: { ...w.n, r: odd } }),
  (w) => ({ ...w, p: { ...w.p, ['r'.repeat(257)]: 1 } }),
  (w) => Object.assign(Object.create({ inherited: 1 }), w),
]
const counterWire = fc
  .tuple(validCounter, fc.nat(counterBreaks.length * 2 - 1), oddValue)
  .map(([w, which, odd]) => (which < counterBreaks.length ? counterBreaks[which]!(w, odd) : w))

describe('fast checks of LWW register and PN counter states accept a subset of their schemas', () => {
  it('PN counter states on the wire', () => agrees(isPNCounterWire, pnCounterWireSchema, counterWire))

  it('take the fast path for what a counter sends', () => {
    const state = pnCounter.increment(pnCounter.bottom(), 'replica-a', 3)
    expect(isPNCounterWire(pnCounter.encode(state))).toBe(true)
    expect(pnCounter.equals(pnCounter.decode(pnCounter.encode(state)), state)).toBe(true)
  })

  it('JSON values', () => agrees(isJsonValue, jsonValueSchema, jsonish))

  it('register states on the wire', () => agrees(isLWWWire, lwwWireSchema, wire))

  it('take the fast path for what a register sends', () => {
    let state = lwwRegister.bottom()
    expect(isLWWWire(lwwRegister.encode(state))).toBe(true)
    state = lwwRegister.set(state, 'replica-a', { items: [1, 'two', null, true, { deep: [] }] }, 1_700_000_000_000)
    state = lwwRegister.set(state, 'replica-a', 3.5, 1_700_000_000_000)
    const wireForm = lwwRegister.encode(state)
    expect(isLWWWire(wireForm)).toBe(true)
    expect(lwwRegister.equals(lwwRegister.decode(wireForm), state)).toBe(true)
  })
})
