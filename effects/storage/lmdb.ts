import { open, type Database, type Key, type RootDatabase } from 'lmdb'
import { z } from 'zod'
import { ConfigInvalid, StorageError, isAuraError } from '../errors.js'
import type { BatchOp, Entry, Namespace, RangeOptions, Storage, StorageKey } from './store.js'
import { compareBytes } from './key-order.js'
import { DEFAULT_MAX_VALUE_BYTES, checkBatch, checkKey, checkNamespaceName, checkRange, checkValue } from './storage-input.js'

const LmdbOptions = z
  .object({
    path: z.string().min(1),
    maxValueBytes: z.number().int().positive().optional(),
    mapSize: z.number().int().positive().optional(),
  })
  .strict()

export type LmdbStorageOptions = z.input<typeof LmdbOptions>

/** Every sub-database is a named LMDB db; the environment must reserve slots for them up front. */
const MAX_NAMESPACES = 1024

// msgpack with structured-clone extensions, so Map, Set, Date, typed arrays and cycles read
// back as they do from MemoryStorage. It must be given to every openDB: sub-databases do not
// inherit the root's encoder options.
const DB_OPTIONS = { encoder: { structuredClone: true } } as const

/**
 * Storage on one LMDB environment with a sub-database per namespace. Single writes are queued
 * into lmdb-js's event-turn transactions and resolve once committed and flushed; batches run as
 * one synchronous, abortable transaction across namespaces. Byte values read back as Buffer
 * (a Uint8Array subclass), always a fresh copy.
 */
export class LmdbStorage implements Storage {
  readonly #env: RootDatabase
  readonly #maxValueBytes: number
  readonly #namespaces = new Map<string, LmdbNamespace>()
  #closing: Promise<void> | undefined

  constructor(options: LmdbStorageOptions) {
    const parsed = LmdbOptions.safeParse(options)
    if (!parsed.success) throw new ConfigInvalid('invalid lmdb storage options', { issues: parsed.error.issues })
    this.#maxValueBytes = parsed.data.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
    try {
      this.#env = open({
        path: parsed.data.path,
        maxDbs: MAX_NAMESPACES,
        ...(parsed.data.mapSize === undefined ? {} : { mapSize: parsed.data.mapSize }),
      })
    } catch (cause) {
      throw new StorageError('cannot open lmdb environment', { path: parsed.data.path }, { cause })
    }
  }

  namespace(name: string): Namespace {
    this.#assertOpen()
    return this.#namespace(checkNamespaceName(name))
  }

  async batch(ops: readonly BatchOp[]): Promise<void> {
    this.#assertOpen()
    const checked = checkBatch(ops, this.#maxValueBytes)
    const dbs = checked.map((op) => this.#namespace(op.namespace).db)
    // Writes queued before this batch commit first, so the batch lands after them, as in memory.
    await this.#env.committed
    this.#assertOpen()
    try {
      // transactionSync aborts on a throw and returns only after commit and flush. (lmdb-js's
      // asynchronous transaction() callback hangs on this host, and cannot roll back anyway.)
      this.#env.transactionSync(() => {
        checked.forEach((op, i) => {
          if (op.type === 'put') dbs[i]!.putSync(lmdbKey(op.key.key), op.value)
          else dbs[i]!.removeSync(lmdbKey(op.key.key))
        })
      })
    } catch (cause) {
      throw new StorageError('batch failed; nothing was written', { ops: checked.length }, { cause })
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      // Let queued writes land before the environment goes away.
      await this.#env.committed
      this.#namespaces.clear()
      await this.#env.close()
    })()
    return this.#closing
  }

  #namespace(name: string): LmdbNamespace {
    let ns = this.#namespaces.get(name)
    if (ns === undefined) {
      ns = new LmdbNamespace(name, this.#env.openDB({ name, ...DB_OPTIONS }), this.#maxValueBytes, () => this.#assertOpen())
      this.#namespaces.set(name, ns)
    }
    return ns
  }

  #assertOpen(): void {
    if (this.#closing !== undefined) throw new StorageError('storage is closed')
  }
}

class LmdbNamespace implements Namespace {
  readonly name: string
  readonly db: Database
  readonly #maxValueBytes: number
  readonly #assertOpen: () => void

  constructor(name: string, db: Database, maxValueBytes: number, assertOpen: () => void) {
    this.name = name
    this.db = db
    this.#maxValueBytes = maxValueBytes
    this.#assertOpen = assertOpen
  }

  get<V = unknown>(key: StorageKey): V | undefined {
    this.#assertOpen()
    return this.db.get(lmdbKey(checkKey(key).key)) as V | undefined
  }

  has(key: StorageKey): boolean {
    this.#assertOpen()
    return this.db.doesExist(lmdbKey(checkKey(key).key))
  }

  async put(key: StorageKey, value: unknown): Promise<void> {
    this.#assertOpen()
    const checked = checkKey(key)
    checkValue(value, this.#maxValueBytes)
    await storageCall('put', () => this.db.put(lmdbKey(checked.key), value))
  }

  async delete(key: StorageKey): Promise<boolean> {
    this.#assertOpen()
    const k = lmdbKey(checkKey(key).key)
    // lmdb-js resolves remove() with true whether or not the key existed. Once earlier queued
    // writes have landed, existence read in the same turn as the remove is queued is the answer.
    await this.db.committed
    this.#assertOpen()
    const existed = this.db.doesExist(k)
    await storageCall('delete', () => this.db.remove(k))
    return existed
  }

  *range<V = unknown>(options?: RangeOptions): Iterable<Entry<V>> {
    this.#assertOpen()
    const { start, end, limit, reverse } = checkRange(options)
    // An empty or inverted window: lmdb would walk from `start` anyway, so stop here.
    if (start !== undefined && end !== undefined && compareBytes(start.bytes, end.bytes) >= 0) return
    if (limit === 0) return
    // Our bounds are always [start, end) in key order; a reverse walk in lmdb-js starts at its
    // `start` (the high end) and stops at its `end`, so the bounds swap and so does inclusivity.
    const entries = reverse
      ? this.db.getRange({ start: lmdbKey(end?.key), end: lmdbKey(start?.key), reverse: true, exclusiveStart: true, inclusiveEnd: true, limit })
      : this.db.getRange({ start: lmdbKey(start?.key), end: lmdbKey(end?.key), limit })
    for (const { key, value } of entries) yield { key: key as StorageKey, value: value as V }
  }

  count(): number {
    this.#assertOpen()
    return this.db.getCount()
  }
}

/** lmdb-js types keys as mutable arrays; it never mutates them. */
function lmdbKey(key: StorageKey): Key
function lmdbKey(key: StorageKey | undefined): Key | undefined
function lmdbKey(key: StorageKey | undefined): Key | undefined {
  return key as Key | undefined
}

async function storageCall<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call()
  } catch (cause) {
    if (isAuraError(cause)) throw cause
    throw new StorageError(`lmdb ${what} failed`, {}, { cause })
  }
}
