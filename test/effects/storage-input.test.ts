// The storage checks take fast paths for plain keys, plain operations and flat values; these
// properties hold them to the full (zod) checks on generated inputs, good and bad: the same
// normalized key and bytes, the same error (code, message, details) for everything else.
import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { checkBatch, checkKey, checkValue, fullChecks } from '../../effects/storage/storage-input.js'

/** What a check did: its result, or the error it threw, in a comparable form. */
function outcome<T>(check: () => T, view: (result: T) => unknown): unknown {
  try {
    return { ok: view(check()) }
  } catch (error) {
    const e = error as { code?: unknown; message?: unknown; details?: unknown }
    return { error: { code: e.code, message: e.message, details: e.details } }
  }
}

const keyView = (k: { key: unknown; bytes: Uint8Array }) => ({ key: k.key, bytes: [...k.bytes] })
const batchView = (ops: Array<{ type: string; namespace: string; key: { key: unknown; bytes: Uint8Array }; value?: unknown }>) =>
  ops.map((op) => ({ ...op, key: keyView(op.key) }))

// Code units from the whole BMP, so control characters and lone surrogates turn up.
const anyUnit = fc.integer({ min: 0, max: 0xffff }).map((c) => String.fromCharCode(c))
const keyText = fc.oneof(
  fc.string({ maxLength: 8 }),
  fc.string({ unit: anyUnit, maxLength: 6 }),
  fc.string({ unit: 'grapheme', maxLength: 6 }),
  // around the fast path's length bound and the 1978-byte key limit, in 1-, 3- and 4-byte characters
  fc
    .tuple(fc.constantFrom('k', '€', '😀'), fc.oneof(fc.integer({ min: 640, max: 700 }), fc.integer({ min: 320, max: 2000 })))
    .map(([c, n]) => c.repeat(Math.ceil(n / c.length))),
)
const keyNumber = fc.oneof(fc.double(), fc.constantFrom(-0, 0, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_VALUE))
const keyPart = fc.oneof(keyText, keyNumber)
const anyKey: fc.Arbitrary<unknown> = fc.oneof(
  keyPart,
  fc.array(keyPart, { maxLength: 5 }),
  fc.array(fc.oneof(keyPart, fc.array(keyPart, { maxLength: 2 }), fc.boolean(), fc.constant(null)), { maxLength: 3 }),
  fc.constantFrom(undefined, null, true, {}, new Uint8Array(2)),
)
const bytes = fc.integer({ min: 0, max: 300 }).map((n) => new Uint8Array(n))
const flatItem = fc.oneof(fc.string({ unit: anyUnit, maxLength: 40 }), fc.double(), fc.boolean(), fc.constant(null), fc.constant(undefined), bytes)
const anyValue: fc.Arbitrary<unknown> = fc.oneof(
  flatItem,
  fc.array(flatItem, { maxLength: 6 }),
  fc.constant(undefined),
  fc.anything({ maxDepth: 2 }),
  fc.constantFrom(() => 1, Symbol('s'), [Symbol('s')], new Date(0), new Map([[1, 2]])),
  // the same bytes twice: counted once in full, then as a repeat
  bytes.map((b) => [b, b, 1]),
)
const anyOp: fc.Arbitrary<unknown> = fc.oneof(
  fc.record(
    {
      type: fc.constantFrom('put', 'delete', 'get'),
      namespace: fc.constantFrom('ns', 'ns.other', 'bad name', '', 'n'.repeat(65)),
      key: anyKey,
      value: anyValue,
    },
    { requiredKeys: ['type'] },
  ),
  fc.constantFrom(
    null,
    'put',
    [],
    new (class Op {
      type = 'put'
      namespace = 'ns'
      key = 'k'
      value = 1
    })(),
  ),
)

describe('storage input fast paths', () => {
  it('checkKey agrees with the full key check', () => {
    fc.assert(
      fc.property(anyKey, (key) => {
        expect(outcome(() => checkKey(key), keyView)).toEqual(outcome(() => fullChecks.key(key), keyView))
      }),
      { numRuns: 300 },
    )
  })

  it('checkValue agrees with the full size estimate', () => {
    fc.assert(
      fc.property(anyValue, fc.integer({ min: 1, max: 400 }), (value, max) => {
        expect(
          outcome(
            () => checkValue(value, max),
            () => 'ok',
          ),
        ).toEqual(
          outcome(
            () => fullChecks.value(value, max),
            () => 'ok',
          ),
        )
      }),
      { numRuns: 300 },
    )
  })

  it('checkBatch agrees with the full per-operation check', () => {
    fc.assert(
      fc.property(fc.array(anyOp, { maxLength: 4 }), fc.integer({ min: 8, max: 400 }), (ops, max) => {
        expect(outcome(() => checkBatch(ops as never, max), batchView)).toEqual(outcome(() => fullChecks.batch(ops, max), batchView))
      }),
      { numRuns: 300 },
    )
  })

  it('normalizes plain keys as the full check does', () => {
    expect(checkKey(-0).key).toBe(0)
    expect(Object.is(checkKey(-0).key, 0)).toBe(true)
    expect(checkKey(['only']).key).toBe('only')
    expect(checkKey(['a', -0]).key).toEqual(['a', 0])
    expect(() => checkKey([['nested']])).toThrow(/invalid storage key/)
    expect(() => checkKey('€'.repeat(700))).toThrow(/exceeds 1978 bytes/)
    expect([...checkKey('€'.repeat(659)).bytes].length).toBe(1977)
  })
})
