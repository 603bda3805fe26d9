// Signed, attenuable capabilities: who may do what to which namespaces, and until when.
//
// A root token is issued by a peer the verifier trusts (a namespace owner, or itself). Its audience
// may delegate a child token to another peer, and so on down a chain of at most MAX_CHAIN_DEPTH
// links. A child is never wider than its parent: delegate() refuses a request for more rights, a
// namespace outside the parent's, or a longer window (PermissionDenied 'wider-than-parent') instead
// of silently narrowing it, so the holder learns that it asked for more than it has. Omitted fields
// inherit the parent's. Verification re-checks every link anyway, because a token arrives from
// peers who need not have used delegate().
//
// Errors: anything about authority (bad signature, expired, revoked, too wide, wrong holder, a
// malformed or over-deep token presented for a check) is PermissionDenied with `details.reason`
// (CapabilityDenialReason), so a storage operation has one "denied" outcome to count. Bad arguments
// from the local caller of issueRoot/delegate/authorize (an invalid namespace name, an unknown
// right, an empty window) are InvalidInput; delegating past MAX_CHAIN_DEPTH is LimitExceeded.

import type { Crypto } from '../../effects/crypto/index.js'
import { publicKeyOfPeerId } from '../../effects/crypto/ed25519.js'
import type { Clock } from '../../effects/time/index.js'
import { InvalidInput, LimitExceeded, PermissionDenied, parseInput, type AuraError } from '../../effects/errors.js'
import {
  MAX_CHAIN_DEPTH,
  RIGHTS,
  canonicalRights,
  capabilityIdSchema,
  capabilityTokenSchema,
  chainDepth,
  fromHex,
  linkDigest,
  isNamespaceName,
  namespacePatternSchema,
  peerIdSchema,
  rightSchema,
  signingBytes,
  timestampSchema,
  toHex,
  type CapabilityToken,
  type Right,
} from './capability-codec.js'
import { z } from 'zod'

export { RIGHTS, MAX_CHAIN_DEPTH, capabilityTokenSchema, type CapabilityToken, type Right } from './capability-codec.js'

export type CapabilityDenialReason =
  | 'malformed' // fails the schema, too deep, or an issuer that is not an ed25519 peer id
  | 'untrusted-root' // the root's issuer is not in trustedRoots
  | 'broken-chain' // a link's issuer is not its parent's audience
  | 'not-attenuated' // a link is wider than its parent
  | 'revoked'
  | 'not-yet-valid'
  | 'expired'
  | 'bad-signature'
  | 'audience-mismatch' // presented by a peer other than the audience
  | 'namespace-not-covered'
  | 'right-not-granted'
  | 'not-audience' // delegate() by a peer that does not hold the parent
  | 'wider-than-parent' // delegate() asked for more than the parent has

/** What a verified chain grants: its leaf, which verification proved is within every ancestor. */
export interface EffectiveCapability {
  readonly audience: string
  readonly namespace: string
  readonly rights: readonly Right[]
  readonly notBefore: number
  readonly expiresAt: number
  /** the trusted peer the authority comes from */
  readonly root: string
  /** link ids, root first; revoking any of them revokes this capability */
  readonly chain: readonly string[]
}

export interface CapabilityVerdict {
  readonly ok: true
  readonly effective: EffectiveCapability
}

export interface RevocationCheck {
  has(id: string): boolean
}

export interface VerifyOptions {
  crypto: Pick<Crypto, 'verify' | 'hash'>
  clock: Pick<Clock, 'now'>
  /** peer ids whose root tokens are accepted */
  trustedRoots: ReadonlySet<string>
  revoked?: RevocationCheck
  /** overrides clock.now() */
  now?: number
}

export interface AuthorizationRequest {
  /** the peer presenting the token */
  holder: string
  /** exact namespace name the operation touches */
  namespace: string
  right: Right
}

export interface IssueRootOptions {
  audience: string
  namespace: string
  rights: readonly Right[]
  notBefore: number
  expiresAt: number
  /** defaults to 16 random bytes in hex; pass one from a seeded Random for replayable runs */
  id?: string
}

export interface DelegateOptions {
  audience: string
  namespace?: string
  rights?: readonly Right[]
  notBefore?: number
  expiresAt?: number
  id?: string
}

function deny(reason: CapabilityDenialReason, message: string, details: Record<string, unknown> = {}): AuraError {
  return new PermissionDenied(message, { reason, ...details })
}

