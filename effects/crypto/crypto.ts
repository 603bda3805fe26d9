// Crypto effect: the peer's identity (its libp2p ed25519 key), signatures and hashing.

export interface Crypto {
  /** libp2p peer id string of this peer's key (12D3KooW...) */
  readonly peerId: string
  /** raw 32-byte ed25519 public key */
  readonly publicKey: Uint8Array
  sign(data: Uint8Array): Promise<Uint8Array>
  /** verify a signature by the holder of `publicKey` (raw ed25519) */
  verify(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): Promise<boolean>
  /** sha-256 */
  hash(data: Uint8Array): Uint8Array
}
