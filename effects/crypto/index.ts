// The crypto effect: its interface (crypto.ts) and the handlers that implement it. Re-exports only.

export * from './crypto.js'
export { Ed25519Crypto, publicKeyOfPeerId } from './ed25519.js'
