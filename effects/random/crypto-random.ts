import { RandomDraws } from './draws.js'

/** getRandomValues caps one call at 65536 bytes; words are fetched in blocks below that. */
const BLOCK_WORDS = 1024

/** Cryptographically strong randomness from the host's `crypto.getRandomValues`. */
export class CryptoRandom extends RandomDraws {
  readonly #block = new Uint32Array(BLOCK_WORDS)
  #next = BLOCK_WORDS

  protected nextUint32(): number {
    if (this.#next === BLOCK_WORDS) {
      globalThis.crypto.getRandomValues(this.#block)
      this.#next = 0
    }
    return this.#block[this.#next++]!
  }

  override bytes(n: number): Uint8Array {
    if (!Number.isSafeInteger(n) || n < 0) return super.bytes(n)
    const out = new Uint8Array(n)
    for (let i = 0; i < n; i += 65536) globalThis.crypto.getRandomValues(out.subarray(i, Math.min(i + 65536, n)))
    return out
  }
}