// --- namespaces and rights -------------------------------------------------------------------

const isPattern = (ns: string): boolean => ns.endsWith('*')
const patternPrefix = (ns: string): string => (isPattern(ns) ? ns.slice(0, -1) : ns)

/** Whether the exact namespace `name` is covered by `pattern` (exact, or prefix + '*'). */
export function namespaceMatches(name: string, pattern: string): boolean {
  return isPattern(pattern) ? name.startsWith(patternPrefix(pattern)) : name === pattern
}

/** Whether every namespace `child` (exact or pattern) covers is also covered by `parent`. */
export function namespaceWithin(child: string, parent: string): boolean {
  if (!isPattern(parent)) return child === parent
  return patternPrefix(child).startsWith(patternPrefix(parent))
}

/** admin implies every right, so it is expanded before any comparison. */
export function impliedRights(rights: readonly Right[]): ReadonlySet<Right> {
  return new Set(rights.includes('admin') ? RIGHTS : rights)
}

export function rightsWithin(child: readonly Right[], parent: readonly Right[]): boolean {
  const granted = impliedRights(parent)
  return child.every((r) => granted.has(r))
}

export function grantsRight(rights: readonly Right[], right: Right): boolean {
  return rights.includes(right) || rights.includes('admin')
}

/** Which field of `child` is wider than `parent`, if any. */
function widerField(child: CapabilityToken, parent: CapabilityToken): string | undefined {
  if (!namespaceWithin(child.namespace, parent.namespace)) return 'namespace'
  if (!rightsWithin(child.rights, parent.rights)) return 'rights'
  if (child.notBefore < parent.notBefore) return 'notBefore'
  if (child.expiresAt > parent.expiresAt) return 'expiresAt'
  return undefined
}

// --- issuing ---------------------------------------------------------------------------------

const issueRootSchema = z
  .object({
    audience: peerIdSchema,
    namespace: namespacePatternSchema,
    rights: z.array(rightSchema).min(1),
    notBefore: timestampSchema,
    expiresAt: timestampSchema,
    id: capabilityIdSchema.optional(),
  })
  .refine((o) => o.notBefore < o.expiresAt, { message: 'notBefore must be before expiresAt', path: ['expiresAt'] })

const delegateSchema = z.object({
  audience: peerIdSchema,
  namespace: namespacePatternSchema.optional(),
  rights: z.array(rightSchema).min(1).optional(),
  notBefore: timestampSchema.optional(),
  expiresAt: timestampSchema.optional(),
  id: capabilityIdSchema.optional(),
})

function randomId(): string {
  return toHex(globalThis.crypto.getRandomValues(new Uint8Array(16)))
}

/** Links root first. */
function linksOf(token: CapabilityToken): CapabilityToken[] {
  const links: CapabilityToken[] = []
  for (let t: CapabilityToken | undefined = token; t; t = t.parent) links.push(t)
  return links.reverse()
}

/** Signed bytes of every link, root first, each binding its parent's digest. */
function chainSigningBytes(links: readonly CapabilityToken[], hash: (d: Uint8Array) => Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = []
  let parentDigest: Uint8Array | undefined
  for (const link of links) {
    const signed = signingBytes(link, parentDigest)
    out.push(signed)
    parentDigest = linkDigest(signed, fromHex(link.signature), hash)
  }
  return out
}

/** sha-256 identifying a token and its whole chain; what a child's signature binds to. */
export function capabilityDigest(token: CapabilityToken, hash: (d: Uint8Array) => Uint8Array): Uint8Array {
  const signed = chainSigningBytes(linksOf(token), hash)
  return linkDigest(signed[signed.length - 1]!, fromHex(token.signature), hash)
}

async function sign(crypto: Crypto, fields: Omit<CapabilityToken, 'signature' | 'parent'>, parent: CapabilityToken | undefined): Promise<CapabilityToken> {
  const parentDigest = parent ? capabilityDigest(parent, crypto.hash) : undefined
  const signature = toHex(await crypto.sign(signingBytes(fields, parentDigest)))
  return parent ? { ...fields, parent, signature } : { ...fields, signature }
}

