// The building blocks of the fast checks that stand in front of zod on hot paths (the envelope in
// wire.ts, CRDT and session messages): plain data as MessagePack decodes it.

/** An object literal's shape: not null, not an array, no prototype but Object's. */
export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype

/** A string of `min` to `max` UTF-16 code units, as zod's min/max count them. */
export const isText = (value: unknown, min: number, max = Infinity): value is string => typeof value === 'string' && value.length >= min && value.length <= max

/**
 * Own keys: all of `required` (which may hold undefined: a schema's z.unknown() field accepts it
 * when the key is there), and otherwise only keys of `optional`, each defined (an optional field
 * the schema would drop as undefined is left to the schema).
 */
export function hasKeys(value: Record<string, unknown>, required: readonly string[], optional: readonly string[] = []): boolean {
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue
    if (required.includes(key)) continue
    if (!optional.includes(key) || value[key] === undefined) return false
  }
  for (const key of required) if (!Object.hasOwn(value, key)) return false
  return true
}
