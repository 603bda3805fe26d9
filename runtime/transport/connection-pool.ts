// The connection pool of the transport: one slot per peer, held while the peer has at least one
// live channel from us. The network keeps one connection per peer and every channel rides on it;
// the pool bounds how many peers we hold channels to. Reserving is synchronous, so two concurrent
// establishments can never both take the last slot.
import { LimitExceeded } from '../../effects/errors.js'

export interface PoolStats {
  /** peers holding a pooled connection slot */
  size: number
  limit: number
  /** live outbound channels over all peers */
  channels: number
  /** live outbound channels per peer */
  peers: Record<string, number>
  /** inbound channel records kept (open ones, and closed ones still answering retries) */
  inbound: number
}

export class ConnectionPool {
  private readonly entries = new Map<string, Set<string>>()

  constructor(readonly limit: number) {}

  /** Takes the peer's slot for a channel (a peer already pooled needs none); throws LimitExceeded when full. */
  reserve(peerId: string, channelId: string): void {
    const entry = this.entries.get(peerId)
    if (entry !== undefined) {
      entry.add(channelId)
      return
    }
    if (this.entries.size >= this.limit) throw new LimitExceeded(`connection pool is full (${this.limit} peers)`, { peerId, limit: this.limit })
    this.entries.set(peerId, new Set([channelId]))
  }

  /** Gives the channel's share back; the slot goes with the peer's last channel. */
  release(peerId: string, channelId: string): void {
    const entry = this.entries.get(peerId)
    if (entry === undefined) return
    entry.delete(channelId)
    if (entry.size === 0) this.entries.delete(peerId)
  }

  stats(inbound: number): PoolStats {
    const peers: Record<string, number> = {}
    let channels = 0
    for (const [peer, set] of this.entries) {
      peers[peer] = set.size
      channels += set.size
    }
    return { size: this.entries.size, limit: this.limit, channels, peers, inbound }
  }
}