/** A root token: `crypto.peerId` grants `audience` the rights on the namespace for the window. */
export async function issueRoot(crypto: Crypto, options: IssueRootOptions): Promise<CapabilityToken> {
  const o = parseInput(issueRootSchema, options, 'root capability options')
  return sign(
    crypto,
    {
      v: 1,
      id: o.id ?? randomId(),
      issuer: crypto.peerId,
      audience: o.audience,
      namespace: o.namespace,
      rights: canonicalRights(o.rights),
      notBefore: o.notBefore,
      expiresAt: o.expiresAt,
    },
    undefined,
  )
}

/**
 * A child of `parent` for `audience`, signed by `crypto`, which must be the parent's audience.
 * Omitted fields are the parent's; any requested field wider than the parent's is refused. The
 * parent's signatures are not checked here (no trust roots or clock at hand): a child of a bad
 * parent simply fails verification wherever it is presented.
 */
export async function delegate(crypto: Crypto, parent: CapabilityToken, options: DelegateOptions): Promise<CapabilityToken> {
  const depth = chainDepth(parent)
  if (depth >= MAX_CHAIN_DEPTH) {
    throw new LimitExceeded(`capability chain already has ${depth} links (max ${MAX_CHAIN_DEPTH})`, { depth, max: MAX_CHAIN_DEPTH })
  }
  const p = parseInput(capabilityTokenSchema, parent, 'parent capability')
  const o = parseInput(delegateSchema, options, 'delegation options')
  if (crypto.peerId !== p.audience) {
    throw deny('not-audience', 'only the audience of a capability may delegate it', { peer: crypto.peerId, audience: p.audience })
  }
  const fields = {
    v: 1 as const,
    id: o.id ?? randomId(),
    issuer: crypto.peerId,
    audience: o.audience,
    namespace: o.namespace ?? p.namespace,
    rights: canonicalRights(o.rights ?? p.rights),
    notBefore: o.notBefore ?? p.notBefore,
    expiresAt: o.expiresAt ?? p.expiresAt,
  }
  const wider = widerField({ ...fields, signature: '' }, p)
  if (wider) {
    throw deny('wider-than-parent', `requested ${wider} is wider than the parent capability's`, { field: wider, parent: p.id })
  }
  if (fields.notBefore >= fields.expiresAt) {
    throw new InvalidInput('delegated window is empty: notBefore must be before expiresAt', {
      notBefore: fields.notBefore,
      expiresAt: fields.expiresAt,
    })
  }
  return sign(crypto, fields, p)
}

// --- verifying -------------------------------------------------------------------------------

/** Schema and depth; a token failing them is denied as 'malformed' with the issues attached. */
function parseToken(token: unknown): CapabilityToken {
  const depth = chainDepth(token)
  if (depth > MAX_CHAIN_DEPTH) throw deny('malformed', `capability chain deeper than ${MAX_CHAIN_DEPTH} links`, { depth })
  const result = capabilityTokenSchema.safeParse(token)
  if (!result.success) throw deny('malformed', 'capability token is malformed', { issues: result.error.issues })
  return result.data
}

/** Trust, revocation and the validity window: the checks that can change after verification. */
function checkStanding(
  root: string,
  chain: readonly string[],
  notBefore: number,
  expiresAt: number,
  options: Pick<VerifyOptions, 'trustedRoots' | 'revoked'>,
  now: number,
): void {
  if (!options.trustedRoots.has(root)) throw deny('untrusted-root', 'capability root issuer is not trusted', { root })
  if (options.revoked) {
    for (const id of chain) if (options.revoked.has(id)) throw deny('revoked', 'capability (or a link above it) is revoked', { id })
  }
  if (now < notBefore) throw deny('not-yet-valid', 'capability is not valid yet', { notBefore, now })
  if (now >= expiresAt) throw deny('expired', 'capability has expired', { expiresAt, now })
}

