import fc from 'fast-check'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, describe, expect, it } from 'vitest'
import { isAuraError } from '../../effects/errors.js'
import {
  CrashableStorage,
  LmdbStorage,
  MemoryStorage,
  compareKeys,
  type BatchOp,
  type RangeOptions,
  type Storage,
  type StorageKey,
} from '../../effects/storage/index.js'

const dirs: string[] = []
const tempDir = (): string => {
  const dir = mkdtempSync(join(tmpdir(), 'aura-storage-'))
  dirs.push(dir)
  return dir
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true })
})

async function errorCode(fn: () => unknown): Promise<string | undefined> {
  try {
    await fn()
  } catch (e) {
    return isAuraError(e) ? e.code : `not-aura: ${String(e)}`
  }
  return undefined
}

// Keys chosen to stress ordering: shared prefixes, the empty string, non-ASCII, negative and
// fractional numbers, numbers vs strings, arrays vs their prefixes, one-element arrays.
const keyPart = fc.oneof(
  fc.constantFrom('', 'a', 'ab', 'b', 'a b', 'z', 'é', '日本', '😀', '~', 'A'),
  fc.string({ maxLength: 4 }).filter((s) => !/[\u0000-\u001f]/.test(s)),
  fc.constantFrom(0, 1, -1, 2, 0.5, -0.5, 10, 255, 256, 1e9, -1e9, 1e-9, 2 ** 40, -(2 ** 40)),
  fc.integer({ min: -1000, max: 1000 }),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
)
const key: fc.Arbitrary<StorageKey> = fc.oneof(keyPart, fc.array(keyPart, { minLength: 1, maxLength: 3 }))
const value = fc.oneof(
  fc.integer(),
  fc.string({ maxLength: 8 }),
  fc.uint8Array({ maxLength: 8 }),
  fc.record({ n: fc.integer(), tags: fc.array(fc.string({ maxLength: 3 }), { maxLength: 3 }) }),
)
const ns = fc.constantFrom('a', 'b')
type Op =
  | { type: 'put'; ns: string; key: StorageKey; value: unknown }
  | { type: 'delete'; ns: string; key: StorageKey }
  | { type: 'batch'; ops: Array<{ type: 'put'; ns: string; key: StorageKey; value: unknown } | { type: 'delete'; ns: string; key: StorageKey }> }
const single = fc.oneof(fc.record({ type: fc.constant('put' as const), ns, key, value }), fc.record({ type: fc.constant('delete' as const), ns, key }))
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: single },
  { weight: 1, arbitrary: fc.record({ type: fc.constant('batch' as const), ops: fc.array(single, { maxLength: 5 }) }) },
)
const range: fc.Arbitrary<RangeOptions> = fc.record(
  { start: key, end: key, limit: fc.integer({ min: 0, max: 6 }), reverse: fc.boolean() },
  { requiredKeys: [] },
)

/** Buffers (from lmdb) and Uint8Arrays (from memory) carry the same bytes; compare them as such. */
function plain(v: unknown): unknown {
  if (v instanceof Uint8Array) return { bytes: Array.from(v) }
  if (Array.isArray(v)) return v.map(plain)
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]))
  return v
}

async function apply(storage: Storage, prefix: string, o: Op): Promise<unknown> {
  const name = (n: string): string => `${prefix}.${n}`
  if (o.type === 'put') return storage.namespace(name(o.ns)).put(o.key, o.value)
  if (o.type === 'delete') return storage.namespace(name(o.ns)).delete(o.key)
  const ops: BatchOp[] = o.ops.map((x) =>
    x.type === 'put' ? { type: 'put', namespace: name(x.ns), key: x.key, value: x.value } : { type: 'delete', namespace: name(x.ns), key: x.key },
  )
  return storage.batch(ops)
}

