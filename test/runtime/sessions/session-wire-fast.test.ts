// The fast checks of session messages and of the session input never accept what their zod
// schemas refuse, never accept what the schemas would change (so taking the value as it is equals
// parsing it), and accept the shapes a session actually sends (so the fast path is the one taken).
import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { z } from 'zod'
import { sessionInputSchema } from '../../../machines/session.js'
import { isCreateOptions, isInvitePayload, isInviteReply, isReportReply, isSessionInput, isStepPayload } from '../../../runtime/sessions/session-wire-fast.js'
import { oddValue, withProto } from '../../fixtures/fast-check-shapes.js'
import { createOptionsSchema, invitePayloadSchema, inviteReplySchema, reportReplySchema, stepPayloadSchema } from '../../../runtime/sessions/session-wire.js'

const SEED = 20261203
const field = <T>(arb: fc.Arbitrary<T>) => fc.oneof({ weight: 4, arbitrary: arb }, { weight: 1, arbitrary: oddValue })
const text = (max: number) => fc.oneof(fc.string({ maxLength: 6 }), fc.constant('x'.repeat(max)), fc.constant('x'.repeat(max + 1)))
/** A record whose keys may each be missing, plus an unknown key now and then. */
const record = (fields: Record<string, fc.Arbitrary<unknown>>) => withProto(fc.record({ ...fields, extra: fc.constant(1) }, { requiredKeys: [] }))

function agrees(check: (value: unknown) => boolean, schema: z.ZodType, arb: fc.Arbitrary<unknown>): number {
  let accepted = 0
  fc.assert(
    fc.property(arb, (value) => {
      if (!check(value)) return
      accepted++
      const parsed = schema.safeParse(value)
      expect(parsed.success).toBe(true)
      // taken as it is, the value must be what the schema gives
      expect(parsed.data).toEqual(value)
    }),
    { seed: SEED, numRuns: 3_000 },
  )
  return accepted
}

const peers = ['12D3KooWa', '12D3KooWb', '12D3KooWc']
/** The inputs a working 2-party session sends: a well-formed roster in which self and leader are. */
const wellFormedInput = fc.record(
  {
    sessionId: fc.string({ minLength: 1, maxLength: 32 }),
    sessionType: fc.constant('bench'),
    selfPeerId: fc.constantFrom(peers[0]!, peers[1]!),
    participants: fc.constant([
      { peerId: peers[0]!, role: 'client' },
      { peerId: peers[1]!, role: 'server' },
    ]),
    leaderPeerId: fc.constantFrom(peers[0]!, peers[1]!),
    createdAt: fc.integer({ min: 0, max: 1000 }),
    deadlineAt: fc.integer({ min: 1000, max: 2000 }),
    verdictGraceMs: fc.nat(),
    limits: fc.record({ maxParticipants: fc.integer({ min: 2, max: 64 }), maxMessageBytes: fc.integer({ min: 1, max: 1 << 20 }) }, { noNullPrototype: true }),
  },
  { noNullPrototype: true },
)

const INPUT_KEYS = ['sessionId', 'sessionType', 'selfPeerId', 'participants', 'leaderPeerId', 'createdAt', 'deadlineAt', 'verdictGraceMs', 'limits']
/** A well-formed input with one thing changed: a field odd or gone, a key too many, or a rule broken. */
const brokenInput = fc.tuple(wellFormedInput, fc.nat(15), fc.constantFrom(...INPUT_KEYS), oddValue).map(([input, how, key, value]) => {
  const broken: Record<string, unknown> = { ...input, participants: input.participants.map((p) => ({ ...p })), limits: { ...input.limits } }
  const participants = broken.participants as Array<Record<string, unknown>>
  switch (how) {
    case 0:
      broken[key] = value
      break
    case 1:
      delete broken[key]
      break
    case 2:
      broken.extra = 1
      break
    case 3:
      participants[1]!.role = participants[0]!.role
      break
    case 4:
      participants[1]!.peerId = participants[0]!.peerId
      break
    case 5:
      broken.selfPeerId = peers[2]
      break
    case 6:
      broken.leaderPeerId = peers[2]
      break
    case 7:
      broken.deadlineAt = input.createdAt - 1
      break
    case 8:
      ;(broken.limits as Record<string, unknown>).maxParticipants = 1
      break
    case 9:
      ;(broken.limits as Record<string, unknown>)[key === 'limits' ? 'maxMessageBytes' : 'maxParticipants'] = value
      break
    case 10:
      participants[0]![key === 'participants' ? 'role' : 'peerId'] = value
      break
    case 11:
      participants.push({ peerId: peers[2], role: 'third', extra: 1 })
      break
    case 12:
      broken.participants = []
      break
    default:
      break
  }
  return broken
})

describe('fast checks of session messages accept a subset of their schemas', () => {
  it('the session input, its refinements included (roster, leader, limits, times)', () => {
    const accepted = agrees(isSessionInput, sessionInputSchema, withProto(brokenInput))
    expect(accepted).toBeGreaterThan(100)
  })

  it('step messages, invites and their answers, report answers and create options', () => {
    const step = record({
      sessionId: field(text(128)),
      protocol: field(text(64)),
      step: field(fc.constantFrom(0, 1, 2 ** 53)),
      payload: fc.oneof(fc.constant({ n: 1 }), fc.constant(undefined)),
      reportsDone: field(fc.constantFrom(true, false)),
    })
    agrees(isStepPayload, stepPayloadSchema, step)
    agrees(isInvitePayload, invitePayloadSchema, record({ input: fc.constant({ any: 1 }), protocol: field(text(64)) }))
    agrees(isInviteReply, inviteReplySchema, fc.oneof(fc.constant(undefined), record({ joined: field(text(64)) })))
    const verdict = fc.oneof(
      fc.constant(null),
      record({ kind: field(fc.constantFrom('success', 'failure', 'timeout', 'cancelled', 'done')), reason: field(text(1024)) }),
    )
    agrees(isReportReply, reportReplySchema, record({ verdict: field(verdict) }))
    agrees(
      isCreateOptions,
      createOptionsSchema,
      record({ timeoutMs: field(fc.constantFrom(1, 0.5, 7 * 24 * 3600_000, 7 * 24 * 3600_000 + 1)), protocol: field(text(64)) }),
    )
  })

  it('takes the fast path for what a session sends', () => {
    fc.assert(
      fc.property(wellFormedInput, (input) => {
        if (input.deadlineAt >= input.createdAt) expect(isSessionInput(input)).toBe(true)
      }),
      { seed: SEED, numRuns: 200 },
    )
    expect(isStepPayload({ sessionId: 's1', protocol: 'bench-ping-pong', step: 1, payload: { n: 2 }, reportsDone: true })).toBe(true)
    expect(isInvitePayload({ input: {}, protocol: 'bench-ping-pong' })).toBe(true)
    expect(isInviteReply({ joined: 'server' })).toBe(true)
    expect(isReportReply({ verdict: { kind: 'success' } })).toBe(true)
    expect(isReportReply({ verdict: null })).toBe(true)
    expect(isCreateOptions({ timeoutMs: 10_000, protocol: 'bench-ping-pong' })).toBe(true)
  })
})
