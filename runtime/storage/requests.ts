// Requests the storage coordinator accepts, locally and on the router's 'storage' family, as zod
// schemas. Keys and values are checked again by the Storage effect; here they are checked against
// the coordinator's own limits (namespace names, value size) before the capability is looked at.
//
// Wire (router family 'storage', request/reply; every payload carries the capability presented):
//   put      { namespace, key, data, capability }            → { wall, logical, peer }
//   putMany  { namespace, entries: [{ key, data }], capability } → number written
//   get      { namespace, key, capability }                  → data | null
//   getMany  { namespace, keys, capability }                 → (data | null)[]
//   delete   { namespace, key, capability }                  → boolean
//   list     { namespace, prefix, limit?, capability }       → [{ key, value }]

import { z } from 'zod'
import { InvalidInput, parseInput } from '../../effects/errors.js'

/** User namespace names; stored as `ns.<name>`, apart from the runtime's own `aura.*` namespaces. */
export const USER_NAMESPACE = /^[A-Za-z0-9_:-][A-Za-z0-9_.:-]{0,59}$/
export const USER_NAMESPACE_PREFIX = 'ns.'

export function checkUserNamespace(name: unknown): string {
  if (typeof name !== 'string' || !USER_NAMESPACE.test(name)) {
    throw new InvalidInput('namespace name not allowed: 1..60 of [A-Za-z0-9_.:-], not starting with "."', {
      namespace: typeof name === 'string' ? name.slice(0, 100) : typeof name,
    })
  }
  return name
}

export const storageNameOf = (namespace: string): string => USER_NAMESPACE_PREFIX + namespace

export const MAX_PREFIX_LENGTH = 1024

const anyKey = z.unknown().refine((k) => k !== undefined, 'key is required')
const envelopeBase = { namespace: z.string().max(100), capability: z.unknown() }

export const remotePutSchema = z.object({ ...envelopeBase, key: anyKey, data: z.unknown() }).strict()
export const remotePutManySchema = z.object({ ...envelopeBase, entries: z.array(z.object({ key: anyKey, data: z.unknown() }).strict()) }).strict()
export const remoteGetSchema = z.object({ ...envelopeBase, key: anyKey }).strict()
export const remoteGetManySchema = z.object({ ...envelopeBase, keys: z.array(anyKey) }).strict()
export const remoteListSchema = z.object({ ...envelopeBase, prefix: z.string().max(MAX_PREFIX_LENGTH), limit: z.number().int().positive().optional() }).strict()

export function parseRequest<T>(schema: z.ZodType<T>, payload: unknown, what: string): T {
  return parseInput(schema, payload, `${what} request`)
}