function snapshot(storage: Storage, prefix: string, ranges: RangeOptions[]): unknown {
  return ['a', 'b'].map((n) => {
    const space = storage.namespace(`${prefix}.${n}`)
    return {
      count: space.count(),
      all: plain([...space.range()]),
      ranges: ranges.map((r) => plain([...space.range(r)])),
    }
  })
}

describe('LmdbStorage and MemoryStorage parity', () => {
  it('property: the same operations give identical range() results (key order parity)', async () => {
    const lmdb = new LmdbStorage({ path: tempDir() })
    let run = 0
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(op, { maxLength: 25 }), fc.array(range, { maxLength: 4 }), async (ops, ranges) => {
          const prefix = `run${run++}`
          const memory = new MemoryStorage()
          for (const o of ops) {
            const [l, m] = [await apply(lmdb, prefix, o), await apply(memory, prefix, o)]
            expect(l).toEqual(m)
          }
          expect(snapshot(lmdb, prefix, ranges)).toEqual(snapshot(memory, prefix, ranges))
          for (const o of ops) {
            if (o.type === 'put') {
              expect(plain(lmdb.namespace(`${prefix}.${o.ns}`).get(o.key))).toEqual(plain(memory.namespace(`${prefix}.${o.ns}`).get(o.key)))
            }
          }
        }),
        { numRuns: 100 },
      )
    } finally {
      await lmdb.close()
    }
  })

  it('property: compareKeys sorts keys into the order lmdb iterates them', async () => {
    const lmdb = new LmdbStorage({ path: tempDir() })
    let run = 0
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(key, { maxLength: 20 }), async (keys) => {
          const space = lmdb.namespace(`order${run++}`)
          for (const k of keys) await space.put(k, 0)
          const stored = [...space.range()].map((e) => e.key)
          expect([...stored].sort(compareKeys)).toEqual(stored)
          for (let i = 1; i < stored.length; i++) expect(compareKeys(stored[i - 1]!, stored[i]!)).toBeLessThan(0)
        }),
        { numRuns: 50 },
      )
    } finally {
      await lmdb.close()
    }
  })

  it('orders numbers before strings, negatives first, arrays element-wise with prefixes first', () => {
    const keys: StorageKey[] = ['b', ['a', 2], -5, 'a', ['a', 1], 3, ['a', 'b'], '', 0.25, ['a', -1]]
    expect([...keys].sort(compareKeys)).toEqual([-5, 0.25, 3, '', 'a', ['a', -1], ['a', 1], ['a', 2], ['a', 'b'], 'b'])
    expect(compareKeys(['x'], 'x')).toBe(0)
  })
})

