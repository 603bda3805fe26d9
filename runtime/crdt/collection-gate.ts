// The door of CRDT collections: which collection a peer's message is for, and whether that peer
// may touch it. Every message of the 'crdt' and 'anti-entropy' families passes here, both ways,
// before a coordinator sees it; a coordinator's own local calls never do (the owner needs no
// ceremony).
//
// Wire (the router's payload of those families):
//   request  { collection, capability | ref, known?, body }   collection = the collection's storage namespace
//   reply    { capability | ref, body }                        body = the kind's own message (sync-wire.ts,
//                                                             anti-entropy-digest.ts)
// `capability` is a CapabilityToken (runtime/core/capability.ts) held by the sender, checked
// with the same verifier (trusted roots, revocations) as storage operations. Once a peer has
// accepted a token, later messages name it by id (`ref`) instead of carrying it, and `known`
// tells the responder which of its tokens the requester has verified, so it may answer with a
// ref too (credential-sessions.ts; a ref is checked exactly like the token it names):
//   - a request is served only if its capability grants the kind's right on the collection
//     ('read' to be answered with states or digests, 'replicate' to write into it);
//   - a reply is used only if the responder's capability grants what using it means (the
//     requester asks for 'replicate' before joining states a peer answered with).
// Anything else is PermissionDenied and nothing is applied.
//
// One gate per router: several collections (coordinators with their own namespaces) are served
// side by side; serving one collection twice is a Conflict, not a silent takeover.

import { z } from 'zod'
import { Conflict, NotFound, PermissionDenied, UnknownProtocol, invalidInput, isAuraError } from '../../effects/errors.js'
import type { CapabilityToken, Right } from '../core/capability.js'
import { isGateReply, isGateRequest } from './sync-wire-fast.js'
import { HeldSessions, PresentedTokens, UNKNOWN_CREDENTIAL, newestVerified, rememberVerified, type HeldSession } from './credential-sessions.js'
import type { FrameBytesListener, PatternFamily, Router } from '../core/router.js'

/** Resolves when `holder` may exercise `right` on `namespace` with `capability`; PermissionDenied otherwise. */
export type Authorizer = (holder: string, namespace: string, right: Right, capability: unknown) => Promise<void>

/** The capability this peer presents to `peer` for one collection. */
export type CredentialSource = (peer: string) => Promise<CapabilityToken>

export interface GatedKind {
  /** what the sender must hold on the collection */
  right: Right
  /** the kind's handler; gets the body only once the sender is authorized */
  handle(body: unknown, from: string): unknown
}

export interface GatedRequest {
  collection: string
  kind: string
  body: unknown
  /** the capability presented with the request */
  credential: CapabilityToken
  timeoutMs: number
  /** the enclosing operation's deadline (this peer's clock): it travels as the remaining budget */
  deadline?: number
  /** the right the responder must hold here for its reply to be used */
  replyRight?: Right
  /** told the request's and the reply's frame sizes (see the router's RequestOptions) */
  onFrameBytes?: FrameBytesListener
}

const collectionSchema = z.string().min(1).max(256)
const refSchema = z.string().min(1).max(128)
export const gateRequestSchema = z
  .object({ collection: collectionSchema, capability: z.unknown().optional(), ref: refSchema.optional(), known: refSchema.optional(), body: z.unknown() })
  .strict()
type GateRequestWire = z.infer<typeof gateRequestSchema>
type GateReplyWire = z.infer<typeof gateReplySchema>
/** The fast check for the common shape, else the schema (which stays the authority). */
const parseRequest = (payload: unknown) =>
  isGateRequest(payload) ? { success: true as const, data: payload as GateRequestWire } : gateRequestSchema.safeParse(payload)
const parseReply = (payload: unknown) =>
  isGateReply(payload) ? { success: true as const, data: payload as GateReplyWire } : gateReplySchema.safeParse(payload)
export const gateReplySchema = z.object({ capability: z.unknown().optional(), ref: refSchema.optional(), body: z.unknown() }).strict()

interface Served {
  credentials: CredentialSource
  kinds: Readonly<Record<string, GatedKind>>
}

const gates = new WeakMap<Router, CollectionGate>()

export class CollectionGate {
  private readonly served = new Map<PatternFamily, Map<string, Served>>()
  private readonly registered = new Set<string>()
  /** tokens peers presented here (to name by ref later) */
  private readonly presented = new PresentedTokens()
  /** per peer: which of our tokens it accepted, which of its tokens we verified */
  private readonly held = new HeldSessions()

  private constructor(
    private readonly router: Router,
    private readonly authorize: Authorizer,
  ) {}

  /** The gate of `router` (made on first use with `authorize`; later callers share it). */
  static of(router: Router, authorize: Authorizer): CollectionGate {
    let gate = gates.get(router)
    if (!gate) gates.set(router, (gate = new CollectionGate(router, authorize)))
    return gate
  }

