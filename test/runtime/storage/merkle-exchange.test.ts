import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { MerkleTree, versionHash } from '../../../runtime/crdt/lattices/index.js'
import { answerMerkle, diffBelowRoot, diffFromRoot, merkleRequestSchema, type MerkleRequest } from '../../../runtime/storage/merkle-exchange.js'

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
        fc.integer({ min: 1, max: 3 }),
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
          const diff = await diffFromRoot(local, ask)
          expect(new Set(diff.onlyLocal)).toEqual(expected.onlyLocal)
          expect(new Set(diff.onlyRemote)).toEqual(expected.onlyRemote)
          expect(new Set(diff.different)).toEqual(expected.different)
          // the classic walk (after a root request of its own): children from the root down
          expect(await diffBelowRoot(local, viaRoot.ask)).toEqual(diff)
          const differs = expected.onlyLocal.size + expected.onlyRemote.size + expected.different.size > 0
          if (differs && depth > 1) expect(asked.length).toBe(viaRoot.asked.length - 1)
        },
      ),
    )
  })

  it('equal trees cost one request, answered `equal` without any hashes', async () => {
    const entries = Array.from({ length: 500 }, (_, i) => [`k${i}`, versionHash(`v${i}`)] as const)
    for (const depth of [1, 2, 3]) {
      const { asked, ask } = peer(MerkleTree.build([...entries].reverse(), depth))
      expect(await diffFromRoot(MerkleTree.build(entries, depth), ask)).toEqual({ onlyLocal: [], onlyRemote: [], different: [] })
      expect(asked).toHaveLength(1)
      expect(answerMerkle(MerkleTree.build(entries, depth), asked[0]!)).toEqual({ equal: true })
    }
  })

  it('a peer that answers `equal` to a request without our root is refused', async () => {
    const local = MerkleTree.build([['a', versionHash('a')]], 2)
    const other = MerkleTree.build([['b', versionHash('b')]], 2)
    let first = true
    const ask = async (r: MerkleRequest) => (first ? ((first = false), answerMerkle(other, r)) : { equal: true })
    await expect(diffFromRoot(local, ask)).rejects.toMatchObject({ code: 'INVALID_INPUT' })
  })
})