for (const [label, make] of [
  ['LmdbStorage', () => new LmdbStorage({ path: tempDir() })],
  ['MemoryStorage', () => new MemoryStorage()],
] as const) {
  describe(label, () => {
    it('round-trips a 1 MiB value, as a copy', async () => {
      const s: Storage = make()
      const big = new Uint8Array(1024 * 1024)
      for (let i = 0; i < big.length; i++) big[i] = (i * 31) & 0xff
      const space = s.namespace('blobs')
      await space.put('big', big)
      big[0] = 99 // mutating what was written must not change what is stored
      const back = space.get<Uint8Array>('big')!
      expect(back).toBeInstanceOf(Uint8Array)
      expect(back.length).toBe(1024 * 1024)
      expect(back[0]).toBe(0)
      expect(back[12345]).toBe((12345 * 31) & 0xff)
      back[1] = 77 // nor must mutating what was read
      expect(space.get<Uint8Array>('big')![1]).toBe(31)
      await s.close()
    })

    it('keeps structured values: Map, Set, Date and nested objects', async () => {
      const s: Storage = make()
      const space = s.namespace('docs')
      const doc = { m: new Map([['k', 1]]), s: new Set([1, 2]), d: new Date(1234), nested: { list: [1, 'two'] } }
      await space.put(['doc', 1], doc)
      expect(space.get(['doc', 1])).toEqual(doc)
      await s.close()
    })

    it('isolates namespaces', async () => {
      const s: Storage = make()
      await s.namespace('left').put('k', 'L')
      await s.namespace('right').put('k', 'R')
      expect(s.namespace('left').get('k')).toBe('L')
      expect(s.namespace('right').get('k')).toBe('R')
      expect(await s.namespace('left').delete('k')).toBe(true)
      expect(await s.namespace('left').delete('k')).toBe(false)
      expect(s.namespace('left').has('k')).toBe(false)
      expect(s.namespace('right').get('k')).toBe('R')
      expect(s.namespace('right').count()).toBe(1)
      await s.close()
    })

    it('rejects invalid namespace names and keys with InvalidInput', async () => {
      const s: Storage = make()
      for (const bad of ['', 'has space', 'slash/no', 'x'.repeat(65), 'é', 'semi;colon']) {
        expect(await errorCode(() => s.namespace(bad))).toBe('INVALID_INPUT')
      }
      expect(s.namespace('ok_name.v1:part-2').name).toBe('ok_name.v1:part-2')
      const space = s.namespace('keys')
      for (const bad of [[], 'ctrl\u0001', Number.NaN, Number.POSITIVE_INFINITY, [['nested']], 'k'.repeat(2000), true, null]) {
        expect(await errorCode(() => space.put(bad as unknown as StorageKey, 1))).toBe('INVALID_INPUT')
      }
      expect(await errorCode(() => s.batch([{ type: 'put', namespace: 'bad name', key: 'k', value: 1 }]))).toBe('INVALID_INPUT')
      await s.close()
    })

    it('rejects an oversized value and writes nothing, in a put or anywhere in a batch', async () => {
      const s: Storage = label === 'LmdbStorage' ? new LmdbStorage({ path: tempDir(), maxValueBytes: 1024 }) : new MemoryStorage({ maxValueBytes: 1024 })
      const space = s.namespace('limited')
      expect(await errorCode(() => space.put('big', new Uint8Array(2048)))).toBe('INVALID_INPUT')
      expect(await errorCode(() => space.put('big', 'x'.repeat(2048)))).toBe('INVALID_INPUT')
      expect(
        await errorCode(() =>
          s.batch([
            { type: 'put', namespace: 'limited', key: 'small', value: 1 },
            { type: 'put', namespace: 'other', key: 'small', value: 2 },
            { type: 'put', namespace: 'limited', key: 'big', value: { nested: [new Uint8Array(2048)] } },
          ]),
        ),
      ).toBe('INVALID_INPUT')
      expect(space.count()).toBe(0)
      expect(s.namespace('other').count()).toBe(0)
      await space.put('fits', new Uint8Array(512))
      expect(space.count()).toBe(1)
      await s.close()
    })

    it('applies a batch atomically across namespaces, in order', async () => {
      const s: Storage = make()
      await s.namespace('n1').put('gone', 1)
      await s.batch([
        { type: 'put', namespace: 'n1', key: 'x', value: 1 },
        { type: 'put', namespace: 'n2', key: 'y', value: 2 },
        { type: 'delete', namespace: 'n1', key: 'gone' },
        { type: 'put', namespace: 'n1', key: 'x', value: 3 },
      ])
      expect([...s.namespace('n1').range()]).toEqual([{ key: 'x', value: 3 }])
      expect(s.namespace('n2').get('y')).toBe(2)
      expect(await errorCode(() => s.batch([{ type: 'put', namespace: 'n1', key: 'f', value: () => 1 }]))).toBe('INVALID_INPUT')
      expect(s.namespace('n1').has('f')).toBe(false)
      await s.close()
    })

    it('range honours start (inclusive), end (exclusive), limit and reverse', async () => {
      const s: Storage = make()
      const space = s.namespace('r')
      for (let i = 0; i < 10; i++) await space.put(i, `v${i}`)
      const keys = (o: RangeOptions): StorageKey[] => [...space.range(o)].map((e) => e.key)
      expect(keys({ start: 3, end: 6 })).toEqual([3, 4, 5])
      expect(keys({ start: 3, end: 6, reverse: true })).toEqual([5, 4, 3])
      expect(keys({ start: 3, limit: 2 })).toEqual([3, 4])
      expect(keys({ end: 3, reverse: true, limit: 2 })).toEqual([2, 1])
      expect(keys({ start: 6, end: 3 })).toEqual([])
      expect(keys({ start: 5, end: 5 })).toEqual([])
      expect(await errorCode(() => [...space.range({ limit: -1 })])).toBe('INVALID_INPUT')
      await s.close()
    })

    it('close is idempotent and later use fails with StorageError', async () => {
      const s: Storage = make()
      await s.close()
      await s.close()
      expect(await errorCode(() => s.namespace('x'))).toBe('STORAGE')
    })
  })
}

