import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { BloomFilter, bloomParameters, murmur3 } from '../../../../runtime/crdt/lattices/index.js'

describe('bloom filter', () => {
  it('sizes ~9.6 bits and 7 probes per item for 1%', () => {
    const { bits, hashes } = bloomParameters({ expectedItems: 1000, falsePositiveRate: 0.01 })
    expect(bits).toBe(9586)
    expect(hashes).toBe(7)
  })

  it('murmur3 matches the reference vectors', () => {
    const enc = new TextEncoder()
    expect(murmur3(enc.encode(''), 1)).toBe(0x514e28b7)
    expect(murmur3(enc.encode('The quick brown fox jumps over the lazy dog'), 0)).toBe(0x2e4ff723)
  })

  it('has no false negatives', () => {
    fc.assert(
      fc.property(fc.array(fc.string(), { maxLength: 200 }), fc.double({ min: 0.001, max: 0.5, noNaN: true }), (items, p) => {
        const f = BloomFilter.create({ expectedItems: items.length, falsePositiveRate: p })
        for (const x of items) f.add(x)
        for (const x of items) expect(f.has(x)).toBe(true)
      }),
    )
  })

  it('measured false-positive rate is near the target', () => {
    for (const target of [0.01, 0.05]) {
      const n = 10_000
      const f = BloomFilter.create({ expectedItems: n, falsePositiveRate: target })
      for (let i = 0; i < n; i++) f.add(`member-${i}`)
      let fp = 0
      const probes = 50_000
      for (let i = 0; i < probes; i++) if (f.has(`stranger-${i}`)) fp++
      const rate = fp / probes
      expect(rate).toBeGreaterThan(target * 0.5)
      expect(rate).toBeLessThan(target * 1.5)
      expect(Math.abs(f.estimatedFalsePositiveRate() - target) / target).toBeLessThan(0.2)
    }
  })

  it('serializes and deserializes to the same answers', () => {
    fc.assert(
      fc.property(fc.uniqueArray(fc.string(), { maxLength: 50 }), fc.array(fc.string(), { maxLength: 50 }), (members, probes) => {
        const f = BloomFilter.create({ expectedItems: 50 })
        for (const m of members) f.add(m)
        const g = BloomFilter.deserialize(f.serialize())
        expect(g.count).toBe(members.length)
        for (const x of [...members, ...probes]) expect(g.has(x)).toBe(f.has(x))
      }),
    )
  })

  it('oversized, truncated or inconsistent filters are InvalidInput', () => {
    const f = BloomFilter.create({ expectedItems: 10_000 })
    const bytes = f.serialize()
    const bad = [
      () => BloomFilter.deserialize(bytes, { maxBytes: 1024 }),
      () => BloomFilter.deserialize(bytes.slice(0, 5)),
      () => BloomFilter.deserialize(bytes.slice(0, bytes.length - 1)),
      () => BloomFilter.deserialize(Uint8Array.from([9, ...bytes.slice(1)])),
      () => BloomFilter.deserialize(Uint8Array.from([1, 0, ...bytes.slice(2)])),
      () => BloomFilter.create({ expectedItems: 10, falsePositiveRate: 1.5 }),
    ]
    for (const run of bad) expect(run).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })
})
