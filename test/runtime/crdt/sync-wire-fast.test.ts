// The fast checks of the hot CRDT messages never accept what their zod schemas refuse, and
// accept the shapes a sync actually sends (so the fast path is the one taken).
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { z } from 'zod'
import { isGateReply, isGateRequest, isPushReply, isSyncRequest, isSyncResponse } from '../../../runtime/crdt/sync-wire-fast.js'
import { pushReplySchema, syncRequestSchema, syncResponseSchema } from '../../../runtime/crdt/sync-wire.js'
import { gateReplySchema, gateRequestSchema } from '../../../runtime/crdt/collection-gate.js'
import { isVectorClockWire, vectorClockSchema } from '../../../runtime/crdt/lattices/vector-clock.js'
import { oddValue, withProto } from '../../fixtures/fast-check-shapes.js'

const SEED = 20261202
const text = (max: number) => fc.oneof(fc.string({ maxLength: 8 }), fc.constant(''), fc.constant('x'.repeat(max)), fc.constant('x'.repeat(max + 1)))
const field = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 3, arbitrary: arb }, { weight: 1, arbitrary: oddValue })
const counter = fc.oneof(fc.nat(), fc.constant(-0), fc.constant(2 ** 53), fc.constant(Number.MAX_SAFE_INTEGER), fc.double(), fc.constant(-1))
const clock = fc.oneof(
  fc.dictionary(fc.oneof(fc.string({ minLength: 1, maxLength: 4 }), fc.constant(''), fc.constant('r'.repeat(257))), counter, { maxKeys: 4 }),
  oddValue,
)
const kind = fc.oneof(fc.constantFrom('cv', 'delta', 'cm', 'mv'), fc.constant('xx'))
const docEntry = fc.record(
  {
    name: field(text(256)),
    kind: field(kind),
    type: field(text(300)),
    version: clock,
    mark: field(text(64)),
    payload: fc.oneof(fc.uint8Array({ maxLength: 4 }), fc.constant(undefined), fc.constant({ a: 1 })),
    extra: fc.constant(true),
  },
  { requiredKeys: [] },
)
const docs = field(fc.array(docEntry, { maxLength: 3 }))

function agrees(check: (value: unknown) => boolean, schema: z.ZodType, arb: fc.Arbitrary<unknown>): void {
  fc.assert(
    fc.property(arb, (value) => {
      if (check(value)) expect(schema.safeParse(value).success).toBe(true)
    }),
    { seed: SEED, numRuns: 3_000 },
  )
}

describe('fast checks of CRDT messages accept a subset of their schemas', () => {
  it('sync requests, sync answers and push replies', () => {
    agrees(isSyncRequest, syncRequestSchema, withProto(fc.record({ all: field(fc.boolean()), docs, extra: fc.constant(1) }, { requiredKeys: [] })))
    agrees(isSyncResponse, syncResponseSchema, withProto(fc.record({ docs, extra: fc.constant(1) }, { requiredKeys: [] })))
    agrees(isPushReply, pushReplySchema, withProto(fc.record({ docs, extra: fc.constant(1) }, { requiredKeys: [] })))
  })

  it('gate requests and replies', () => {
    const body = fc.oneof(fc.constant(undefined), fc.constant({ all: true, docs: [] }), fc.constant(null))
    const request = fc.record(
      {
        collection: field(text(256)),
        capability: fc.oneof(fc.constant(undefined), fc.constant({ id: 'x' })),
        ref: field(text(128)),
        known: field(text(128)),
        body,
      },
      { requiredKeys: [] },
    )
    agrees(isGateRequest, gateRequestSchema, withProto(request))
    const reply = fc.record(
      { capability: fc.oneof(fc.constant(undefined), fc.constant({ id: 'x' })), ref: field(text(128)), body, extra: fc.constant(1) },
      { requiredKeys: [] },
    )
    agrees(isGateReply, gateReplySchema, withProto(reply))
  })

  it('vector clocks', () => {
    agrees(isVectorClockWire, vectorClockSchema, withProto(clock))
  })

  it('the shapes a steady-state sync sends take the fast path', () => {
    const version = { '1234567': 42, peerA: 3 }
    const request = { all: true, docs: [{ name: 'doc', kind: 'cv', type: 'yjs', version }] }
    const response = { docs: [{ name: 'doc', kind: 'cv', type: 'yjs', version, payload: new Uint8Array([0, 0]) }] }
    expect(isSyncRequest(request)).toBe(true)
    expect(isSyncResponse(response)).toBe(true)
    expect(isPushReply({ docs: [{ name: 'doc', kind: 'cv', type: 'yjs', version, mark: 'abc' }] })).toBe(true)
    expect(isGateRequest({ collection: 'crdt.default', ref: 'token-id', known: 'other-id', body: request })).toBe(true)
    expect(isGateRequest({ collection: 'crdt.default', capability: { id: 'x' }, body: request })).toBe(true)
    expect(isGateReply({ ref: 'token-id', body: response })).toBe(true)
    expect(isVectorClockWire(version)).toBe(true)
    // and refuse what the schemas refuse, such as unknown keys
    expect(isSyncRequest({ ...request, extra: 1 })).toBe(false)
    expect(isGateReply({ ref: '', body: response })).toBe(false)
  })
})
