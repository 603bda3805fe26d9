import { StorageError } from '../errors.js'
import type { BatchOp, Entry, Namespace, RangeOptions, Storage, StorageKey } from './store.js'

/**
 * One process's handle on storage that outlives it, which a simulated crash can kill. The
 * simulator keeps each peer's MemoryStorage across a crash (it is the peer's disk) and gives each
 * incarnation of the peer its own view. Once killed, the view refuses every write (put, delete,
 * batch) with a StorageError, so the dead process changes nothing on disk: what survives is
 * exactly what was written before the crash. Reads still answer — a read cannot corrupt anything,
 * and a dead process's leftover promise chains may make them.
 *
 * close() kills the view and leaves the storage open: the storage belongs to whoever made it
 * (the simulation), and the next incarnation opens it again through a fresh view.
 */
export class CrashableStorage implements Storage {
  readonly #base: Storage
  readonly #namespaces = new Map<string, Namespace>()
  #dead = false

  constructor(base: Storage) {
    this.#base = base
  }

  get dead(): boolean {
    return this.#dead
  }

  namespace(name: string): Namespace {
    let view = this.#namespaces.get(name)
    if (view === undefined) {
      view = new CrashableNamespace(this.#base.namespace(name), () => this.#assertAlive(name))
      this.#namespaces.set(name, view)
    }
    return view
  }

  async batch(ops: readonly BatchOp[]): Promise<void> {
    this.#assertAlive('batch')
    await this.#base.batch(ops)
  }

  async close(): Promise<void> {
    this.kill()
  }

  /** The process died: every later write is refused. */
  kill(): void {
    this.#dead = true
  }

  #assertAlive(where: string): void {
    if (this.#dead) throw new StorageError('storage view is dead (its process crashed)', { where })
  }
}

class CrashableNamespace implements Namespace {
  constructor(
    private readonly base: Namespace,
    private readonly assertAlive: () => void,
  ) {}

  get name(): string {
    return this.base.name
  }

  get<V = unknown>(key: StorageKey): V | undefined {
    return this.base.get<V>(key)
  }

  has(key: StorageKey): boolean {
    return this.base.has(key)
  }

  async put(key: StorageKey, value: unknown): Promise<void> {
    this.assertAlive()
    await this.base.put(key, value)
  }

  async delete(key: StorageKey): Promise<boolean> {
    this.assertAlive()
    return this.base.delete(key)
  }

  range<V = unknown>(options?: RangeOptions): Iterable<Entry<V>> {
    return this.base.range<V>(options)
  }

  count(): number {
    return this.base.count()
  }
}
