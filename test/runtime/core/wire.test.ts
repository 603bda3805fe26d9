import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { decodeEnvelope, encodeEnvelope, envelopeSchema, type Envelope } from '../../../runtime/core/wire.js'
import { FrameTooLarge, MalformedFrame } from '../../../effects/errors.js'

const MAX = 64 * 1024
const packr = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })

/** Any value as a version-1 frame, whether or not it is a valid envelope. */
function withVersion(value: unknown): Uint8Array {
  const body = packr.pack(value)
  const frame = new Uint8Array(body.length + 1)
  frame[0] = 1
  frame.set(body, 1)
  return frame
}

const base: Envelope = {
  v: 1,
  kind: 'step',
  from: 'peer-a',
  to: 'session',
  session: 's1',
  budgetMs: 1000,
  epoch: 2,
  payload: { n: 1, bytes: new Uint8Array([1, 2, 3]) },
}

describe('wire codec', () => {
  it('round-trips an envelope, keeping binary payloads binary', () => {
    const decoded = decodeEnvelope(encodeEnvelope(base, MAX), MAX)
    expect(decoded).toEqual(base)
    expect((decoded.payload as { bytes: Uint8Array }).bytes).toBeInstanceOf(Uint8Array)
  })

  it('round-trip law: decode(encode(e)) equals e for any JSON-like payload', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1, maxLength: 20 }), fc.jsonValue(), (kind, payload) => {
        const envelope: Envelope = { v: 1, kind, from: 'p', to: 't', payload }
        expect(decodeEnvelope(encodeEnvelope(envelope, MAX), MAX)).toEqual(JSON.parse(JSON.stringify(envelope)))
      }),
    )
  })

  it('rejects an oversized frame on encode and on decode', () => {
    const big = { ...base, payload: new Uint8Array(MAX) }
    expect(() => encodeEnvelope(big, MAX)).toThrow(FrameTooLarge)
    expect(() => decodeEnvelope(new Uint8Array(MAX + 1), MAX)).toThrow(FrameTooLarge)
  })

  it('rejects garbage, a wrong version byte and envelopes that fail the schema', () => {
    expect(() => decodeEnvelope(new Uint8Array([1]), MAX)).toThrow(MalformedFrame)
    expect(() => decodeEnvelope(new Uint8Array([9, 1, 2]), MAX)).toThrow(/version/)
    expect(() => decodeEnvelope(withVersion({ v: 1, kind: 'x' }), MAX)).toThrow(MalformedFrame)
    expect(() => decodeEnvelope(withVersion({ ...base, extra: true }), MAX)).toThrow(MalformedFrame)
    expect(() => decodeEnvelope(withVersion('just a string'), MAX)).toThrow(MalformedFrame)
    expect(() => decodeEnvelope(new Uint8Array([1, 0xc1, 0xc1]), MAX)).toThrow(MalformedFrame)
  })

  it('accepts exactly what the schema accepts (the fast check never lets more through)', () => {
    const text = (max: number) => fc.oneof(fc.string({ maxLength: max + 2 }), fc.constant(''), fc.constant('x'.repeat(max)), fc.constant('x'.repeat(max + 1)))
    const number = fc.oneof(fc.integer(), fc.double(), fc.constant(-0), fc.constant(2 ** 53), fc.constant(-1), fc.constant(0.5))
    const field = <T>(arb: fc.Arbitrary<T>) => fc.oneof(arb, fc.constant(undefined), fc.constant(null), fc.constant(1), fc.constant('1'))
    const envelope = fc.record(
      {
        v: fc.oneof(fc.constant(1), fc.constant(2), fc.constant('1')),
        kind: field(text(64)),
        from: field(text(128)),
        to: field(text(256)),
        id: field(text(128)),
        session: field(text(128)),
        budgetMs: field(number),
        epoch: field(number),
        payload: fc.jsonValue(),
        extra: fc.constant(true),
      },
      { requiredKeys: ['v', 'payload'] },
    )
    fc.assert(
      fc.property(envelope, (value) => {
        const frame = withVersion(value)
        const expected = envelopeSchema.safeParse(packr.unpack(frame.subarray(1)))
        let accepted: Envelope | undefined
        try {
          accepted = decodeEnvelope(frame, MAX)
        } catch (error) {
          expect(error).toBeInstanceOf(MalformedFrame)
        }
        expect(accepted !== undefined).toBe(expected.success)
        if (accepted !== undefined) expect(accepted).toEqual(expected.data)
      }),
      { numRuns: 2_000 },
    )
  })

  it('never throws anything but a typed error on arbitrary bytes', () => {
    fc.assert(
      fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
        try {
          decodeEnvelope(bytes, MAX)
        } catch (error) {
          expect(error).toBeInstanceOf(MalformedFrame)
        }
      }),
    )
  })
})
