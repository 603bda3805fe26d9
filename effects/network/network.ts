// Network effect: bytes between authenticated peers, per protocol. The router above it turns
// frames into typed envelopes; this layer only moves frames. libp2p (TCP + noise + yamux between
// processes, the memory transport inside one) in production; a simulated network with seeded
// faults in tests.

import type { Observable } from 'rxjs'
import type { AuraError } from '../errors.js'

export interface IncomingFrame {
  /** the sender's peer id, authenticated by the transport (noise) or the simulator */
  from: string
  protocol: string
  bytes: Uint8Array
}

export type PeerEvent = { type: 'peer:connect'; peerId: string } | { type: 'peer:disconnect'; peerId: string }

/**
 * An incoming frame that could not be read: larger than `maxFrameBytes` (FrameTooLarge) or cut off
 * mid-frame (MalformedFrame). The stream it came on is closed; the peer keeps being served.
 */
export interface FrameError {
  from: string
  protocol: string
  error: AuraError
}

export type FrameHandler = (frame: IncomingFrame) => void

export interface SendOptions {
  signal?: AbortSignal
}

export interface Network {
  readonly peerId: string
  /** addresses other peers can `connect` to (multiaddrs with /p2p/<id> for libp2p) */
  addresses(): string[]
  start(): Promise<void>
  stop(): Promise<void>
  /** dial an address; resolves with the remote peer id once a connection is up */
  connect(address: string, options?: SendOptions): Promise<string>
  /**
   * Send one frame to a peer on a protocol. Frames to one peer on one protocol arrive in order
   * (one long-lived stream per peer and protocol). Rejects with PeerUnreachable / NetworkError /
   * FrameTooLarge; never throws synchronously.
   */
  send(peerId: string, protocol: string, bytes: Uint8Array, options?: SendOptions): Promise<void>
  /** register the handler for a protocol (one per protocol; replaces any earlier one) */
  handle(protocol: string, handler: FrameHandler): Promise<void>
  unhandle(protocol: string): Promise<void>
  connectedPeers(): string[]
  /** open transport connections to a peer (channels and protocols multiplex over them) */
  connectionCount(peerId: string): number
  readonly peerEvents: Observable<PeerEvent>
  /** incoming frames rejected by the framing layer (for metrics; the frame itself is gone) */
  readonly frameErrors: Observable<FrameError>
  /** largest frame this network accepts, in bytes */
  readonly maxFrameBytes: number
}

export const DEFAULT_MAX_FRAME_BYTES = 4 * 1024 * 1024
