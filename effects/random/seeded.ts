import { z } from 'zod'
import { invalidInput } from '../errors.js'
import { RandomDraws } from './draws.js'

const Seed = z.union([z.number().refine(Number.isFinite, 'seed must be finite'), z.string()])

/**
 * Deterministic randomness: xoshiro128** whose 128-bit state is expanded by splitmix32 from a
 * hash of the seed. Small, fast and well studied; not for secrets.
 */
export class SeededRandom extends RandomDraws {
  #seed: string
  #s: Uint32Array

  constructor(seed: number | string) {
    super()
    const parsed = Seed.safeParse(seed)
    if (!parsed.success) throw invalidInput('random seed', parsed.error.issues)
    this.#seed = typeof seed === 'number' ? `n:${seed}` : `s:${seed}`
    this.#s = expandState(this.#seed)
  }

  /** the canonical seed text this stream was built from (derive() extends it with the label) */
  get seed(): string {
    return this.#seed
  }

  /**
   * An independent stream for `label` (e.g. one per simulated peer). It depends only on this
   * stream's seed and the label, not on how many values were drawn here, so adding a peer or a
   * draw elsewhere does not shift anyone else's sequence.
   */
  derive(label: string): SeededRandom {
    const child = new SeededRandom(0)
    // The length prefix keeps derive('a/b') apart from derive('a').derive('b').
    child.#seed = `${this.#seed}/${label.length}:${label}`
    child.#s = expandState(child.#seed)
    return child
  }

  protected nextUint32(): number {
    const s = this.#s
    const result = Math.imul(rotl(Math.imul(s[1]!, 5), 7), 9) >>> 0
    const t = s[1]! << 9
    s[2]! ^= s[0]!
    s[3]! ^= s[1]!
    s[1]! ^= s[2]!
    s[0]! ^= s[3]!
    s[2]! ^= t
    s[3] = rotl(s[3]!, 11)
    return result
  }
}

function rotl(x: number, k: number): number {
  return (x << k) | (x >>> (32 - k))
}

/** Two differently-seeded 32-bit FNV-1a style hashes of the UTF-16 units: 64 bits of seed. */
function hashSeed(text: string): [number, number] {
  let a = 0x811c9dc5
  let b = 0x9e3779b9
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995)
    b ^= b >>> 15
  }
  return [a >>> 0, b >>> 0]
}

function expandState(seed: string): Uint32Array {
  const [a, b] = hashSeed(seed)
  let x = a ^ Math.imul(b, 0x9e3779b9)
  const splitmix32 = (): number => {
    x = (x + 0x9e3779b9) | 0
    let z = x
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
    return (z ^ (z >>> 16)) >>> 0
  }
  const s = new Uint32Array([splitmix32() ^ b, splitmix32(), splitmix32(), splitmix32()])
  // xoshiro's one forbidden state is all zeros.
  if (s[0] === 0 && s[1] === 0 && s[2] === 0 && s[3] === 0) s[0] = 1
  return s
}
