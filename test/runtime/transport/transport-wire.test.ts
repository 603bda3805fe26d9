// The transport payloads: the fast check of `data` accepts exactly what its schema accepts.
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { MalformedFrame } from '../../../effects/errors.js'
import { parseTransportPayload, transportPayloads } from '../../../runtime/transport/transport-wire.js'

describe('transport payloads', () => {
  it('data: the fast check never lets through what the schema refuses', () => {
    const text = (max: number) => fc.oneof(fc.string({ maxLength: max + 2 }), fc.constant(''), fc.constant('x'.repeat(max)), fc.constant('x'.repeat(max + 1)))
    const field = <T>(arb: fc.Arbitrary<T>) => fc.oneof(arb, fc.constant(undefined), fc.constant(null), fc.constant(1), fc.constant('1'))
    const data = fc.record(
      {
        channelId: field(text(256)),
        key: field(text(256)),
        epoch: field(fc.oneof(fc.integer(), fc.double(), fc.constant(-0), fc.constant(2 ** 53), fc.constant(-1))),
        kind: field(text(64)),
        body: field(fc.oneof(fc.uint8Array({ maxLength: 8 }), fc.constant(Buffer.from([1])), fc.constant([1, 2]))),
        extra: fc.constant(true),
      },
      { requiredKeys: [] },
    )
    fc.assert(
      fc.property(data, (value) => {
        const expected = transportPayloads.data.safeParse(value)
        let accepted: unknown
        try {
          accepted = parseTransportPayload('data', value)
        } catch (error) {
          expect(error).toBeInstanceOf(MalformedFrame)
        }
        expect(accepted !== undefined).toBe(expected.success)
        if (accepted !== undefined) expect(accepted).toEqual(expected.data)
      }),
      { numRuns: 2_000 },
    )
  })
})
