import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  compareChildren,
  decodeMerkleNodes,
  merkleDepthFor,
  MerkleTree,
  reconcile,
  versionHash,
} from '../../../../runtime/crdt/lattices/index.js'

const keys = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 8 }), { maxLength: 120 })

describe('merkle digest', () => {
  it('is deterministic: same entries in any order give the same root', () => {
    fc.assert(
      fc.property(keys, fc.integer({ min: 1, max: 3 }), (ks, depth) => {
        const entries = ks.map((k) => [k, versionHash(k)] as const)
        const a = MerkleTree.build(entries, depth)
        const b = MerkleTree.build([...entries].reverse(), depth)
        expect(a.root()).toEqual(b.root())
        expect(a.size).toBe(ks.length)
      }),
    )
  })

  it('merkle finds exactly the differing keys', () => {
    fc.assert(
      fc.property(
        keys,
        fc.array(fc.tuple(fc.nat(), fc.constantFrom('drop-left', 'drop-right', 'change')), { maxLength: 10 }),
        fc.integer({ min: 1, max: 3 }),
        (ks, edits, depth) => {
          const left = new Map(ks.map((k) => [k, versionHash(`v1:${k}`)]))
          const right = new Map(left)
          const expected = { onlyLocal: new Set<string>(), onlyRemote: new Set<string>(), different: new Set<string>() }
          for (const [i, kind] of edits) {
            if (ks.length === 0) break
            const k = ks[i % ks.length]!
            if (!left.has(k) || !right.has(k) || expected.different.has(k)) continue
            if (kind === 'drop-left') {
              left.delete(k)
              expected.onlyRemote.add(k)
            } else if (kind === 'drop-right') {
              right.delete(k)
              expected.onlyLocal.add(k)
            } else {
              right.set(k, versionHash(`v2:${k}`))
              expected.different.add(k)
            }
          }
          // Built incrementally on one side (with churn), in bulk on the other.
          const local = new MerkleTree(depth)
          for (const k of ks) local.set(k, versionHash(`v1:${k}`))
          for (const k of expected.onlyRemote) local.delete(k)
          const remote = MerkleTree.build(right, depth)
          const r = reconcile(local, remote)
          expect(new Set(r.onlyLocal)).toEqual(expected.onlyLocal)
          expect(new Set(r.onlyRemote)).toEqual(expected.onlyRemote)
          expect(new Set(r.different)).toEqual(expected.different)
          const diff = expected.onlyLocal.size + expected.onlyRemote.size + expected.different.size
          if (diff === 0) expect(r.nodesExchanged).toBe(2)
        },
      ),
    )
  })

  it('exchanges nodes in proportion to the difference, not the key count', () => {
    const n = 20_000
    const depth = merkleDepthFor(n)
    const entries = Array.from({ length: n }, (_, i) => [`key-${i}`, versionHash(`v:${i}`)] as const)
    const a = MerkleTree.build(entries, depth)
    const b = MerkleTree.build(entries, depth)
    for (let i = 0; i < 10; i++) b.set(`key-${i * 997}`, versionHash(`changed:${i}`))
    const r = reconcile(a, b)
    expect(r.different.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `key-${i * 997}`).sort())
    // At most one root-to-bucket path per differing key: 16 children per level, both sides.
    expect(r.nodesExchanged).toBeLessThanOrEqual(2 + 10 * depth * (1 + 16))
    expect(r.entriesExchanged).toBeLessThan(n / 20)
  })

  it('rejects nodes it did not ask for, oversized node lists and mismatched depths', () => {
    const a = MerkleTree.build([['x', versionHash('x')]], 2)
    expect(() => compareChildren(a, ['0'], [{ prefix: '1a', hash: '0'.repeat(32) }])).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    )
    expect(() => decodeMerkleNodes(Array.from({ length: 5 }, () => ({ prefix: '', hash: '0'.repeat(32) })), 4)).toThrow(
      expect.objectContaining({ code: 'INVALID_INPUT' }),
    )
    expect(() => decodeMerkleNodes([{ prefix: 'zz', hash: 'x' }])).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => reconcile(a, new MerkleTree(3))).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => new MerkleTree(9)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })
})
