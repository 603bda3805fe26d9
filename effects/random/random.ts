// Random effect. Protocol logic draws randomness only from here: crypto-strong in production,
// a seeded PRNG in simulation so a seed replays the same run.

export interface Random {
  /** n random bytes */
  bytes(n: number): Uint8Array
  /** uniform float in [0, 1) */
  float(): number
  /** uniform integer in [0, maxExclusive) */
  int(maxExclusive: number): number
  /** one element of a non-empty array */
  choice<T>(items: readonly T[]): T
  /** a new array with the items in random order (Fisher-Yates) */
  shuffle<T>(items: readonly T[]): T[]
  /** a random identifier (hex), e.g. for session ids and idempotency keys */
  id(bytes?: number): string
}
