// Fast checks of the session messages a session sends on a working link, and of the session
// input (the roster, times and limits that travel in the invite). Each accepts a subset of what
// its zod schema accepts, and only values the schema would pass unchanged: plain objects with
// the schema's keys and no others, optional ones absent rather than undefined, every field as the
// schema requires it. Whatever a check does not accept goes to the schema, which stays the
// authority and gives the issues. test/runtime/sessions/session-wire-fast.test.ts checks, with
// fast-check, that each accepts nothing its schema refuses or would change.

import { hasKeys, isPlainObject, isText } from '../core/plain-values.js'

const isCount = (value: unknown): value is number => Number.isSafeInteger(value) && (value as number) >= 1

const INPUT_KEYS = ['sessionId', 'sessionType', 'selfPeerId', 'participants', 'leaderPeerId', 'createdAt', 'deadlineAt', 'verdictGraceMs', 'limits'] as const
const PARTICIPANT_KEYS = ['peerId', 'role'] as const
const LIMIT_KEYS = ['maxParticipants', 'maxMessageBytes'] as const

/** machines/session.ts sessionInputSchema, its refinements included. */
export function isSessionInput(value: unknown): boolean {
  if (!isPlainObject(value) || !hasKeys(value, INPUT_KEYS)) return false
  const { sessionId, sessionType, selfPeerId, participants, leaderPeerId, createdAt, deadlineAt, verdictGraceMs, limits } = value
  if (!isText(sessionId, 1) || !isText(sessionType, 1) || !isText(selfPeerId, 1) || !isText(leaderPeerId, 1)) return false
  if (!Number.isFinite(createdAt) || !Number.isFinite(deadlineAt) || (deadlineAt as number) < (createdAt as number)) return false
  if (!Number.isFinite(verdictGraceMs) || (verdictGraceMs as number) < 0) return false
  if (!isPlainObject(limits) || !hasKeys(limits, LIMIT_KEYS) || !isCount(limits.maxParticipants) || !isCount(limits.maxMessageBytes)) return false
  if (!Array.isArray(participants) || participants.length < 1 || participants.length > limits.maxParticipants) return false
  let hasSelf = false
  let hasLeader = false
  for (let i = 0; i < participants.length; i++) {
    const p: unknown = participants[i]
    if (!isPlainObject(p) || !hasKeys(p, PARTICIPANT_KEYS) || !isText(p.peerId, 1) || !isText(p.role, 1)) return false
    for (let j = 0; j < i; j++) {
      const q = participants[j] as { peerId: string; role: string }
      if (q.peerId === p.peerId || q.role === p.role) return false
    }
    if (p.peerId === selfPeerId) hasSelf = true
    if (p.peerId === leaderPeerId) hasLeader = true
  }
  return hasSelf && hasLeader
}

const STEP_KEYS = ['sessionId', 'protocol', 'step', 'payload'] as const
const STEP_OPTIONAL = ['reportsDone'] as const

/** session-wire.ts stepPayloadSchema. */
export function isStepPayload(value: unknown): boolean {
  if (!isPlainObject(value) || !hasKeys(value, STEP_KEYS, STEP_OPTIONAL)) return false
  if (!isText(value.sessionId, 1, 128) || !isText(value.protocol, 1, 64)) return false
  if (!Number.isSafeInteger(value.step) || (value.step as number) < 0) return false
  return value.reportsDone === undefined || value.reportsDone === true
}

/** session-wire.ts invitePayloadSchema (the input in it has its own check). */
export function isInvitePayload(value: unknown): boolean {
  return isPlainObject(value) && hasKeys(value, ['input'], ['protocol']) && (value.protocol === undefined || isText(value.protocol, 0, 64))
}

/** session-wire.ts inviteReplySchema. */
export function isInviteReply(value: unknown): boolean {
  return value === undefined || (isPlainObject(value) && hasKeys(value, ['joined']) && isText(value.joined, 1, 64))
}

const VERDICT_KINDS: readonly unknown[] = ['success', 'failure', 'timeout', 'cancelled']

/** session-wire.ts reportReplySchema: { verdict: null | { kind, reason? } }. */
export function isReportReply(value: unknown): boolean {
  if (!isPlainObject(value) || !hasKeys(value, ['verdict'])) return false
  const verdict = value.verdict
  if (verdict === null) return true
  return (
    isPlainObject(verdict) &&
    hasKeys(verdict, ['kind'], ['reason']) &&
    VERDICT_KINDS.includes(verdict.kind) &&
    (verdict.reason === undefined || isText(verdict.reason, 0, 1024))
  )
}

const WEEK_MS = 7 * 24 * 3600_000

/** session-wire.ts createOptionsSchema. */
export function isCreateOptions(value: unknown): boolean {
  if (!isPlainObject(value) || !hasKeys(value, [], ['timeoutMs', 'protocol'])) return false
  const { timeoutMs, protocol } = value
  if (timeoutMs !== undefined && !(typeof timeoutMs === 'number' && timeoutMs > 0 && timeoutMs <= WEEK_MS)) return false
  return protocol === undefined || isText(protocol, 1, 64)
}
