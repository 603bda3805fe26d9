import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MerkleTree, versionHash } from '../../../runtime/crdt/lattices/index.js'
import {
  answerMerkle,
  diffBelowRoot,
  diffFromRoot,
  MERKLE_COMPARE_PARENTS,
  MERKLE_DUMP_ENTRIES,
  merkleRequestSchema,
  type MerkleRequest,
} from '../../../runtime/storage/merkle-exchange.js'

/** An `ask` answered by `remote` as a peer would (the request validated first), counting requests. */
function peer(remote: MerkleTree): { ask: (r: MerkleRequest) => Promise<unknown>; asked: MerkleRequest[] } {
  const asked: MerkleRequest[] = []
  return { asked, ask: async (r) => (asked.push(r), answerMerkle(remote, merkleRequestSchema.parse(r))) }
}

const keys = fc.uniqueArray(fc.string({ minLength: 1, maxLength: 6 }), { maxLength: 150 })

describe('merkle exchange over the wire', () => {
  it('diffFromRoot finds exactly the keys that differ, whichever side holds them, in fewer round trips than a root exchange then children from the root down', async () => {
    await fc.assert(
      fc.asyncProperty(
        keys,
        fc.array(fc.tuple(fc.nat(), fc.constantFrom('local', 'remote', 'change')), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 1, max: 4 }),
        async (ks, edits, depth) => {
          const local = MerkleTree.build(
            ks.map((k) => [k, versionHash(k)] as const),
            depth,
          )
          const remote = MerkleTree.build(
            ks.map((k) => [k, versionHash(k)] as const),
            depth,
          )
          const expected = { onlyLocal: new Set<string>(), onlyRemote: new Set<string>(), different: new Set<string>() }
          for (const [i, side] of edits) {
            const k = `${side}:${i}`
            if (side === 'local' && !expected.onlyLocal.has(k)) (local.set(k, versionHash(k)), expected.onlyLocal.add(k))
            if (side === 'remote' && !expected.onlyRemote.has(k)) (remote.set(k, versionHash(k)), expected.onlyRemote.add(k))
            if (side === 'change' && ks.length > 0) {
              const c = ks[i % ks.length]!
              remote.set(c, versionHash(`changed:${c}`))
              expected.different.add(c)
            }
          }
          const viaRoot = peer(remote)
          const { asked, ask } = peer(remote)
          const { attached, ...diff } = await diffFromRoot(local, ask)
          expect(attached).toEqual([])
          expect(new Set(diff.onlyLocal)).toEqual(expected.onlyLocal)
          expect(new Set(diff.onlyRemote)).toEqual(expected.onlyRemote)
          expect(new Set(diff.different)).toEqual(expected.different)
          // the classic walk (after a root request of its own): children from the root down
          expect(await diffBelowRoot(local, viaRoot.ask)).toEqual(diff)
          // two levels a round trip, the buckets dumped with the last one (all within the dump budget here)
          const differs = expected.onlyLocal.size + expected.onlyRemote.size + expected.different.size > 0
          expect(asked.length).toBe(differs ? Math.ceil(depth / 2) : 1)
          if (differs && depth > 1) expect(asked.length).toBeLessThan(viaRoot.asked.length)
        },
      ),
    )
  })

  it('equal trees cost one request, answered `equal` without any hashes', async () => {
    const entries = Array.from({ length: 500 }, (_, i) => [`k${i}`, versionHash(`v${i}`)] as const)
    for (const depth of [1, 2, 3]) {
      const { asked, ask } = peer(MerkleTree.build([...entries].reverse(), depth))
      expect(await diffFromRoot(MerkleTree.build(entries, depth), ask)).toEqual({ onlyLocal: [], onlyRemote: [], different: [], attached: [] })
      expect(asked).toHaveLength(1)
      expect(answerMerkle(MerkleTree.build(entries, depth), asked[0]!)).toEqual({ equal: true })
    }
  })

  it('a peer that answers `equal` to a request without our root is refused', async () => {
    const local = MerkleTree.build([['a', versionHash('a')]], 3)
    const other = MerkleTree.build([['b', versionHash('b')]], 3)
    let first = true
    const ask = async (r: MerkleRequest) => (first ? ((first = false), answerMerkle(other, r)) : { equal: true })
    await expect(diffFromRoot(local, ask)).rejects.toMatchObject({ code: 'INVALID_INPUT' })
  })

  /** Two trees of `n` keys at `depth`, the remote one with every `stride`-th key changed; the changed keys. */
  function changedEvery(n: number, depth: number, stride: number): { local: MerkleTree; remote: MerkleTree; changed: string[] } {
    const entries = Array.from({ length: n }, (_, i) => [`key:${i}`, versionHash(`v${i}`)] as const)
    const local = MerkleTree.build(entries, depth)
    const remote = MerkleTree.build(entries, depth)
    const changed: string[] = []
    for (let i = 0; i < n; i += stride) (remote.set(`key:${i}`, versionHash(`changed${i}`)), changed.push(`key:${i}`))
    return { local, remote, changed }
  }

  it('past the dump budget the last level comes as hashes, and the differing buckets one round trip later', async () => {
    const { local, remote, changed } = changedEvery(40_000, 2, 500)
    const { asked, ask } = peer(remote)
    const diff = await diffFromRoot(local, ask)
    expect(new Set(diff.different)).toEqual(new Set(changed))
    expect(diff.onlyLocal).toEqual([])
    expect(diff.onlyRemote).toEqual([])
    // 80 changes over 16 level-1 nodes of ~2,500 entries each: far more than the budget
    expect(40_000).toBeGreaterThan(MERKLE_DUMP_ENTRIES)
    expect(asked.map((r) => (r.op === 'compare' ? r.level : -1))).toEqual([0, 1])
  })

  it('a wide frontier goes out in chunks of parents, together, and still finds every difference', async () => {
    const { local, remote, changed } = changedEvery(30_000, 4, 10)
    const { asked, ask } = peer(remote)
    const diff = await diffFromRoot(local, ask)
    expect(new Set(diff.different)).toEqual(new Set(changed))
    const chunks = asked.filter((r) => r.op === 'compare' && r.level === 2)
    expect(chunks.length).toBeGreaterThan(1)
    for (const r of chunks) expect(r.op === 'compare' && r.nodes.byteLength / 4).toBeLessThanOrEqual(MERKLE_COMPARE_PARENTS)
  })

  it('rejects compare requests naming too many parents, and replies that name nodes not asked about or dump too little', async () => {
    const tree = MerkleTree.build([['a', versionHash('a')]], 2)
    const wide = { digest: 'merkle', op: 'compare', depth: 2, level: 1, nodes: new Uint8Array(4 * (MERKLE_COMPARE_PARENTS + 1)), children: new Uint8Array(0) }
    expect(merkleRequestSchema.safeParse(wide).success).toBe(false)

    const local = MerkleTree.build([['a', versionHash('a')]], 3)
    const other = MerkleTree.build([['b', versionHash('b')]], 3)
    const honest = async (r: MerkleRequest) => answerMerkle(other, r) as Record<string, Uint8Array>
    // the first answer names a level-1 node that is no child of the root... (index 16 at level 1)
    const stray = async (r: MerkleRequest) => ({ ...(await honest(r)), nodes: new Uint8Array([0, 0, 0, 16]) })
    await expect(diffFromRoot(local, stray)).rejects.toMatchObject({ code: 'INVALID_INPUT' })
    // ...or the last answer's dump is cut short
    let step = 0
    const cut = async (r: MerkleRequest) => {
      const reply = await honest(r)
      return step++ === 0 ? reply : { ...reply, buckets: reply.buckets!.subarray(0, reply.buckets!.byteLength - 1) }
    }
    await expect(diffFromRoot(local, cut)).rejects.toMatchObject({ code: 'INVALID_INPUT' })
    // buckets dumped where hashes were due
    const early = async (r: MerkleRequest) => ({ nodes: (await honest(r)).nodes, buckets: new Uint8Array(0) })
    await expect(diffFromRoot(local, early)).rejects.toMatchObject({ code: 'INVALID_INPUT' })
  })

  it("the last request carries the asker's payload once it knows the differing buckets; the peer answers it with the buckets it found", async () => {
    const { local, remote, changed } = changedEvery(40_000, 2, 500)
    const seen: number[][] = []
    const ask = async (r: MerkleRequest) => answerMerkle(remote, merkleRequestSchema.parse(r), (attach, buckets) => (seen.push([...buckets]), { echo: attach }))
    const diff = await diffFromRoot(local, ask, (buckets) => buckets.length)
    expect(new Set(diff.different)).toEqual(new Set(changed))
    const differingBuckets = [...new Set(changed.map((k) => local.bucketIndex(k)))].sort((a, b) => a - b)
    expect(seen).toEqual([differingBuckets])
    expect(diff.attached).toEqual([{ echo: differingBuckets.length }])
    // a peer that takes no payload (or not at that level) refuses it
    const plain = { digest: 'merkle', op: 'compare', depth: 2, level: 1, nodes: new Uint8Array(4), children: new Uint8Array(2), attach: 1 } as const
    expect(() => answerMerkle(remote, merkleRequestSchema.parse(plain))).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => answerMerkle(remote, merkleRequestSchema.parse({ ...plain, level: 0 }), () => 1)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })
})
