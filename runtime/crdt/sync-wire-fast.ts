// Fast checks of the hot CRDT messages: the gate's request and reply, sync requests and
// answers, and push replies, as a steady-state sync sends them. Each accepts a
// subset of what its zod schema accepts (plain objects with only the schema's keys, optional
// ones absent rather than undefined, every field as the schema requires it); whatever it does
// not accept goes to the schema, which stays the authority and gives the issues. Parsing these
// small messages with zod cost more than joining what they carry.
// (Vector clocks have theirs in lattices/vector-clock.ts.) test/runtime/crdt/sync-wire-fast.test.ts checks, with fast-check, that each accepts nothing
// its schema refuses.

import { hasKeys, isPlainObject, isText } from '../core/plain-values.js'

const DOCUMENT_KINDS = new Set(['cv', 'delta', 'cm', 'mv'])
/** MAX_DOCS_PER_MESSAGE in sync-wire.ts */
const MAX_DOCS = 100_000

const REQUIRED_BODY = ['body'] as const
const GATE_REQUEST_OPTIONAL = ['collection', 'capability', 'ref', 'known'] as const
const GATE_REPLY_OPTIONAL = ['capability', 'ref'] as const

/** collection-gate's requestSchema: { collection, capability?, ref?, known?, body }. */
export function isGateRequest(value: unknown): boolean {
  if (!isPlainObject(value) || !hasKeys(value, REQUIRED_BODY, GATE_REQUEST_OPTIONAL) || !isText(value.collection, 1, 256)) return false
  return (value.ref === undefined || isText(value.ref, 1, 128)) && (value.known === undefined || isText(value.known, 1, 128))
}

/** collection-gate's replySchema: { capability?, ref?, body }. */
export function isGateReply(value: unknown): boolean {
  return isPlainObject(value) && hasKeys(value, REQUIRED_BODY, GATE_REPLY_OPTIONAL) && (value.ref === undefined || isText(value.ref, 1, 128))
}

const REQUIRED_VERSION = ['version'] as const
const VERSION_OPTIONAL = ['name', 'kind', 'type', 'mark'] as const
const STATE_OPTIONAL = ['name', 'kind', 'type', 'mark', 'payload'] as const

/** docVersionSchema: { name, kind?, type?, version, mark? }. */
function isDocVersion(value: unknown): boolean {
  if (!isPlainObject(value) || !hasKeys(value, REQUIRED_VERSION, VERSION_OPTIONAL) || !isText(value.name, 1, 256)) return false
  return (
    (value.kind === undefined || DOCUMENT_KINDS.has(value.kind as string)) &&
    (value.type === undefined || isText(value.type, 1, 300)) &&
    (value.mark === undefined || isText(value.mark, 0, 64))
  )
}

/** docStateSchema: { name, kind, type, version, mark?, payload? }. */
function isDocState(value: unknown): boolean {
  if (!isPlainObject(value) || !hasKeys(value, REQUIRED_VERSION, STATE_OPTIONAL) || !isText(value.name, 1, 256)) return false
  return DOCUMENT_KINDS.has(value.kind as string) && isText(value.type, 1, 300) && (value.mark === undefined || isText(value.mark, 0, 64))
}

function isListOf(value: unknown, item: (entry: unknown) => boolean): boolean {
  if (!Array.isArray(value) || value.length > MAX_DOCS) return false
  for (let i = 0; i < value.length; i++) if (!item(value[i])) return false
  return true
}

const REQUIRED_DOCS = ['docs'] as const
const SYNC_REQUEST_OPTIONAL = ['all'] as const

/** syncRequestSchema: { all, docs: DocVersion[] }. */
export function isSyncRequest(value: unknown): boolean {
  return isPlainObject(value) && hasKeys(value, REQUIRED_DOCS, SYNC_REQUEST_OPTIONAL) && typeof value.all === 'boolean' && isListOf(value.docs, isDocVersion)
}

/** syncResponseSchema: { docs: DocState[] }. */
export function isSyncResponse(value: unknown): boolean {
  return isPlainObject(value) && hasKeys(value, REQUIRED_DOCS) && isListOf(value.docs, isDocState)
}

/** pushReplySchema: { docs: DocVersion[] }. */
export function isPushReply(value: unknown): boolean {
  return isPlainObject(value) && hasKeys(value, REQUIRED_DOCS) && isListOf(value.docs, isDocVersion)
}
