import { generateKeyPair } from '@libp2p/crypto/keys'
import { peerIdFromPrivateKey } from '@libp2p/peer-id'
import { createHash } from 'node:crypto'
import { describe, expect, it } from 'vitest'
import { isAuraError } from '../../effects/errors.js'
import { Ed25519Crypto, publicKeyOfPeerId } from '../../effects/crypto/index.js'

const seed = (n: number): Uint8Array => new Uint8Array(32).fill(n)
const text = (s: string): Uint8Array => new TextEncoder().encode(s)

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (e) {
    return isAuraError(e) ? e.code : 'not-aura'
  }
  return undefined
}

describe('Ed25519Crypto', () => {
  it('signs and verifies; tampered data, signature or key are rejected', async () => {
    const alice = await Ed25519Crypto.fromSeed(seed(1))
    const bob = await Ed25519Crypto.fromSeed(seed(2))
    const data = text('grant write on ns:orders')
    const sig = await alice.sign(data)
    expect(sig).toHaveLength(64)
    expect(await bob.verify(alice.publicKey, data, sig)).toBe(true)

    expect(await bob.verify(alice.publicKey, text('grant write on ns:ordersX'), sig)).toBe(false)
    const flipped = sig.slice()
    flipped[10]! ^= 1
    expect(await bob.verify(alice.publicKey, data, flipped)).toBe(false)
    expect(await bob.verify(bob.publicKey, data, sig)).toBe(false)
  })

  it('verify returns false on malformed signatures and keys instead of throwing', async () => {
    const c = await Ed25519Crypto.fromSeed(seed(3))
    const data = text('x')
    const sig = await c.sign(data)
    expect(await c.verify(c.publicKey, data, sig.subarray(0, 63))).toBe(false)
    expect(await c.verify(c.publicKey, data, new Uint8Array(0))).toBe(false)
    expect(await c.verify(c.publicKey.subarray(0, 31), data, sig)).toBe(false)
    expect(await c.verify(new Uint8Array(33), data, sig)).toBe(false)
    expect(await c.verify(new Uint8Array(32).fill(0xff), data, sig)).toBe(false)
    expect(await c.verify('nope' as unknown as Uint8Array, data, sig)).toBe(false)
  })

  it('fixed seeds give fixed identities; different seeds differ', async () => {
    const a1 = await Ed25519Crypto.fromSeed(seed(7))
    const a2 = await Ed25519Crypto.fromSeed(seed(7))
    const b = await Ed25519Crypto.fromSeed(seed(8))
    expect(a1.peerId).toBe(a2.peerId)
    expect(a1.peerId).toMatch(/^12D3KooW/)
    expect(a1.peerId).not.toBe(b.peerId)
    await expect(Ed25519Crypto.fromSeed(new Uint8Array(31))).rejects.toMatchObject({ code: 'INVALID_INPUT' })
  })

  it('exported identity bytes restore the same peer id and signing key', async () => {
    const original = await Ed25519Crypto.generate()
    const restored = Ed25519Crypto.fromBytes(original.exportBytes())
    expect(restored.peerId).toBe(original.peerId)
    expect(restored.publicKey).toEqual(original.publicKey)
    const data = text('same key')
    expect(await original.verify(original.publicKey, data, await restored.sign(data))).toBe(true)
    expect(codeOf(() => Ed25519Crypto.fromBytes(new Uint8Array([1, 2, 3])))).toBe('INVALID_INPUT')
  })

  it('shares one key with libp2p: fromPrivateKey keeps the libp2p peer id; other key types are refused', async () => {
    const key = await generateKeyPair('Ed25519')
    const c = Ed25519Crypto.fromPrivateKey(key)
    expect(c.privateKey).toBe(key)
    expect(c.peerId).toBe(peerIdFromPrivateKey(key).toString())
    const secp = await generateKeyPair('secp256k1')
    expect(codeOf(() => Ed25519Crypto.fromPrivateKey(secp))).toBe('INVALID_INPUT')
  })

  it('publicKeyOfPeerId recovers the raw key from the peer id', async () => {
    const c = await Ed25519Crypto.fromSeed(seed(9))
    expect(publicKeyOfPeerId(c.peerId)).toEqual(c.publicKey)
    expect(publicKeyOfPeerId(c.peerId)).toHaveLength(32)
    const data = text('routed message')
    expect(await c.verify(publicKeyOfPeerId(c.peerId), data, await c.sign(data))).toBe(true)

    const secp = peerIdFromPrivateKey(await generateKeyPair('secp256k1')).toString()
    expect(codeOf(() => publicKeyOfPeerId(secp))).toBe('INVALID_INPUT')
    expect(codeOf(() => publicKeyOfPeerId('not-a-peer-id'))).toBe('INVALID_INPUT')
  })

  it('hash is sha-256', async () => {
    const c = await Ed25519Crypto.fromSeed(seed(4))
    const data = text('abc')
    expect(Buffer.from(c.hash(data)).toString('hex')).toBe(createHash('sha256').update(data).digest('hex'))
    expect(Buffer.from(c.hash(data)).toString('hex')).toBe('ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad')
  })
})
