// Where a CRDT collection lives on disk: one storage namespace, one record per document
// (key = document name, value = { kind, type, payload }, the payload being what a peer at the
// empty version lacks). Yjs documents also keep a log: each flush appends the updates since
// the last one under key [name, seq] (one update, or the list of them in order), and only every
// LOG_LIMIT entries (or LOG_BYTES) is the whole document rewritten. Rewriting a whole Yjs
// document on every keystroke or every sync costs O(document) per change; appending costs O(change).
//
// Writes are plain puts issued in one event turn (lmdb-js commits a turn's writes as one
// transaction, off the main thread) rather than a synchronous batch, which would commit and
// fsync on the event loop in the middle of a sync.
//
// Compaction writes the snapshot first and deletes the log entries it covers only once the
// snapshot is durable. A crash in between leaves entries that are replayed over a snapshot
// already containing them; Yjs updates are idempotent, so that is harmless.

import type { Namespace } from '../../effects/storage/index.js'
import { VectorClock } from './lattices/index.js'
import type { CrdtDocument } from './document.js'

/** Log entries a Yjs document keeps before the next flush rewrites it whole. */
export const LOG_LIMIT = 64
/** Log bytes after which the next flush rewrites the document whole. */
export const LOG_BYTES = 256 * 1024

interface YjsLog {
  /** a whole record of this document is durable; log entries [first, next) extend it */
  base: boolean
  first: number
  next: number
  bytes: number
  /** updates since the last flush */
  pending: Uint8Array[]
}

export interface StoredDocument {
  name: string
  record: unknown
  /** Yjs log entries in order */
  updates: Uint8Array[]
  /** the log's seq range, so compaction can remove what a snapshot covers */
  first: number
  next: number
  bytes: number
}

export class CrdtStore {
  private readonly dirty = new Set<string>()
  private readonly logs = new Map<string, YjsLog>()
  private chain: Promise<void> = Promise.resolve()
  /** the write that has not started yet, which every change made until it starts joins */
  private queued: Promise<void> | undefined
  private namespace: Namespace | undefined

  constructor(private readonly docs: ReadonlyMap<string, CrdtDocument>) {}

  get bound(): boolean {
    return this.namespace !== undefined
  }

  bind(namespace: Namespace): void {
    this.namespace = namespace
  }

  markDirty(name: string): void {
    this.dirty.add(name)
  }

  /** A Yjs document: its changes are appended as updates once its first whole record is written. */
  trackYjs(name: string): void {
    if (!this.logs.has(name)) this.logs.set(name, { base: false, first: 0, next: 0, bytes: 0, pending: [] })
  }

  /** An update a Yjs document emitted (local edit or join). */
  yjsUpdate(name: string, update: Uint8Array): void {
    const log = this.logs.get(name)
    if (log?.base) log.pending.push(update)
  }

  /** Every stored document with its Yjs log, read in one pass. */
  load(): StoredDocument[] {
    const namespace = this.namespace
    if (!namespace) return []
    const records = new Map<string, unknown>()
    const entries = new Map<string, Array<[number, Uint8Array]>>()
    for (const { key, value } of namespace.range()) {
      if (Array.isArray(key)) {
        const [name, seq] = key as [unknown, unknown]
        const updates = value instanceof Uint8Array ? [value] : Array.isArray(value) && value.every((u) => u instanceof Uint8Array) ? value : undefined
        if (key.length !== 2 || typeof name !== 'string' || typeof seq !== 'number' || updates === undefined) continue
        let list = entries.get(name)
        if (!list) entries.set(name, (list = []))
        for (const update of updates) list.push([seq, update])
      } else {
        records.set(String(key), value)
      }
    }
    const out: StoredDocument[] = []
    for (const [name, record] of records) {
      const list = (entries.get(name) ?? []).sort((x, y) => x[0] - y[0])
      out.push({
        name,
        record,
        updates: list.map(([, u]) => u),
        first: list.length === 0 ? 0 : list[0]![0],
        next: list.length === 0 ? 0 : list[list.length - 1]![0] + 1,
        bytes: list.reduce((n, [, u]) => n + u.byteLength, 0),
      })
    }
    return out
  }

  /**
   * After restoring `stored`: when the document holds exactly what storage holds (`exact`),
   * later changes append to its log; otherwise the next flush rewrites it whole.
   */
  restored(stored: StoredDocument, exact: boolean): void {
    const log = this.logs.get(stored.name)
    if (!log) return
    Object.assign(log, { base: exact, first: stored.first, next: stored.next, bytes: stored.bytes, pending: [] })
  }

  /**
   * Writes every changed document; resolves when durable. Writes run one after another, and
   * flushes asked for while one runs share the next write: under a stream of syncs the disk
   * sees one write per commit time, not one per sync.
   */
  flush(): Promise<void> {
    const namespace = this.namespace
    if (!namespace) return Promise.resolve()
    if (this.queued) return this.queued
    const next = this.chain.then(() => {
      this.queued = undefined
      return this.write(namespace)
    })
    this.queued = next
    this.chain = next.catch(() => undefined)
    return next
  }

  private async write(namespace: Namespace): Promise<void> {
    if (this.dirty.size === 0) return
    const names = [...this.dirty]
    this.dirty.clear()
    const writes: Array<Promise<void>> = []
    const covered: Array<[string, number, number]> = []
    for (const name of names) {
      const doc = this.docs.get(name)
      if (!doc) continue
      const log = this.logs.get(name)
      if (log?.base) {
        if (log.pending.length === 0) continue
        if (log.next - log.first < LOG_LIMIT && log.bytes < LOG_BYTES) {
          // Several updates (syncs that came in while the last write committed) go as their list:
          // Y.mergeUpdates decodes and re-encodes them all, which cost more than the write.
          const pending = log.pending
          log.pending = []
          writes.push(namespace.put([name, log.next], pending.length === 1 ? pending[0]! : pending))
          log.next += 1
          for (const update of pending) log.bytes += update.byteLength
          continue
        }
      }
      const payload = doc.missingFor(VectorClock.empty, '') ?? null
      writes.push(namespace.put(name, { kind: doc.kind, type: doc.typeName, payload }))
      if (log) {
        if (log.next > log.first) covered.push([name, log.first, log.next])
        Object.assign(log, { base: true, first: log.next, bytes: 0, pending: [] })
      }
    }
    try {
      await Promise.all(writes)
    } catch (error) {
      // What did not land is unknown: rewrite these documents whole next time.
      for (const name of names) {
        this.dirty.add(name)
        const log = this.logs.get(name)
        if (log) Object.assign(log, { base: false, pending: [] })
      }
      for (const [name, from] of covered) this.logs.get(name)!.first = from
      throw error
    }
    const removals: Array<Promise<boolean>> = []
    for (const [name, from, to] of covered) for (let seq = from; seq < to; seq++) removals.push(namespace.delete([name, seq]))
    await Promise.all(removals)
  }
}
