import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import {
  compareChildren,
  decodeNodeList,
  encodeChildren,
  encodeNodeList,
  MERKLE_MAX_NODES,
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

  it('kept incrementally, a tree has the hashes of one built afresh from what it holds (writes, rewrites, deletes to empty)', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.string({ minLength: 1, maxLength: 4 }), fc.option(fc.nat(3), { nil: undefined })), { maxLength: 200 }),
        fc.integer({ min: 1, max: 3 }),
        (writes, depth) => {
          const tree = new MerkleTree(depth)
          const held = new Map<string, string>()
          for (const [key, version] of writes) {
            // hash read between writes, so stale marks are exercised on cached paths
            tree.root()
            if (version === undefined) {
              expect(tree.delete(key)).toBe(held.delete(key))
            } else {
              tree.set(key, versionHash(`${key}:${version}`))
              held.set(key, versionHash(`${key}:${version}`))
            }
          }
          const fresh = MerkleTree.build(held, depth)
          expect(tree.root()).toEqual(fresh.root())
          expect(tree.size).toBe(held.size)
          for (const key of held.keys()) expect(tree.hash(tree.bucketOf(key).slice(0, depth - 1))).toBe(fresh.hash(fresh.bucketOf(key).slice(0, depth - 1)))
          if (held.size === 0) expect(tree.root().hash).toBe('')
        },
      ),
    )
  })

  it('rejects children that do not match the nodes asked about, oversized or out-of-range node lists and mismatched depths', () => {
    const a = MerkleTree.build([['x', versionHash('x')]], 2)
    const b = MerkleTree.build([['y', versionHash('y')]], 2)
    const children = encodeChildren(b, 0, [0])
    expect(compareChildren(a, 0, [0], children).length).toBeGreaterThan(0)
    // the bytes describe one parent, not two; nor half of one
    expect(() => compareChildren(a, 0, [0, 0], children)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => compareChildren(a, 0, [0], children.subarray(0, children.length - 1))).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => compareChildren(a, 0, [0], new Uint8Array([...children, 0]))).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => encodeNodeList(Array.from({ length: MERKLE_MAX_NODES + 1 }, () => 0))).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(decodeNodeList(encodeNodeList([3, 255]), 256)).toEqual([3, 255])
    expect(() => decodeNodeList(encodeNodeList([256]), 256)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => decodeNodeList(new Uint8Array(6), 256)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => encodeChildren(a, 2, [0])).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => reconcile(a, new MerkleTree(3))).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => new MerkleTree(9)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })
})
