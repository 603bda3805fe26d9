// Capability tokens as data: the JSON shape (zod schema, bounded so a hostile token costs little to
// reject) and the canonical bytes an issuer signs.
//
// Signed bytes of one link (all integers big-endian; str = u16 byte length ‖ UTF-8 bytes):
//
//   8 bytes  ASCII "AURACAP1"   domain separation: a capability signature is never valid as any
//                               other message signed by the same peer key, nor vice versa
//   u8       v                  token format version (1)
//   str      id
//   str      issuer             peer id of the signer
//   str      audience           peer id of the holder
//   str      namespace          exact name, or prefix pattern ending in '*'
//   u8       rights bitmask     read 0x01, write 0x02, delete 0x04, replicate 0x08, admin 0x10
//   u64      notBefore          ms since the Unix epoch
//   u64      expiresAt          ms since the Unix epoch
//   u8       hasParent          0 or 1
//   32 bytes parent digest      only when hasParent = 1
//
// A link's digest is sha-256(signed bytes ‖ its 64-byte signature). The child signs the parent's
// digest, so a signature covers the whole chain above it: swapping, splicing or editing any ancestor
// breaks the signature of every descendant.
//
// The JSON form is canonical too: rights must be listed without duplicates in RIGHTS order, and the
// signature is lowercase hex, so exactly one JSON token maps to each signed byte string.

import { z } from 'zod'

export const RIGHTS = ['read', 'write', 'delete', 'replicate', 'admin'] as const
export type Right = (typeof RIGHTS)[number]

export const CAPABILITY_VERSION = 1
/** Links in a chain, root included. Bounds verification cost (one signature check per link). */
export const MAX_CHAIN_DEPTH = 8
export const MAX_ID_LENGTH = 128
export const MAX_PEER_ID_LENGTH = 128
export const MAX_NAMESPACE_LENGTH = 256
const SIGNATURE_BYTES = 64

export interface CapabilityToken {
  v: 1
  id: string
  /** peer id of the signer; a root's issuer must be trusted by the verifier */
  issuer: string
  /** peer id of the holder: the only peer that may use or delegate it */
  audience: string
  /** exact namespace name, or a prefix pattern ending in '*' ('*' alone = every namespace) */
  namespace: string
  /** non-empty, no duplicates, in RIGHTS order */
  rights: Right[]
  /** valid from notBefore (inclusive) to expiresAt (exclusive), ms since the Unix epoch */
  notBefore: number
  expiresAt: number
  parent?: CapabilityToken
  /** lowercase hex of the ed25519 signature over the link's signed bytes */
  signature: string
}

// Printable ASCII without space and '*': '*' is reserved for the trailing wildcard.
const NAME_CHAR = '[\\x21-\\x29\\x2b-\\x7e]'
const namespaceNameRe = new RegExp(`^${NAME_CHAR}{1,${MAX_NAMESPACE_LENGTH}}$`)
const namespacePatternRe = new RegExp(`^(?:${NAME_CHAR}{1,${MAX_NAMESPACE_LENGTH}}|${NAME_CHAR}{0,${MAX_NAMESPACE_LENGTH - 1}}\\*)$`)

/** Cheaper than the schema; for the per-operation request check. */
export const isNamespaceName = (name: unknown): name is string => typeof name === 'string' && namespaceNameRe.test(name)

export const namespaceNameSchema = z.string().regex(namespaceNameRe, 'namespace name: 1-256 printable ASCII, no space or *')
export const namespacePatternSchema = z.string().regex(namespacePatternRe, "namespace pattern: a namespace name, or a prefix followed by a final '*'")
export const peerIdSchema = z.string().regex(new RegExp(`^[A-Za-z0-9]{1,${MAX_PEER_ID_LENGTH}}$`), 'peer id')
export const capabilityIdSchema = z.string().regex(new RegExp(`^[A-Za-z0-9._:-]{1,${MAX_ID_LENGTH}}$`), 'capability id')
export const rightSchema = z.enum(RIGHTS)
/** Epoch milliseconds; bounded so they fit the u64 fields exactly. */
export const timestampSchema = z.number().int().min(0).max(Number.MAX_SAFE_INTEGER)

const rightIndex = (r: Right): number => RIGHTS.indexOf(r)

