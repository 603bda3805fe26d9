// The storage coordinator's own bookkeeping, written together with the records it covers:
//
//   aura.storage.meta      'hlc-lease' → a wall time no timestamp of this peer will go below
//                          after a restart (renewed at half-life, so a restart with a clock
//                          that went backwards still stamps later than everything written)
//   aura.storage.writers   index → peer id: stored records name their writer by a small index
//                          (a 52-character peer id in every record cost 15-25% of a batched put
//                          and of a read); the order of records still compares full peer ids
//
// An entry is pending until a write carrying it has committed: it rides along in every batch and
// ahead of every single put until then, so a record never lands without the writer it names or
// past a lease that is not on disk, and a failed batch leaves nothing half-recorded.

import { StorageError } from '../../effects/errors.js'
import type { BatchOp, Storage } from '../../effects/storage/index.js'

const META = 'aura.storage.meta'
const WRITERS = 'aura.storage.writers'
const LEASE_KEY = 'hlc-lease'
/** How far ahead of its clock a peer reserves timestamps on disk; renewed at half-life. */
export const HLC_LEASE_MS = 10_000

export class StorageMeta {
  readonly #storage: Storage
  readonly #writers: string[] = []
  readonly #indexOf = new Map<string, number>()
  /** durable lease; the wanted one when a renewal is pending */
  #lease: number
  #wantedLease: number | undefined
  readonly #pendingWriters = new Set<number>()
  readonly #onError: (error: unknown) => void

  constructor(storage: Storage, onError: (error: unknown) => void) {
    this.#storage = storage
    this.#onError = onError
    this.#lease = Number(storage.namespace(META).get<number>(LEASE_KEY) ?? 0)
    for (const { key, value } of storage.namespace(WRITERS).range<unknown>()) {
      if (typeof key !== 'number' || typeof value !== 'string') throw new StorageError('corrupt writer table entry', { key })
      this.#writers[key] = value
      this.#indexOf.set(value, key)
    }
  }

  /** The lease read at start: the floor of this peer's hybrid clock. */
  get lease(): number {
    return this.#wantedLease ?? this.#lease
  }

  /** The stored index of `peer`, allocated (pending until a write commits) on first use. */
  writerIndex(peer: string): number {
    let index = this.#indexOf.get(peer)
    if (index === undefined) {
      index = this.#writers.length
      this.#writers.push(peer)
      this.#indexOf.set(peer, index)
      this.#pendingWriters.add(index)
    }
    return index
  }

  /** The peer id behind a stored writer index (records written before the table carry the id). */
  writerOf(stored: number | string): string {
    if (typeof stored === 'string') return stored
    const peer = this.#writers[stored]
    if (peer === undefined) throw new StorageError('record names a writer missing from the writer table', { index: stored })
    return peer
  }

  /** Asks for a lease renewal when timestamps (up to `wall`) near the durable one. */
  #renewLeaseFor(wall: number): void {
    if (wall + HLC_LEASE_MS / 2 > this.lease) this.#wantedLease = wall + HLC_LEASE_MS
  }

  /**
   * Commits `ops` (records stamped up to `wall`) in one batch with every pending entry; once it
   * has, they are no longer pending. On failure nothing was written and they stay pending.
   */
  async commit(ops: BatchOp[], wall: number): Promise<void> {
    this.#renewLeaseFor(wall)
    const pending = this.#pending()
    for (const { namespace, key, value } of pending.entries) ops.push({ type: 'put', namespace, key, value })
    await this.#storage.batch(ops)
    this.#saved(pending.lease, pending.writers)
  }

  /**
   * Queues pending entries ahead of a single put (stamped up to `wall`) made in the same turn.
   * The Storage effect commits queued writes in order, so the put cannot land before them.
   */
  writeAheadOfSingle(wall: number): void {
    this.#renewLeaseFor(wall)
    const pending = this.#pending()
    if (pending.entries.length === 0) return
    Promise.all(pending.entries.map(({ namespace, key, value }) => this.#storage.namespace(namespace).put(key, value))).then(
      () => this.#saved(pending.lease, pending.writers),
      this.#onError,
    )
  }

  /** What is not on disk yet: the wanted lease and the new writers, as entries to write. */
  #pending(): { lease: number | undefined; writers: number[]; entries: Array<{ namespace: string; key: string | number; value: unknown }> } {
    const lease = this.#wantedLease
    const writers = [...this.#pendingWriters]
    const entries: Array<{ namespace: string; key: string | number; value: unknown }> = writers.map((index) => ({
      namespace: WRITERS,
      key: index,
      value: this.#writers[index],
    }))
    if (lease !== undefined) entries.push({ namespace: META, key: LEASE_KEY, value: lease })
    return { lease, writers, entries }
  }

  #saved(lease: number | undefined, writers: readonly number[]): void {
    if (lease !== undefined && lease > this.#lease) this.#lease = lease
    if (this.#wantedLease !== undefined && this.#wantedLease <= this.#lease) this.#wantedLease = undefined
    for (const index of writers) this.#pendingWriters.delete(index)
  }
}
