import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { diffBuckets, MerkleTree, versionHash } from '../../../../runtime/crdt/lattices/index.js'
import { diffBucketDump, encodeBucketDump } from '../../../../runtime/crdt/lattices/merkle-buckets.js'

const DEPTH = 1
const buckets = Array.from({ length: 16 }, (_, i) => i)
const entry = fc.tuple(fc.string({ minLength: 1, maxLength: 8, unit: 'grapheme' }), fc.constantFrom('1', '2', versionHash('x')))

function dumpDiff(local: MerkleTree, remote: MerkleTree) {
  const into = { onlyLocal: [] as string[], onlyRemote: [] as string[], different: [] as string[] }
  diffBucketDump(local, buckets, encodeBucketDump(remote, buckets), into)
  return into
}

describe('merkle bucket dumps', () => {
  it('a dump diffs to exactly what diffing the entries does, bucket by bucket (any UTF-8 keys)', () => {
    fc.assert(
      fc.property(fc.array(entry, { maxLength: 60 }), fc.array(entry, { maxLength: 60 }), (mine, theirs) => {
        const local = MerkleTree.build(mine, DEPTH)
        const remote = MerkleTree.build(theirs, DEPTH)
        const expected = { onlyLocal: [] as string[], onlyRemote: [] as string[], different: [] as string[] }
        for (const b of buckets) {
          const d = diffBuckets(local.bucketEntriesAt(b), remote.bucketEntriesAt(b))
          expected.onlyLocal.push(...d.onlyLocal)
          expected.onlyRemote.push(...d.onlyRemote)
          expected.different.push(...d.different)
        }
        const got = dumpDiff(local, remote)
        expect(new Set(got.onlyLocal)).toEqual(new Set(expected.onlyLocal))
        expect(new Set(got.onlyRemote)).toEqual(new Set(expected.onlyRemote))
        expect(new Set(got.different)).toEqual(new Set(expected.different))
      }),
    )
  })

  it('any cut or padding of a dump is refused with InvalidInput, never a partial diff', () => {
    const remote = MerkleTree.build(
      Array.from({ length: 40 }, (_, i) => [`k${i}`, versionHash(`${i}`)] as const),
      DEPTH,
    )
    const local = MerkleTree.build([['k1', versionHash('other')]], DEPTH)
    const dump = encodeBucketDump(remote, buckets)
    fc.assert(
      fc.property(fc.integer({ min: 0, max: dump.byteLength - 1 }), fc.boolean(), (at, pad) => {
        const bad = pad ? new Uint8Array([...dump, 0]) : dump.subarray(0, at)
        const into = { onlyLocal: [], onlyRemote: [], different: [] }
        expect(() => diffBucketDump(local, buckets, bad, into)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
      }),
    )
  })

  it('a repeated key or an empty version hash in a dump is refused', () => {
    const one = MerkleTree.build([['k', 'v']], DEPTH)
    const b = one.bucketIndex('k')
    const dump = encodeBucketDump(one, [b])
    // count 2, the one entry twice (lengths adjusted)
    const section = dump.subarray(4 + 16 + 4)
    const twice = new Uint8Array(dump.byteLength + section.byteLength)
    twice.set(dump)
    twice.set(section, dump.byteLength)
    new DataView(twice.buffer).setUint32(0, 2)
    new DataView(twice.buffer).setUint32(20, 2 * section.byteLength)
    const into = () => ({ onlyLocal: [], onlyRemote: [], different: [] })
    expect(() => diffBucketDump(new MerkleTree(DEPTH), [b], twice, into())).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    const empty = new Uint8Array(dump)
    empty[empty.byteLength - 2] = 0 // version hash length 0, one byte left over
    expect(() => diffBucketDump(new MerkleTree(DEPTH), [b], empty, into())).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })
})
