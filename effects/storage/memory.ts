import { z } from 'zod'
import { ConfigInvalid, StorageError, invalidInput } from '../errors.js'
import type { BatchOp, Entry, Namespace, RangeOptions, Storage, StorageKey } from './store.js'
import { compareBytes, keyToSortable } from './key-order.js'
import { DEFAULT_MAX_VALUE_BYTES, checkBatch, checkKey, checkNamespaceName, checkRange, checkValue, type CheckedKey } from './storage-input.js'

/** Orders two keys exactly as LMDB does (after the same normalization): <0, 0 or >0. */
export function compareKeys(a: StorageKey, b: StorageKey): number {
  return compareBytes(checkKey(a).bytes, checkKey(b).bytes)
}

const MemoryOptions = z.object({ maxValueBytes: z.number().int().positive().optional() }).strict()

interface Slot {
  /** encoded key as a byte-per-unit string: its natural order is LMDB's key order */
  sortable: string
  key: StorageKey
  value: unknown
}

/**
 * Storage in a process's memory with LmdbStorage's semantics: the same key order, validation and
 * errors, copies in and out (structuredClone), and all-or-nothing batches. For tests and
 * simulation; nothing survives the process.
 */
export class MemoryStorage implements Storage {
  readonly #maxValueBytes: number
  readonly #namespaces = new Map<string, MemoryNamespace>()
  #closed = false

  constructor(options: { maxValueBytes?: number } = {}) {
    const parsed = MemoryOptions.safeParse(options)
    if (!parsed.success) throw new ConfigInvalid('invalid memory storage options', { issues: parsed.error.issues })
    this.#maxValueBytes = parsed.data.maxValueBytes ?? DEFAULT_MAX_VALUE_BYTES
  }

  namespace(name: string): Namespace {
    this.#assertOpen()
    return this.#namespace(checkNamespaceName(name))
  }

  async batch(ops: readonly BatchOp[]): Promise<void> {
    this.#assertOpen()
    const checked = checkBatch(ops, this.#maxValueBytes)
    // Clone every value before touching any namespace, so a value that cannot be cloned
    // leaves the whole batch unapplied.
    const prepared = checked.map((op) => (op.type === 'put' ? { ...op, value: cloneIn(op.value) } : op))
    for (const op of prepared) {
      const ns = this.#namespace(op.namespace)
      if (op.type === 'put') ns.write(op.key, op.value)
      else ns.erase(op.key)
    }
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#namespaces.clear()
  }

  #namespace(name: string): MemoryNamespace {
    let ns = this.#namespaces.get(name)
    if (ns === undefined) {
      ns = new MemoryNamespace(name, this.#maxValueBytes, () => this.#assertOpen())
      this.#namespaces.set(name, ns)
    }
    return ns
  }

  #assertOpen(): void {
    if (this.#closed) throw new StorageError('storage is closed')
  }
}

class MemoryNamespace implements Namespace {
  readonly name: string
  readonly #maxValueBytes: number
  readonly #assertOpen: () => void
  /** kept sorted by `sortable`; binary search finds keys and range bounds */
  readonly #slots: Slot[] = []

  constructor(name: string, maxValueBytes: number, assertOpen: () => void) {
    this.name = name
    this.#maxValueBytes = maxValueBytes
    this.#assertOpen = assertOpen
  }

  get<V = unknown>(key: StorageKey): V | undefined {
    this.#assertOpen()
    const slot = this.#find(keyToSortable(checkKey(key).bytes))
    return slot === undefined ? undefined : (structuredClone(slot.value) as V)
  }

  has(key: StorageKey): boolean {
    this.#assertOpen()
    return this.#find(keyToSortable(checkKey(key).bytes)) !== undefined
  }

  async put(key: StorageKey, value: unknown): Promise<void> {
    this.#assertOpen()
    const checked = checkKey(key)
    checkValue(value, this.#maxValueBytes)
    this.write(checked, cloneIn(value))
  }

  async delete(key: StorageKey): Promise<boolean> {
    this.#assertOpen()
    return this.erase(checkKey(key))
  }

  *range<V = unknown>(options?: RangeOptions): Iterable<Entry<V>> {
    this.#assertOpen()
    const { start, end, limit, reverse } = checkRange(options)
    const slots = this.#slots
    const lo = start === undefined ? 0 : this.#lowerBound(keyToSortable(start.bytes))
    const hi = end === undefined ? slots.length : this.#lowerBound(keyToSortable(end.bytes))
    const max = limit ?? Number.POSITIVE_INFINITY
    let yielded = 0
    // Snapshot the window so writes during iteration do not skip or repeat entries.
    const window = slots.slice(lo, Math.max(lo, hi))
    if (reverse) window.reverse()
    for (const slot of window) {
      if (yielded++ >= max) return
      yield { key: structuredClone(slot.key), value: structuredClone(slot.value) as V }
    }
  }

  count(): number {
    this.#assertOpen()
    return this.#slots.length
  }

  /** @internal stores an already validated and cloned value */
  write(key: CheckedKey, value: unknown): void {
    const sortable = keyToSortable(key.bytes)
    const at = this.#lowerBound(sortable)
    const existing = this.#slots[at]
    if (existing !== undefined && existing.sortable === sortable) existing.value = value
    else this.#slots.splice(at, 0, { sortable, key: key.key, value })
  }

  /** @internal */
  erase(key: CheckedKey): boolean {
    const sortable = keyToSortable(key.bytes)
    const at = this.#lowerBound(sortable)
    if (this.#slots[at]?.sortable !== sortable) return false
    this.#slots.splice(at, 1)
    return true
  }

  #find(sortable: string): Slot | undefined {
    const slot = this.#slots[this.#lowerBound(sortable)]
    return slot?.sortable === sortable ? slot : undefined
  }

  #lowerBound(sortable: string): number {
    let lo = 0
    let hi = this.#slots.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (this.#slots[mid]!.sortable < sortable) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

function cloneIn(value: unknown): unknown {
  try {
    return structuredClone(value)
  } catch (cause) {
    throw invalidInput('storage value', [{ message: String(cause) }])
  }
}