  /** Serves `collection` on `family`; resolves with the function that stops serving it. */
  async serve(family: PatternFamily, collection: string, credentials: CredentialSource, kinds: Record<string, GatedKind>): Promise<() => void> {
    let table = this.served.get(family)
    if (!table) this.served.set(family, (table = new Map()))
    if (table.has(collection)) {
      throw new Conflict(`collection ${collection} is already served on ${family}: attach each collection once, or give it another namespace`, {
        collection,
        family,
      })
    }
    const entry: Served = { credentials, kinds }
    table.set(collection, entry)
    const fresh = Object.keys(kinds).filter((kind) => !this.registered.has(`${family}/${kind}`))
    for (const kind of fresh) this.registered.add(`${family}/${kind}`)
    if (fresh.length > 0) {
      await this.router.register(
        family,
        Object.fromEntries(fresh.map((kind) => [kind, ({ envelope, from }) => this.dispatch(family, kind, envelope.payload, from)])),
      )
    }
    return () => {
      if (table.get(collection) === entry) table.delete(collection)
    }
  }

  private async dispatch(family: PatternFamily, kind: string, payload: unknown, from: string): Promise<unknown> {
    const parsed = parseRequest(payload)
    if (!parsed.success) throw invalidInput(`${family} ${kind} request`, parsed.error.issues)
    const { collection, ref, known, body } = parsed.data
    const entry = this.served.get(family)?.get(collection)
    if (!entry) throw new NotFound(`no collection ${collection} here`, { collection: collection.slice(0, 256) })
    const gated = Object.hasOwn(entry.kinds, kind) ? entry.kinds[kind] : undefined
    if (!gated) throw new UnknownProtocol(`collection ${collection} does not serve ${family}/${kind}`, { family, kind })
    if (ref !== undefined && parsed.data.capability !== undefined)
      throw new PermissionDenied('a request carries a capability or a ref, not both', { reason: 'malformed' })
    const capability = ref === undefined ? parsed.data.capability : this.presented.find(from, collection, ref)
    if (capability === undefined && ref !== undefined) {
      throw new PermissionDenied('capability ref unknown here: present the capability itself', { reason: UNKNOWN_CREDENTIAL })
    }
    try {
      await this.authorize(from, collection, gated.right, capability)
    } catch (error) {
      // An expired or revoked token stays refused: the peer must present another one.
      if (ref !== undefined) this.presented.forget(from, collection, ref)
      throw error
    }
    if (ref === undefined) this.presented.remember(from, collection, capability)
    const answer = await gated.handle(body, from)
    const ours = await entry.credentials(from)
    return known !== undefined && known === ours.id ? { ref: ours.id, body: answer } : { capability: ours, body: answer }
  }

  /** Sends a gated request; resolves with the reply's body once the responder's capability is checked. */
  async request(peer: string, family: PatternFamily, request: GatedRequest): Promise<unknown> {
    const session = this.held.session(peer, request.collection)
    const byRef = session.accepted === request.credential
    try {
      return await this.send(peer, family, request, session, byRef)
    } catch (error) {
      if (!byRef || !isUnknownCredential(error)) throw error
      // The peer forgot our token (it restarted, or let it go): present it whole once more.
      session.accepted = undefined
      return this.send(peer, family, request, session, false)
    }
  }

  private async send(peer: string, family: PatternFamily, request: GatedRequest, session: HeldSession, byRef: boolean): Promise<unknown> {
    const known = newestVerified(session)
    const payload: Record<string, unknown> = { collection: request.collection }
    if (byRef) payload.ref = request.credential.id
    else payload.capability = request.credential
    if (known !== undefined) payload.known = known
    payload.body = request.body
    const message = request.deadline === undefined ? { kind: request.kind, payload } : { kind: request.kind, payload, deadline: request.deadline }
    const reply = await this.router.request(peer, family, message, { timeoutMs: request.timeoutMs, onFrameBytes: request.onFrameBytes })
    // A reply came: the peer authorized the token, and keeps it to be named by ref.
    session.accepted = request.credential
    const parsed = parseReply(reply)
    if (!parsed.success) throw invalidInput(`${family} ${request.kind} reply`, parsed.error.issues)
    if (request.replyRight !== undefined) {
      const { ref } = parsed.data
      const capability = ref === undefined ? parsed.data.capability : session.verified.get(ref)
      try {
        if (capability === undefined && ref !== undefined)
          throw new PermissionDenied('reply names a capability not verified here', { reason: UNKNOWN_CREDENTIAL })
        await this.authorize(peer, request.collection, request.replyRight, capability)
      } catch (error) {
        if (ref !== undefined) session.verified.delete(ref)
        // Said from our side: the responder is not trusted with what its answer would do here.
        throw new PermissionDenied(`reply from ${peer} not used: it holds no '${request.replyRight}' on ${request.collection} here`, {
          reason: (error as { details?: { reason?: unknown } }).details?.reason ?? 'denied',
          peer,
          collection: request.collection,
        })
      }
      if (ref === undefined) rememberVerified(session, capability)
    }
    return parsed.data.body
  }
}

function isUnknownCredential(error: unknown): boolean {
  return isAuraError(error) && error.code === 'PERMISSION_DENIED' && error.details.reason === UNKNOWN_CREDENTIAL
}

/** The peer whose authority a token rests on (the issuer of its root link). */
export function rootIssuer(token: CapabilityToken): string {
  let link = token
  for (let depth = 0; link.parent !== undefined && depth < 64; depth++) link = link.parent
  return link.issuer
}
