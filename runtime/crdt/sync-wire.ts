// Messages of the 'crdt' family (router kinds 'sync', 'push', 'delta'), validated with zod on
// receipt. Versions are vector clocks as [replica, count] pairs (VectorClockPairs; a record is
// read too), decoded (and so checked) per document.
//
//   sync   request  { all, docs: DocVersion[] }   the requester's versions; `all` asks for
//                                                 every document, listed or not
//          reply    { docs: DocState[] }          per document the responder has: its version,
//                                                 and `payload` = what the requester lacks
//   push   request  { docs: DocState[] }          what the responder lacked
//          reply    { docs: DocVersion[] }        the responder's versions after applying
//   delta  request  { doc, type, to, delta }      a delta-CRDT document's buffered deltas up
//                                                 to local seq `to`
//          reply    { ack }                       `to`, once joined

import { z } from 'zod'
import { parseWire } from './lattices/lattice-wire.js'
import { documentKindSchema, documentNameSchema } from './document.js'
import { isPushReply, isSyncRequest, isSyncResponse } from './sync-wire-fast.js'

/** Documents in one message; more is InvalidInput (a collection syncs in batches). */
export const MAX_DOCS_PER_MESSAGE = 100_000

const typeNameSchema = z.string().min(1).max(300)
const markSchema = z.string().max(64)

export const docVersionSchema = z
  .object({
    name: documentNameSchema,
    kind: documentKindSchema.optional(),
    type: typeNameSchema.optional(),
    version: z.unknown(),
    mark: markSchema.optional(),
  })
  .strict()

export const docStateSchema = z
  .object({
    name: documentNameSchema,
    kind: documentKindSchema,
    type: typeNameSchema,
    version: z.unknown(),
    mark: markSchema.optional(),
    payload: z.unknown().optional(),
  })
  .strict()

export const syncRequestSchema = z.object({ all: z.boolean(), docs: z.array(docVersionSchema).max(MAX_DOCS_PER_MESSAGE) }).strict()
export const syncResponseSchema = z.object({ docs: z.array(docStateSchema).max(MAX_DOCS_PER_MESSAGE) }).strict()
export const pushReplySchema = z.object({ docs: z.array(docVersionSchema).max(MAX_DOCS_PER_MESSAGE) }).strict()
export const deltaMessageSchema = z
  .object({ doc: documentNameSchema, type: typeNameSchema, to: z.number().int().min(1).max(Number.MAX_SAFE_INTEGER), delta: z.unknown() })
  .strict()
export const deltaAckSchema = z.object({ ack: z.number().int().min(0).max(Number.MAX_SAFE_INTEGER) }).strict()

export type DocVersionWire = z.infer<typeof docVersionSchema>
export type DocStateWire = z.infer<typeof docStateSchema>
export type SyncRequest = z.infer<typeof syncRequestSchema>
export type SyncResponse = z.infer<typeof syncResponseSchema>
export type PushReply = z.infer<typeof pushReplySchema>
export type DeltaMessage = z.infer<typeof deltaMessageSchema>

// The common shapes pass a fast check (sync-wire-fast.ts); the rest is decided by the schemas.
export const parseSyncRequest = (input: unknown): SyncRequest => parseWire(syncRequestSchema, input, 'crdt sync request', isSyncRequest)
export const parseSyncResponse = (input: unknown): SyncResponse => parseWire(syncResponseSchema, input, 'crdt sync response', isSyncResponse)
export const parsePushReply = (input: unknown): PushReply => parseWire(pushReplySchema, input, 'crdt push reply', isPushReply)
export const parseDeltaMessage = (input: unknown): DeltaMessage => parseWire(deltaMessageSchema, input, 'crdt delta')
