// What session peers say to each other on `/aura/session/1.0.0` (see session-manager.ts for the
// conversation), and what the application passes in: each message's zod schema, which is the
// authority, and in session-wire-fast.ts a fast check of the shape each takes on a working link.
// Every message of a 2-party session went through zod before; on a runtime doing other work too
// (shared code paths, megamorphic there), each parse cost 5-15 µs, about 3% of the session.

import { z } from 'zod'
import { proposalSchema, verdictSchema } from '../../machines/session.js'

const roleField = z.string().min(1).max(64)
const sessionIdField = { sessionId: z.string().min(1).max(128) }

export const invitePayloadSchema = z.object({ input: z.unknown(), protocol: z.string().max(64).optional() }).strict()
/** The invitee's answer: with autoJoin it has joined, in this role (the leader records the join). */
export const inviteReplySchema = z.object({ joined: roleField }).strict().optional()
export const joinPayloadSchema = z.object({ ...sessionIdField, role: roleField }).strict()
export const stepPayloadSchema = z
  .object({
    ...sessionIdField,
    protocol: z.string().min(1).max(64),
    step: z.number().int().nonnegative(),
    payload: z.unknown(),
    reportsDone: z.literal(true).optional(),
  })
  .strict()
export const reportPayloadSchema = proposalSchema.extend(sessionIdField).strict()
export const reportReplySchema = z.object({ verdict: verdictSchema.nullable() }).strict()
export const verdictPayloadSchema = verdictSchema.extend(sessionIdField).strict()
export const createOptionsSchema = z
  .object({
    timeoutMs: z
      .number()
      .positive()
      .finite()
      .max(7 * 24 * 3600_000)
      .optional(),
    protocol: z.string().min(1).max(64).optional(),
  })
  .strict()
/** Just enough of a session input to count its roster before the whole input is checked. */
export const rosterSizeSchema = z.object({ participants: z.array(z.unknown()), limits: z.object({ maxParticipants: z.number() }).partial().optional() })
