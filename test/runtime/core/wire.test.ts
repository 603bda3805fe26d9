import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Packr } from 'msgpackr'
import { decodeEnvelope, encodeEnvelope, type Envelope } from '../../../runtime/core/wire.js'
import { FrameTooLarge, MalformedFrame } from '../../../effects/errors.js'

const MAX = 64 * 1024
const base: Envelope = { v: 1, kind: 'step', from: 'peer-a', to: 'session', session: 's1', budgetMs: 1000, epoch: 2, payload: { n: 1, bytes: new Uint8Array([1, 2, 3]) } }

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
    const packr = new Packr({ useRecords: false })
    const withVersion = (value: unknown) => {
      const body = packr.pack(value)
      const frame = new Uint8Array(body.length + 1)
      frame[0] = 1
      frame.set(body, 1)
      return frame
    }
    expect(() => decodeEnvelope(withVersion({ v: 1, kind: 'x' }), MAX)).toThrow(MalformedFrame)
    expect(() => decodeEnvelope(withVersion({ ...base, extra: true }), MAX)).toThrow(MalformedFrame)
    expect(() => decodeEnvelope(withVersion('just a string'), MAX)).toThrow(MalformedFrame)
    expect(() => decodeEnvelope(new Uint8Array([1, 0xc1, 0xc1]), MAX)).toThrow(MalformedFrame)
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