describe('LmdbStorage durability', () => {
  it('keeps data across close and reopen at the same path', async () => {
    const path = tempDir()
    const first = new LmdbStorage({ path })
    await first.namespace('identity').put('key', new Uint8Array([1, 2, 3]))
    await first.batch([
      { type: 'put', namespace: 'crdt', key: ['doc', 1], value: { count: 7 } },
      { type: 'put', namespace: 'crdt', key: ['doc', 2], value: { count: 9 } },
    ])
    await first.close()

    const second = new LmdbStorage({ path })
    expect(Array.from(second.namespace('identity').get<Uint8Array>('key')!)).toEqual([1, 2, 3])
    expect([...second.namespace('crdt').range()]).toEqual([
      { key: ['doc', 1], value: { count: 7 } },
      { key: ['doc', 2], value: { count: 9 } },
    ])
    await second.close()
  })

  it('rejects bad configuration with ConfigInvalid', () => {
    for (const bad of [{}, { path: '' }, { path: tempDir(), maxValueBytes: 0 }, { path: tempDir(), mapSize: -1 }, { path: tempDir(), extra: 1 }]) {
      let code: string | undefined
      try {
        new LmdbStorage(bad as { path: string })
      } catch (e) {
        code = isAuraError(e) ? e.code : 'not-aura'
      }
      expect(code).toBe('CONFIG_INVALID')
    }
  })
})

describe('CrashableStorage', () => {
  it('reads and writes through to its storage until killed; then refuses every write with a StorageError and keeps what was written', async () => {
    const disk = new MemoryStorage()
    const view = new CrashableStorage(disk)
    await view.namespace('n').put('a', 1)
    await view.batch([{ type: 'put', namespace: 'n', key: 'b', value: 2 }])
    expect(disk.namespace('n').get('a')).toBe(1)
    view.kill()
    await expect(view.namespace('n').put('c', 3)).rejects.toMatchObject({ code: 'STORAGE' })
    await expect(view.namespace('n').delete('a')).rejects.toMatchObject({ code: 'STORAGE' })
    await expect(view.namespace('other').put('x', 1)).rejects.toMatchObject({ code: 'STORAGE' })
    await expect(view.batch([{ type: 'delete', namespace: 'n', key: 'b' }])).rejects.toMatchObject({ code: 'STORAGE' })
    // reads still answer, and the disk holds exactly what was written before the kill
    expect([...view.namespace('n').range()].map((e) => e.key)).toEqual(['a', 'b'])
    expect(view.namespace('n').count()).toBe(2)
    // the next incarnation opens the same disk through a fresh view
    const next = new CrashableStorage(disk)
    await next.namespace('n').put('c', 3)
    expect(disk.namespace('n').get('c')).toBe(3)
    // closing a view kills it and leaves the disk open
    await next.close()
    await expect(next.namespace('n').put('d', 4)).rejects.toMatchObject({ code: 'STORAGE' })
    expect(disk.namespace('n').count()).toBe(3)
  })
})
