// Storage effect: namespaced, ordered key-value storage with atomic batches. LMDB in production
// (one environment, one sub-database per namespace), an in-memory map with the same semantics
// in tests and simulation. Values are structured data (anything msgpack can carry, including
// Uint8Array); values read back are copies, never aliases of what was written.

export type StorageKey = string | number | ReadonlyArray<string | number>

export interface RangeOptions {
  /** inclusive lower bound */
  start?: StorageKey
  /** exclusive upper bound */
  end?: StorageKey
  limit?: number
  reverse?: boolean
}

export interface Entry<V = unknown> {
  key: StorageKey
  value: V
}

export type BatchOp = { type: 'put'; namespace: string; key: StorageKey; value: unknown } | { type: 'delete'; namespace: string; key: StorageKey }

export interface Namespace {
  readonly name: string
  get<V = unknown>(key: StorageKey): V | undefined
  has(key: StorageKey): boolean
  /** durable once the promise resolves */
  put(key: StorageKey, value: unknown): Promise<void>
  /** resolves true if something was deleted */
  delete(key: StorageKey): Promise<boolean>
  /** entries in key order */
  range<V = unknown>(options?: RangeOptions): Iterable<Entry<V>>
  count(): number
}

export interface Storage {
  namespace(name: string): Namespace
  /** applies every op or none; durable once the promise resolves */
  batch(ops: readonly BatchOp[]): Promise<void>
  close(): Promise<void>
}

/** Namespace names are [A-Za-z0-9_.:-], 1..64 chars; anything else is InvalidInput. */
export const NAMESPACE_NAME = /^[A-Za-z0-9_.:-]{1,64}$/
