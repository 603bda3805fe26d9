// Wire codec for envelopes carried between peers.
//
// Frame format (the network layer adds the varint length prefix around it):
//
//   byte 0      format version (currently 1)
//   bytes 1..   MessagePack map of the envelope:
//               { v: 1, kind: string, from: peerId, to: actor address,
//                 id?: string, session?: string, budgetMs?: number, epoch?: number, payload: any }
//
// `budgetMs` is the time the work may still take, relative, in milliseconds: the sender computes
// it from its own clock just before sending (its deadline minus its now) and the receiver turns
// it back into a deadline on ITS clock at receipt (its now plus the budget). Peers' clocks never
// have to agree; the budget shrinks at every hop by the time spent there. (Time in flight is not
// subtracted: the origin's own timer still bounds the whole operation.) It replaced an absolute
// `deadline`, which a callee whose clock ran ahead saw as already passed; a peer still sending
// `deadline` fails the strict schema, a MALFORMED_FRAME rather than a misread deadline.
//
// MessagePack keeps Uint8Array payloads binary (no base64) and decodes fast. Every decoded
// envelope is validated with zod before anything else sees it; the payload itself is validated
// again by whoever owns `kind`.

import { Packr, RESERVE_START_SPACE } from 'msgpackr'
import { z } from 'zod'
import { FrameTooLarge, MalformedFrame } from '../../effects/errors.js'
import { isPlainObject, isText } from './plain-values.js'

export const WIRE_FORMAT_VERSION = 1

export const envelopeSchema = z
  .object({
    v: z.literal(1),
    kind: z.string().min(1).max(64),
    from: z.string().min(1).max(128),
    to: z.string().min(1).max(256),
    id: z.string().max(128).optional(),
    session: z.string().min(1).max(128).optional(),
    budgetMs: z.number().finite().nonnegative().optional(),
    epoch: z.number().int().nonnegative().optional(),
    payload: z.unknown(),
  })
  .strict()

export type Envelope = z.infer<typeof envelopeSchema>

// structuredClone-like plain data only: no records/structures extension, so any
// MessagePack implementation can read our frames. Shared with what keeps wire data on disk.
export const plainMessagePack = new Packr({ useRecords: false, moreTypes: false, mapsAsObjects: true })
const packr = plainMessagePack

// msgpackr leaves one byte free in front of the body for the version, so the frame is packed in
// place: no second allocation and copy per message. The frame is a view into msgpackr's output
// slab, which it never writes over once returned (each pack continues after the previous one).
const PACK_WITH_VERSION_BYTE = RESERVE_START_SPACE | 1
const AFTER_VERSION_BYTE = { start: 1 }

export function encodeEnvelope(envelope: Envelope, maxFrameBytes: number): Uint8Array {
  const packed = packr.pack(envelope, PACK_WITH_VERSION_BYTE)
  // a plain Uint8Array view, not msgpackr's Buffer: binary payloads decoded from this frame
  // (views into it) must stay Uint8Array
  const frame = new Uint8Array(packed.buffer, packed.byteOffset, packed.byteLength)
  frame[0] = WIRE_FORMAT_VERSION
  if (frame.length > maxFrameBytes) {
    throw new FrameTooLarge(`frame of ${frame.length} bytes exceeds ${maxFrameBytes}`, { bytes: frame.length, max: maxFrameBytes, kind: envelope.kind })
  }
  return frame
}

export function decodeEnvelope(frame: Uint8Array, maxFrameBytes: number): Envelope {
  if (frame.length > maxFrameBytes) {
    throw new FrameTooLarge(`frame of ${frame.length} bytes exceeds ${maxFrameBytes}`, { bytes: frame.length, max: maxFrameBytes })
  }
  if (frame.length < 2) throw new MalformedFrame('frame too short', { bytes: frame.length })
  if (frame[0] !== WIRE_FORMAT_VERSION) throw new MalformedFrame(`unknown wire format version ${frame[0]}`, { version: frame[0] })
  let decoded: unknown
  try {
    decoded = packr.unpack(frame, AFTER_VERSION_BYTE)
  } catch (cause) {
    throw new MalformedFrame('frame is not valid MessagePack', {}, { cause })
  }
  if (isPlainEnvelope(decoded)) return decoded
  const parsed = envelopeSchema.safeParse(decoded)
  if (!parsed.success) throw new MalformedFrame('envelope failed validation', { issues: parsed.error.issues })
  return parsed.data
}

/**
 * The fast check of a decoded envelope, for the common shape: a plain object with the schema's
 * fields only, each as envelopeSchema requires it (optional ones absent rather than undefined).
 * It accepts a subset of what the schema accepts; anything it does not is left to the schema,
 * which stays the authority (and gives the issues). Parsing with zod cost more per message than
 * the rest of the router's receive path.
 */
function isPlainEnvelope(e: unknown): e is Envelope {
  if (!isPlainObject(e)) return false
  let fields = 5 // v, kind, from, to, payload
  if (e.v !== 1 || !isText(e.kind, 1, 64) || !isText(e.from, 1, 128) || !isText(e.to, 1, 256) || !Object.hasOwn(e, 'payload')) return false
  if (e.id !== undefined) {
    if (!isText(e.id, 0, 128)) return false
    fields++
  }
  if (e.session !== undefined) {
    if (!isText(e.session, 1, 128)) return false
    fields++
  }
  if (e.budgetMs !== undefined) {
    if (typeof e.budgetMs !== 'number' || !Number.isFinite(e.budgetMs) || e.budgetMs < 0) return false
    fields++
  }
  if (e.epoch !== undefined) {
    if (!Number.isSafeInteger(e.epoch) || (e.epoch as number) < 0) return false
    fields++
  }
  // strict: no other own fields (and none of the optional ones present as undefined)
  let own = 0
  for (const key in e) if (Object.hasOwn(e, key)) own++
  return own === fields
}
