// The transport's messages on the router: family 'transport' (`/aura/transport/1.0.0`), so they
// are envelopes (runtime/core/wire.ts) like every pattern's, correlated, timed out and reported on
// events$ by the router. Their payloads are validated here with zod before the coordinator sees
// them; an invalid one is refused with MalformedFrame.
//
//   kind   style     payload                                    answer
//   open   request   { channelId, contextId, epoch }            reply: opened. error: EPOCH_REGRESSION (older than the
//                                                               receiver's epoch), LIMIT_EXCEEDED, CHANNEL_CLOSED (closed before)
//   data   request   { channelId, key, epoch, kind, body: bin } reply: delivered, now or earlier (a duplicate is acked again,
//                                                               not delivered). error: CHANNEL_CLOSED, EPOCH_REGRESSION,
//                                                               INVALID_INPUT: refused, never delivered
//   close  one-way   { channelId, reason, side }                side 0: the opener closed it; 1: the receiver did
//   epoch  request   { contextId, epoch }                       reply: the receiver's epoch of the context afterwards,
//                                                               which may be newer than the one sent
//
// `body` is the application's payload as MessagePack: its length is what the flow budget charges,
// and the receiver refuses a body that does not decode (INVALID_INPUT) rather than deliver it.
import { z } from 'zod'
import { MalformedFrame } from '../../effects/errors.js'
import type { PatternFamily } from '../core/router.js'
import { plainMessagePack } from '../core/wire.js'

export const TRANSPORT_FAMILY: PatternFamily = 'transport'

/** The application payload codec (plain MessagePack: binary stays binary). */
export const bodyCodec = plainMessagePack

/** channel ids, context ids, idempotency keys */
export const transportIdSchema = z.string().min(1).max(256)
const id = transportIdSchema
export const epochSchema = z.number().int().nonnegative()
const text = z.string().max(1024)

export const transportPayloads = {
  open: z.object({ channelId: id, contextId: id, epoch: epochSchema }).strict(),
  data: z.object({ channelId: id, key: id, epoch: epochSchema, kind: z.string().min(1).max(64), body: z.instanceof(Uint8Array) }).strict(),
  close: z.object({ channelId: id, reason: text, side: z.union([z.literal(0), z.literal(1)]) }).strict(),
  epoch: z.object({ contextId: id, epoch: epochSchema }).strict(),
} as const

export type TransportKind = keyof typeof transportPayloads
export type TransportPayload<K extends TransportKind> = z.infer<(typeof transportPayloads)[K]>

/** The payload of a `kind` message, validated; throws MalformedFrame. */
export function parseTransportPayload<K extends TransportKind>(kind: K, payload: unknown): TransportPayload<K> {
  if (kind === 'data' && isPlainData(payload)) return payload as TransportPayload<K>
  const parsed = transportPayloads[kind].safeParse(payload)
  if (!parsed.success) throw new MalformedFrame(`invalid transport ${kind} message`, { issues: parsed.error.issues })
  return parsed.data as TransportPayload<K>
}

const isId = (value: unknown): boolean => typeof value === 'string' && value.length >= 1 && value.length <= 256

/**
 * The fast check of the hot `data` payload: a plain object with exactly the schema's five fields,
 * each as the schema requires it. It accepts a subset of what transportPayloads.data accepts;
 * anything else is left to the schema, which stays the authority (and gives the issues).
 */
function isPlainData(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return false
  const d = value as Record<string, unknown>
  if (!isId(d.channelId) || !isId(d.key) || !Number.isSafeInteger(d.epoch) || (d.epoch as number) < 0) return false
  if (typeof d.kind !== 'string' || d.kind.length < 1 || d.kind.length > 64 || !(d.body instanceof Uint8Array)) return false
  let own = 0
  for (const key in d) if (Object.hasOwn(d, key)) own++
  return own === 5
}
