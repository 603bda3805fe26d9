// The building blocks of the fast checks that stand in front of zod on hot paths (the envelope in
// wire.ts, CRDT and session messages): plain data as MessagePack decodes it.

/** An object literal's shape: not null, not an array, no prototype but Object's. */
export const isPlainObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && Object.getPrototypeOf(value) === Object.prototype

/** A string of `min` to `max` UTF-16 code units, as zod's min/max count them. */
export const isText = (value: unknown, min: number, max = Infinity): value is string => typeof value === 'string' && value.length >= min && value.length <= max
