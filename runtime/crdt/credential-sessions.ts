// Capabilities presented once per peer and collection instead of with every message.
//
// A CRDT request used to carry the sender's whole signed capability token, and its reply the
// responder's: about 400 bytes each way, packed, unpacked and compared on every sync, several
// times the size of the sync itself. Now a token travels in full the first time, and then by
// its id (`ref`) alone:
//   - the responder keeps, per authenticated peer and collection, the tokens that peer
//     presented and that passed the authorizer (`PresentedTokens`); a request naming one by
//     `ref` is authorized with that token exactly as if it had been sent again: the same
//     verifier, so trusted roots, expiry and revocation are checked on every request, and the
//     right the kind needs. A ref names only a token the same authenticated peer presented for
//     the same collection: another peer cannot borrow it, and it grants nothing the token
//     does not.
//   - the requester remembers, per peer and collection, which of its tokens the responder has
//     accepted (so it may send the ref) and the responder's token it verified last (`known`,
//     sent in the request so the responder may answer with a ref too); `HeldSessions`.
// A responder that no longer knows a ref (restarted, or evicted it) answers PermissionDenied
// with reason 'unknown-credential'; the requester then sends the whole token once more. Both
// tables are bounded; forgetting an entry costs one full token on the next message, never access.

import type { CapabilityToken } from '../core/capability.js'

/** Tokens kept per (peer, collection): a peer normally presents one per collection. */
const TOKENS_PER_PEER_COLLECTION = 4
/** (peer, collection) pairs kept; the oldest goes first beyond it. */
const MAX_SESSIONS = 4_096

export const UNKNOWN_CREDENTIAL = 'unknown-credential'

/** Keys (peer, collection) without building a string per lookup on the hot path. */
class PairTable<V> {
  private readonly byPeer = new Map<string, Map<string, V>>()
  private readonly order: Array<[string, string]> = []
  private size = 0

  get(peer: string, collection: string): V | undefined {
    return this.byPeer.get(peer)?.get(collection)
  }

  getOrCreate(peer: string, collection: string, create: () => V): V {
    let collections = this.byPeer.get(peer)
    const found = collections?.get(collection)
    if (found !== undefined) return found
    if (!collections) this.byPeer.set(peer, (collections = new Map()))
    const value = create()
    collections.set(collection, value)
    this.order.push([peer, collection])
    if (++this.size > MAX_SESSIONS) this.evictOldest()
    return value
  }

  private evictOldest(): void {
    const [peer, collection] = this.order.shift()!
    const collections = this.byPeer.get(peer)
    if (!collections?.delete(collection)) return
    this.size--
    if (collections.size === 0) this.byPeer.delete(peer)
  }
}

/** Responder side: the tokens each peer presented (and that were authorized) for each collection. */
export class PresentedTokens {
  private readonly table = new PairTable<Map<string, unknown>>()

  /** The token `peer` presented for `collection` under id `ref`, if still kept. */
  find(peer: string, collection: string, ref: string): unknown {
    return this.table.get(peer, collection)?.get(ref)
  }

  /** Keeps a token `peer` presented that the authorizer has just accepted. */
  remember(peer: string, collection: string, token: unknown): void {
    const id = (token as { id?: unknown }).id
    if (typeof id !== 'string') return
    const tokens = this.table.getOrCreate(peer, collection, () => new Map())
    tokens.delete(id)
    tokens.set(id, token)
    if (tokens.size > TOKENS_PER_PEER_COLLECTION) tokens.delete(tokens.keys().next().value!)
  }

  /** Drops a token the authorizer refused (expired, revoked): the peer must present another. */
  forget(peer: string, collection: string, ref: string): void {
    this.table.get(peer, collection)?.delete(ref)
  }
}

export interface HeldSession {
  /** our token the peer accepted last (it answered a request that carried it) */
  accepted: CapabilityToken | undefined
  /** the peer's tokens we verified for its replies, by id (the newest last) */
  readonly verified: Map<string, unknown>
}

/** Requester side: what each peer holds of ours, and what we verified of theirs, per collection. */
export class HeldSessions {
  private readonly table = new PairTable<HeldSession>()

  session(peer: string, collection: string): HeldSession {
    return this.table.getOrCreate(peer, collection, () => ({ accepted: undefined, verified: new Map() }))
  }
}

/** Keeps a token of the peer's that the authorizer accepted for its reply. */
export function rememberVerified(session: HeldSession, token: unknown): void {
  const id = (token as { id?: unknown }).id
  if (typeof id !== 'string') return
  session.verified.delete(id)
  session.verified.set(id, token)
  if (session.verified.size > TOKENS_PER_PEER_COLLECTION) session.verified.delete(session.verified.keys().next().value!)
}

/** The id of the peer's token we verified last: sent as `known`, so its reply may carry a ref. */
export function newestVerified(session: HeldSession): string | undefined {
  let last: string | undefined
  for (const id of session.verified.keys()) last = id
  return last
}