async function verifyParsed(token: CapabilityToken, options: VerifyOptions, now: number): Promise<CapabilityVerdict> {
  const links = linksOf(token)
  const root = links[0]!
  for (let i = 1; i < links.length; i++) {
    const link = links[i]!
    const parent = links[i - 1]!
    if (link.issuer !== parent.audience) {
      throw deny('broken-chain', "a link's issuer is not its parent's audience", { id: link.id, issuer: link.issuer, expected: parent.audience })
    }
    const wider = widerField(link, parent)
    if (wider) throw deny('not-attenuated', `a link's ${wider} is wider than its parent's`, { id: link.id, field: wider })
  }
  // Every link lies within its parent, so the window of the leaf is the meet of all windows; taking
  // it explicitly keeps this check honest should attenuation ever be loosened.
  const notBefore = Math.max(...links.map((l) => l.notBefore))
  const expiresAt = Math.min(...links.map((l) => l.expiresAt))
  const chain = links.map((l) => l.id)
  checkStanding(root.issuer, chain, notBefore, expiresAt, options, now)

  // Signatures last: they are the expensive part, and a token failing anything above needs none.
  const keys = links.map((l) => {
    try {
      return publicKeyOfPeerId(l.issuer)
    } catch (cause) {
      throw new PermissionDenied('capability issuer is not an ed25519 peer id', { reason: 'malformed', issuer: l.issuer }, { cause })
    }
  })
  const signed = chainSigningBytes(links, options.crypto.hash)
  const valid = await Promise.all(links.map((l, i) => options.crypto.verify(keys[i]!, signed[i]!, fromHex(l.signature))))
  const bad = valid.indexOf(false)
  if (bad >= 0) throw deny('bad-signature', 'capability signature does not verify', { id: links[bad]!.id, link: bad })

  return {
    ok: true,
    effective: Object.freeze({
      audience: token.audience,
      namespace: token.namespace,
      rights: Object.freeze([...token.rights]),
      notBefore,
      expiresAt,
      root: root.issuer,
      chain: Object.freeze(chain),
    }),
  }
}

/** Full verification of a presented token. Throws PermissionDenied (details.reason) when it fails. */
export async function verifyCapability(token: unknown, options: VerifyOptions): Promise<CapabilityVerdict> {
  return verifyParsed(parseToken(token), options, options.now ?? options.clock.now())
}

function checkRequest(request: AuthorizationRequest): void {
  if (!isNamespaceName(request.namespace)) {
    throw new InvalidInput('namespace name not allowed', { namespace: request.namespace })
  }
  if (!(RIGHTS as readonly string[]).includes(request.right)) throw new InvalidInput('unknown right', { right: request.right })
  if (typeof request.holder !== 'string') throw new InvalidInput('holder must be a peer id string', {})
}

function checkGrant(effective: EffectiveCapability, request: AuthorizationRequest): void {
  if (effective.audience !== request.holder) {
    throw deny('audience-mismatch', 'capability was not issued to this peer', { audience: effective.audience, holder: request.holder })
  }
  if (!namespaceMatches(request.namespace, effective.namespace)) {
    throw deny('namespace-not-covered', 'capability does not cover this namespace', { namespace: request.namespace, granted: effective.namespace })
  }
  if (!grantsRight(effective.rights, request.right)) {
    throw deny('right-not-granted', `capability does not grant ${request.right}`, { right: request.right, granted: effective.rights })
  }
}

/** Verify, then check that `holder` may exercise `right` on `namespace` with it. */
export async function authorize(token: unknown, request: AuthorizationRequest & VerifyOptions): Promise<CapabilityVerdict> {
  checkRequest(request)
  const verdict = await verifyCapability(token, request)
  checkGrant(verdict.effective, request)
  return verdict
}

// --- revocation and the hot path -------------------------------------------------------------

/** Revoked capability ids, in memory; the storage coordinator persists them. */
export class RevocationList implements RevocationCheck {
  readonly #ids = new Set<string>()
  constructor(ids: Iterable<string> = []) {
    for (const id of ids) this.#ids.add(id)
  }
  add(id: string): void {
    this.#ids.add(id)
  }
  has(id: string): boolean {
    return this.#ids.has(id)
  }
  get size(): number {
    return this.#ids.size
  }
  ids(): IterableIterator<string> {
    return this.#ids.values()
  }
}

export interface CapabilityVerifierOptions extends Omit<VerifyOptions, 'now'> {
  /** verified tokens kept (LRU); default 1024 */
  cacheSize?: number
}

interface CacheEntry {
  /** the validated copy; a presented token hits only if equal to it field by field */
  token: CapabilityToken
  verdict: CapabilityVerdict
}

const TOKEN_FIELDS = 9 // without parent

/**
 * Whether `presented` is exactly `known` (every field through the chain, no extra keys). A cache
 * keyed by signature must check this: a tampered token can carry a genuine signature.
 */
