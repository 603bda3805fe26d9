// Fast checks of the hot CRDT messages: the gate's request and reply, sync requests and
// answers, and push replies, as a steady-state sync sends them. Each accepts a
// subset of what its zod schema accepts (plain objects with only the schema's keys, optional
// ones absent rather than undefined, every field as the schema requires it); whatever it does
// not accept goes to the schema, which stays the authority and gives the issues. Parsing these
// small messages with zod cost more than joining what they carry.
// (Vector clocks have theirs in lattices/vector-clock.ts.) test/runtime/crdt/sync-wire-fast.test.ts checks, with fast-check, that each accepts nothing
// its schema refuses.

import { isPlainObject, isText } from '../core/plain-values.js'

const DOCUMENT_KINDS = new Set(['cv', 'delta', 'cm', 'mv'])
/** MAX_DOCS_PER_MESSAGE in sync-wire.ts */
const MAX_DOCS = 100_000

/**
 * True when `value` has own keys only among `allowed`, each present key defined, and all of `required`
 * (which may hold undefined: the schemas' z.unknown() fields accept it when the key is there).
 */
function hasOnlyKeys(value: Record<string, unknown>, allowed: ReadonlySet<string>, required: readonly string[]): boolean {
  for (const key of required) if (!Object.hasOwn(value, key)) return false
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue
    if (!allowed.has(key)) return false
    if (value[key] === undefined && !required.includes(key)) return false
  }
  return true
}

const GATE_REQUEST_KEYS = new Set(['collection', 'capability', 'ref', 'known', 'body'])
const GATE_REPLY_KEYS = new Set(['capability', 'ref', 'body'])
const REQUIRED_BODY = ['body'] as const

/** collection-gate's requestSchema: { collection, capability?, ref?, known?, body }. */
export function isGateRequest(value: unknown): boolean {
  if (!isPlainObject(value) || !hasOnlyKeys(value, GATE_REQUEST_KEYS, REQUIRED_BODY) || !isText(value.collection, 1, 256)) return false
  return (value.ref === undefined || isText(value.ref, 1, 128)) && (value.known === undefined || isText(value.known, 1, 128))
}

/** collection-gate's replySchema: { capability?, ref?, body }. */
export function isGateReply(value: unknown): boolean {
  return isPlainObject(value) && hasOnlyKeys(value, GATE_REPLY_KEYS, REQUIRED_BODY) && (value.ref === undefined || isText(value.ref, 1, 128))
}

const VERSION_KEYS = new Set(['name', 'kind', 'type', 'version', 'mark'])
const STATE_KEYS = new Set(['name', 'kind', 'type', 'version', 'mark', 'payload'])
const REQUIRED_VERSION = ['version'] as const

/** docVersionSchema: { name, kind?, type?, version, mark? }. */
function isDocVersion(value: unknown): boolean {
  if (!isPlainObject(value) || !hasOnlyKeys(value, VERSION_KEYS, REQUIRED_VERSION) || !isText(value.name, 1, 256)) return false
  return (
    (value.kind === undefined || DOCUMENT_KINDS.has(value.kind as string)) &&
    (value.type === undefined || isText(value.type, 1, 300)) &&
    (value.mark === undefined || isText(value.mark, 0, 64))
  )
}

/** docStateSchema: { name, kind, type, version, mark?, payload? }. */
function isDocState(value: unknown): boolean {
  if (!isPlainObject(value) || !hasOnlyKeys(value, STATE_KEYS, REQUIRED_VERSION) || !isText(value.name, 1, 256)) return false
  return DOCUMENT_KINDS.has(value.kind as string) && isText(value.type, 1, 300) && (value.mark === undefined || isText(value.mark, 0, 64))
}

function isListOf(value: unknown, item: (entry: unknown) => boolean): boolean {
  if (!Array.isArray(value) || value.length > MAX_DOCS) return false
  for (let i = 0; i < value.length; i++) if (!item(value[i])) return false
  return true
}

const SYNC_REQUEST_KEYS = new Set(['all', 'docs'])
const DOCS_KEYS = new Set(['docs'])
const REQUIRED_DOCS = ['docs'] as const

/** syncRequestSchema: { all, docs: DocVersion[] }. */
export function isSyncRequest(value: unknown): boolean {
  return isPlainObject(value) && hasOnlyKeys(value, SYNC_REQUEST_KEYS, REQUIRED_DOCS) && typeof value.all === 'boolean' && isListOf(value.docs, isDocVersion)
}

/** syncResponseSchema: { docs: DocState[] }. */
export function isSyncResponse(value: unknown): boolean {
  return isPlainObject(value) && hasOnlyKeys(value, DOCS_KEYS, REQUIRED_DOCS) && isListOf(value.docs, isDocState)
}

/** pushReplySchema: { docs: DocVersion[] }. */
export function isPushReply(value: unknown): boolean {
  return isPlainObject(value) && hasOnlyKeys(value, DOCS_KEYS, REQUIRED_DOCS) && isListOf(value.docs, isDocVersion)
}
