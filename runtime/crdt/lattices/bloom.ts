// Bloom filter: m bits, k probes per item by double hashing (probe i = h1 + i·h2 mod m, with
// h1, h2 two seeded MurmurHash3 values; Kirsch & Mitzenmacher showed two hashes suffice).
// Sized from the expected item count n and target false-positive rate p:
// m = −n·ln p / (ln 2)², k = (m/n)·ln 2 — about 9.6 bits and 7 probes per item for 1%.
// No false negatives; false positives near p while at most n items are added.
//
// Binary form (big-endian):
//   byte 0      format version (1)
//   byte 1      k (1..32)
//   bytes 2..5  m, bits (≥ 8)
//   bytes 6..9  items added (for the false-positive estimate)
//   bytes 10..  ceil(m / 8) bytes of bits, bit j at byte j>>3, mask 1 << (j & 7)

import { InvalidInput } from '../../../effects/errors.js'
import { murmur3, utf8 } from './hash.js'

const FORMAT = 1
const HEADER = 10
const MAX_HASHES = 32
/** Default cap on a deserialized filter (a digest from a peer), bits included. */
export const BLOOM_MAX_BYTES = 4 * 1024 * 1024

export interface BloomSizing {
  readonly expectedItems: number
  /** Target false-positive rate in (0, 1); default 0.01. */
  readonly falsePositiveRate?: number
}

export function bloomParameters({ expectedItems, falsePositiveRate = 0.01 }: BloomSizing): { bits: number; hashes: number } {
  if (!Number.isSafeInteger(expectedItems) || expectedItems < 0) throw new InvalidInput('expectedItems must be a non-negative integer', { expectedItems })
  if (!(falsePositiveRate > 0 && falsePositiveRate < 1)) throw new InvalidInput('falsePositiveRate must be in (0, 1)', { falsePositiveRate })
  const n = Math.max(1, expectedItems)
  const bits = Math.max(8, Math.ceil((-n * Math.log(falsePositiveRate)) / (Math.LN2 * Math.LN2)))
  const hashes = Math.min(MAX_HASHES, Math.max(1, Math.round((bits / n) * Math.LN2)))
  return { bits, hashes }
}

export class BloomFilter {
  private constructor(
    readonly bits: number,
    readonly hashes: number,
    private readonly words: Uint8Array,
    private added: number,
  ) {}

  static create(sizing: BloomSizing): BloomFilter {
    const { bits, hashes } = bloomParameters(sizing)
    return BloomFilter.withSize(bits, hashes)
  }

  static withSize(bits: number, hashes: number): BloomFilter {
    if (!Number.isSafeInteger(bits) || bits < 8 || bits > 0xffffffff) throw new InvalidInput('bloom filter bits out of range', { bits })
    if (!Number.isSafeInteger(hashes) || hashes < 1 || hashes > MAX_HASHES) throw new InvalidInput('bloom filter hash count out of range', { hashes })
    return new BloomFilter(bits, hashes, new Uint8Array(Math.ceil(bits / 8)), 0)
  }

  /** Items added so far (re-adding counts again; it only feeds the estimate). */
  get count(): number {
    return this.added
  }

  add(item: string | Uint8Array): void {
    const data = typeof item === 'string' ? utf8(item) : item
    const h1 = murmur3(data, 0)
    const h2 = (murmur3(data, h1) | 1) >>> 0
    for (let i = 0; i < this.hashes; i++) {
      const j = (h1 + i * h2) % this.bits
      this.words[j >>> 3]! |= 1 << (j & 7)
    }
    this.added += 1
  }

  /** False means certainly absent; true means present or a false positive. */
  has(item: string | Uint8Array): boolean {
    const data = typeof item === 'string' ? utf8(item) : item
    const h1 = murmur3(data, 0)
    const h2 = (murmur3(data, h1) | 1) >>> 0
    for (let i = 0; i < this.hashes; i++) {
      const j = (h1 + i * h2) % this.bits
      if ((this.words[j >>> 3]! & (1 << (j & 7))) === 0) return false
    }
    return true
  }

  /** (1 − e^(−k·n/m))^k for the n items added. */
  estimatedFalsePositiveRate(): number {
    return Math.pow(1 - Math.exp((-this.hashes * this.added) / this.bits), this.hashes)
  }

  get byteLength(): number {
    return HEADER + this.words.length
  }

  serialize(): Uint8Array {
    const out = new Uint8Array(HEADER + this.words.length)
    const view = new DataView(out.buffer)
    out[0] = FORMAT
    out[1] = this.hashes
    view.setUint32(2, this.bits)
    view.setUint32(6, Math.min(this.added, 0xffffffff))
    out.set(this.words, HEADER)
    return out
  }

  static deserialize(bytes: Uint8Array, options: { maxBytes?: number } = {}): BloomFilter {
    const maxBytes = options.maxBytes ?? BLOOM_MAX_BYTES
    if (!(bytes instanceof Uint8Array)) throw new InvalidInput('bloom filter must be bytes')
    if (bytes.byteLength > maxBytes) throw new InvalidInput('bloom filter too large', { bytes: bytes.byteLength, maxBytes })
    if (bytes.byteLength < HEADER) throw new InvalidInput('bloom filter truncated', { bytes: bytes.byteLength })
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    if (bytes[0] !== FORMAT) throw new InvalidInput('unknown bloom filter format', { format: bytes[0] })
    const hashes = bytes[1]!
    const bits = view.getUint32(2)
    const added = view.getUint32(6)
    if (hashes < 1 || hashes > MAX_HASHES || bits < 8) throw new InvalidInput('bloom filter header out of range', { hashes, bits })
    if (bytes.byteLength !== HEADER + Math.ceil(bits / 8)) {
      throw new InvalidInput('bloom filter length does not match its header', { bytes: bytes.byteLength, bits })
    }
    return new BloomFilter(bits, hashes, bytes.slice(HEADER), added)
  }
}