const canonicalRightsSchema = z
  .array(rightSchema)
  .min(1)
  .max(RIGHTS.length)
  .refine((rs) => rs.every((r, i) => i === 0 || rightIndex(rs[i - 1]!) < rightIndex(r)), {
    message: 'rights must be unique and in canonical order (read, write, delete, replicate, admin)',
  })

export const capabilityTokenSchema: z.ZodType<CapabilityToken> = z
  .strictObject({
    v: z.literal(CAPABILITY_VERSION),
    id: capabilityIdSchema,
    issuer: peerIdSchema,
    audience: peerIdSchema,
    namespace: namespacePatternSchema,
    rights: canonicalRightsSchema,
    notBefore: timestampSchema,
    expiresAt: timestampSchema,
    get parent(): z.ZodOptional<z.ZodType<CapabilityToken>> {
      return capabilityTokenSchema.optional()
    },
    signature: z.string().regex(new RegExp(`^[0-9a-f]{${SIGNATURE_BYTES * 2}}$`), 'signature: 128 lowercase hex digits'),
  })
  .refine((t) => t.notBefore < t.expiresAt, { message: 'notBefore must be before expiresAt', path: ['expiresAt'] })

/**
 * Links in the chain without trusting the shape, stopping one past the limit. Run before the
 * schema so a deeply nested hostile object is rejected without recursing through it.
 */
export function chainDepth(token: unknown): number {
  let depth = 0
  let link: unknown = token
  while (typeof link === 'object' && link !== null && depth <= MAX_CHAIN_DEPTH) {
    depth++
    link = (link as { parent?: unknown }).parent
  }
  return depth
}

/** The rights as a set bitmask; also the canonical order. */
export function rightsMask(rights: readonly Right[]): number {
  let mask = 0
  for (const r of rights) mask |= 1 << rightIndex(r)
  return mask
}

/** Deduplicated, in RIGHTS order: the form tokens carry. */
export function canonicalRights(rights: Iterable<Right>): Right[] {
  const mask = rightsMask([...rights])
  return RIGHTS.filter((_, i) => (mask & (1 << i)) !== 0)
}

const MAGIC = new TextEncoder().encode('AURACAP1')
const utf8 = new TextEncoder()

/** The bytes a link's issuer signs (format at the top of this file). */
export function signingBytes(token: Omit<CapabilityToken, 'signature' | 'parent'>, parentDigest: Uint8Array | undefined): Uint8Array {
  const strings = [token.id, token.issuer, token.audience, token.namespace].map((s) => utf8.encode(s))
  const size = MAGIC.length + 1 + strings.reduce((n, s) => n + 2 + s.length, 0) + 1 + 8 + 8 + 1 + (parentDigest ? 32 : 0)
  const out = new Uint8Array(size)
  const view = new DataView(out.buffer)
  let at = 0
  out.set(MAGIC, at)
  at += MAGIC.length
  view.setUint8(at++, token.v)
  for (const s of strings) {
    if (s.length > 0xffff) throw new RangeError('capability string field longer than 65535 bytes')
    view.setUint16(at, s.length)
    out.set(s, at + 2)
    at += 2 + s.length
  }
  view.setUint8(at++, rightsMask(token.rights))
  view.setBigUint64(at, BigInt(token.notBefore))
  view.setBigUint64(at + 8, BigInt(token.expiresAt))
  at += 16
  if (parentDigest) {
    if (parentDigest.length !== 32) throw new RangeError('parent digest must be 32 bytes')
    view.setUint8(at++, 1)
    out.set(parentDigest, at)
  } else {
    view.setUint8(at, 0)
  }
  return out
}

/** sha-256 over a link's signed bytes and signature; what its child signs. */
export function linkDigest(signed: Uint8Array, signature: Uint8Array, hash: (data: Uint8Array) => Uint8Array): Uint8Array {
  const buf = new Uint8Array(signed.length + signature.length)
  buf.set(signed, 0)
  buf.set(signature, signed.length)
  return hash(buf)
}

export function toHex(bytes: Uint8Array): string {
  let s = ''
  for (const b of bytes) s += b.toString(16).padStart(2, '0')
  return s
}

export function fromHex(hex: string): Uint8Array {
  if (hex.length % 2 !== 0 || !/^[0-9a-f]*$/.test(hex)) throw new RangeError('not lowercase hex')
  const out = new Uint8Array(hex.length / 2)
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16)
  return out
}
