// The random effect: its interface (random.ts) and the handlers that implement it. Re-exports only.

export * from './random.js'
export { CryptoRandom } from './crypto-random.js'
export { SeededRandom } from './seeded.js'
