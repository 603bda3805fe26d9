// The door of CRDT collections: which collection a peer's message is for, and whether that peer
// may touch it. Every message of the 'crdt' and 'anti-entropy' families passes here, both ways,
// before a coordinator sees it; a coordinator's own local calls never do (the owner needs no
// ceremony).
//
// Wire (the router's payload of those families):
//   request  { collection, capability, body }   collection = the collection's storage namespace
//   reply    { capability, body }                body = the kind's own message (crdt-wire.ts,
//                                                anti-entropy-digest.ts)
// `capability` is a CapabilityToken (runtime/core/capability.ts) held by the sender, checked
// with the same verifier (trusted roots, revocations) as storage operations:
//   - a request is served only if its capability grants the kind's right on the collection
//     ('read' to be answered with states or digests, 'replicate' to write into it);
//   - a reply is used only if the responder's capability grants what using it means (the
//     requester asks for 'replicate' before joining states a peer answered with).
// Anything else is PermissionDenied and nothing is applied.
//
// One gate per router: several collections (coordinators with their own namespaces) are served
// side by side; serving one collection twice is a Conflict, not a silent takeover.

import { z } from 'zod'
import { Conflict, NotFound, PermissionDenied, UnknownProtocol, invalidInput } from '../../effects/errors.js'
import type { CapabilityToken, Right } from '../core/capability.js'
import type { PatternFamily, Router } from '../core/router.js'

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
}

const collectionSchema = z.string().min(1).max(256)
const requestSchema = z.object({ collection: collectionSchema, capability: z.unknown(), body: z.unknown() }).strict()
const replySchema = z.object({ capability: z.unknown(), body: z.unknown() }).strict()

interface Served {
  credentials: CredentialSource
  kinds: Readonly<Record<string, GatedKind>>
}

const gates = new WeakMap<Router, CollectionGate>()

export class CollectionGate {
  private readonly served = new Map<PatternFamily, Map<string, Served>>()
  private readonly registered = new Set<string>()

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
    const parsed = requestSchema.safeParse(payload)
    if (!parsed.success) throw invalidInput(`${family} ${kind} request`, parsed.error.issues)
    const { collection, capability, body } = parsed.data
    const entry = this.served.get(family)?.get(collection)
    if (!entry) throw new NotFound(`no collection ${collection} here`, { collection: collection.slice(0, 256) })
    const gated = Object.hasOwn(entry.kinds, kind) ? entry.kinds[kind] : undefined
    if (!gated) throw new UnknownProtocol(`collection ${collection} does not serve ${family}/${kind}`, { family, kind })
    await this.authorize(from, collection, gated.right, capability)
    const answer = await gated.handle(body, from)
    return { capability: await entry.credentials(from), body: answer }
  }

  /** Sends a gated request; resolves with the reply's body once the responder's capability is checked. */
  async request(peer: string, family: PatternFamily, request: GatedRequest): Promise<unknown> {
    const payload = { collection: request.collection, capability: request.credential, body: request.body }
    const message = request.deadline === undefined ? { kind: request.kind, payload } : { kind: request.kind, payload, deadline: request.deadline }
    const reply = await this.router.request(peer, family, message, request.timeoutMs)
    const parsed = replySchema.safeParse(reply)
    if (!parsed.success) throw invalidInput(`${family} ${request.kind} reply`, parsed.error.issues)
    if (request.replyRight !== undefined) {
      try {
        await this.authorize(peer, request.collection, request.replyRight, parsed.data.capability)
      } catch (error) {
        // Said from our side: the responder is not trusted with what its answer would do here.
        throw new PermissionDenied(`reply from ${peer} not used: it holds no '${request.replyRight}' on ${request.collection} here`, {
          reason: (error as { details?: { reason?: unknown } }).details?.reason ?? 'denied',
          peer,
          collection: request.collection,
        })
      }
    }
    return parsed.data.body
  }
}

/** The peer whose authority a token rests on (the issuer of its root link). */
export function rootIssuer(token: CapabilityToken): string {
  let link = token
  for (let depth = 0; link.parent !== undefined && depth < 64; depth++) link = link.parent
  return link.issuer
}