function sameToken(presented: unknown, known: CapabilityToken): boolean {
  let a: unknown = presented
  let b: CapabilityToken | undefined = known
  while (b) {
    if (typeof a !== 'object' || a === null) return false
    const t = a as Record<string, unknown>
    if (
      t.signature !== b.signature ||
      t.id !== b.id ||
      t.issuer !== b.issuer ||
      t.audience !== b.audience ||
      t.namespace !== b.namespace ||
      t.notBefore !== b.notBefore ||
      t.expiresAt !== b.expiresAt ||
      t.v !== b.v
    ) {
      return false
    }
    const rights = t.rights
    if (!Array.isArray(rights) || rights.length !== b.rights.length) return false
    for (let i = 0; i < rights.length; i++) if (rights[i] !== b.rights[i]) return false
    let keys = 0
    for (const k in t) if (t[k] !== undefined) keys++
    if (keys !== TOKEN_FIELDS + (b.parent ? 1 : 0)) return false
    a = t.parent
    b = b.parent
  }
  return a === undefined
}

/**
 * authorize() with a bounded LRU of verified tokens keyed by signature, so presenting the same
 * token again costs a map lookup, a field comparison and the checks that can change over time
 * (trust, revocation, the window against the clock), not a chain of signature verifications.
 */
export class CapabilityVerifier {
  readonly #options: CapabilityVerifierOptions
  readonly #capacity: number
  readonly #cache = new Map<string, CacheEntry>()
  #hits = 0
  #misses = 0

  constructor(options: CapabilityVerifierOptions) {
    this.#options = options
    this.#capacity = options.cacheSize ?? 1024
    if (!Number.isInteger(this.#capacity) || this.#capacity < 0)
      throw new InvalidInput('cacheSize must be a non-negative integer', { cacheSize: options.cacheSize })
  }

  /** Verify `token` (no holder/namespace/right check), using and filling the cache. */
  async verify(token: unknown, now: number = this.#options.clock.now()): Promise<CapabilityVerdict> {
    const cached = this.#cached(token, now)
    if (cached) return cached
    this.#misses++
    const parsed = parseToken(token)
    const verdict = await verifyParsed(parsed, this.#options, now)
    if (this.#capacity > 0) {
      this.#cache.delete(parsed.signature)
      this.#cache.set(parsed.signature, { token: parsed, verdict })
      if (this.#cache.size > this.#capacity) this.#cache.delete(this.#cache.keys().next().value!)
    }
    return verdict
  }

  /** Check that `request.holder` may exercise `request.right` on `request.namespace`. */
  async authorize(token: unknown, request: AuthorizationRequest & { now?: number }): Promise<CapabilityVerdict> {
    checkRequest(request)
    const verdict = await this.verify(token, request.now ?? this.#options.clock.now())
    checkGrant(verdict.effective, request)
    return verdict
  }

  /**
   * `authorize` without waiting, for a token verified before: its verdict (standing and grant
   * checked now), a PermissionDenied, or undefined when the signatures still need checking.
   * Lets a caller decide the common case in the same turn.
   */
  authorizeCached(token: unknown, request: AuthorizationRequest & { now?: number }): CapabilityVerdict | undefined {
    checkRequest(request)
    const verdict = this.#cached(token, request.now ?? this.#options.clock.now())
    if (verdict) checkGrant(verdict.effective, request)
    return verdict
  }

  /** The cached verdict on `token` if it still stands; throws if it no longer does. */
  #cached(token: unknown, now: number): CapabilityVerdict | undefined {
    const signature = typeof token === 'object' && token !== null ? (token as { signature?: unknown }).signature : undefined
    if (typeof signature !== 'string') return undefined
    const entry = this.#cache.get(signature)
    if (!entry || !sameToken(token, entry.token)) return undefined
    const e = entry.verdict.effective
    try {
      checkStanding(e.root, e.chain, e.notBefore, e.expiresAt, this.#options, now)
    } catch (err) {
      // Revocation and expiry are final; a not-yet-valid entry may still become valid.
      if ((err as AuraError).details.reason !== 'not-yet-valid' && (err as AuraError).details.reason !== 'untrusted-root') {
        this.#cache.delete(signature)
      }
      throw err
    }
    this.#cache.delete(signature)
    this.#cache.set(signature, entry)
    this.#hits++
    return entry.verdict
  }

  get stats(): { hits: number; misses: number; size: number } {
    return { hits: this.#hits, misses: this.#misses, size: this.#cache.size }
  }

  clear(): void {
    this.#cache.clear()
  }
}
