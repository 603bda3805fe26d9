import { createHash } from 'node:crypto'
import { generateKeyPair, generateKeyPairFromSeed, privateKeyFromProtobuf, privateKeyToProtobuf, publicKeyFromRaw } from '@libp2p/crypto/keys'
import type { Ed25519PrivateKey, PrivateKey } from '@libp2p/interface'
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id'
import { InvalidInput } from '../errors.js'
import type { Crypto } from './crypto.js'

const ED25519_PUBLIC_KEY_BYTES = 32
const ED25519_SIGNATURE_BYTES = 64
const SEED_BYTES = 32

/**
 * The peer's identity and signatures, on the same libp2p ed25519 key that libp2p itself uses
 * (pass `privateKey` to createLibp2p), so the peer id we sign under is the one peers dial.
 */
export class Ed25519Crypto implements Crypto {
  readonly privateKey: Ed25519PrivateKey
  readonly peerId: string
  readonly publicKey: Uint8Array

  private constructor(privateKey: Ed25519PrivateKey) {
    this.privateKey = privateKey
    this.peerId = peerIdFromPrivateKey(privateKey).toString()
    this.publicKey = privateKey.publicKey.raw.slice()
  }

  static async generate(): Promise<Ed25519Crypto> {
    return new Ed25519Crypto(await generateKeyPair('Ed25519'))
  }

  /** A fixed identity from 32 seed bytes: the same seed always gives the same peer id (tests). */
  static async fromSeed(seed: Uint8Array): Promise<Ed25519Crypto> {
    if (!(seed instanceof Uint8Array) || seed.length !== SEED_BYTES) {
      throw new InvalidInput(`ed25519 seed must be ${SEED_BYTES} bytes`, { length: (seed as Uint8Array | undefined)?.length })
    }
    return new Ed25519Crypto(await generateKeyPairFromSeed('Ed25519', seed))
  }

  static fromPrivateKey(privateKey: PrivateKey): Ed25519Crypto {
    if (privateKey?.type !== 'Ed25519') throw new InvalidInput('identity key must be ed25519', { type: privateKey?.type })
    return new Ed25519Crypto(privateKey)
  }

  /** Restores an identity saved with exportBytes() (libp2p's private-key protobuf). */
  static fromBytes(bytes: Uint8Array): Ed25519Crypto {
    let key: PrivateKey
    try {
      key = privateKeyFromProtobuf(bytes)
    } catch (cause) {
      throw new InvalidInput('not a libp2p private key', {}, { cause })
    }
    return Ed25519Crypto.fromPrivateKey(key)
  }

  /** libp2p's private-key protobuf: persist it and fromBytes() brings back the same peer id. */
  exportBytes(): Uint8Array {
    return privateKeyToProtobuf(this.privateKey)
  }

  async sign(data: Uint8Array): Promise<Uint8Array> {
    return await this.privateKey.sign(data)
  }

  async verify(publicKey: Uint8Array, data: Uint8Array, signature: Uint8Array): Promise<boolean> {
    // Anything malformed is simply "not a valid signature": callers check untrusted input here.
    if (!(publicKey instanceof Uint8Array) || publicKey.length !== ED25519_PUBLIC_KEY_BYTES) return false
    if (!(signature instanceof Uint8Array) || signature.length !== ED25519_SIGNATURE_BYTES) return false
    if (!(data instanceof Uint8Array)) return false
    try {
      const key = publicKeyFromRaw(publicKey)
      if (key.type !== 'Ed25519') return false
      return (await key.verify(data, signature)) === true
    } catch {
      return false
    }
  }

  hash(data: Uint8Array): Uint8Array {
    return new Uint8Array(createHash('sha256').update(data).digest())
  }
}

/** The raw 32-byte public key inside an ed25519 peer id (12D3KooW...); InvalidInput otherwise. */
export function publicKeyOfPeerId(peerId: string): Uint8Array {
  let parsed: ReturnType<typeof peerIdFromString>
  try {
    parsed = peerIdFromString(peerId)
  } catch (cause) {
    throw new InvalidInput('not a peer id', { peerId }, { cause })
  }
  if (parsed.type !== 'Ed25519') throw new InvalidInput('peer id is not an ed25519 key', { peerId, type: parsed.type })
  return parsed.publicKey.raw.slice()
}
