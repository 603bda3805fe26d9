// Storage coordination (pattern 3) over the Storage effect: namespaced, capability-checked
// storage. Every operation, local or from a peer, runs the storage operation chart
// (machines/storage.ts): validate → authorize (CapabilityVerifier, cached) → write | read.
//
// Layout in the Storage effect:
//   ns.<name>                  one sub-database per user namespace: key → StoredRecord (storage-record.ts)
//   aura.storage.namespaces    name → declared resolver
//   aura.storage.revocations   capability id → revokedAt (loaded at start: a revocation survives a restart)
//   aura.storage.meta          'hlc-lease', and aura.storage.writers: see storage-meta.ts
//
// Ordering. Single LWW writes go straight to the effect (they never need to read: a local
// timestamp is later than everything this peer has written or observed). Writes that read first
// (CRDT joins, replica merges) and batches run exclusively per namespace: they wait for earlier
// single writes to commit, and later single writes wait for them, so commits land in the order
// the timestamps were decided and no merge can overwrite a newer write.

import { createActor, fromPromise } from 'xstate'
import { runToOutput } from '../core/run-machine.js'
import { z } from 'zod'
import { AuraError, InvalidInput, PermissionDenied, errorFromReport, isAuraError } from '../../effects/errors.js'
import { CapabilityVerifier, RevocationList, issueRoot, type CapabilityToken, type Right } from '../core/capability.js'
import type { Crypto } from '../../effects/crypto/index.js'
import type { BatchOp, Namespace, Storage, StorageKey } from '../../effects/storage/index.js'
import { checkKey, checkValue } from '../../effects/storage/storage-input.js'
import type { Clock } from '../../effects/time/index.js'
import { createStorageOperationMachine, type StorageOperation, type StorageOpInput, type ValidatedOp } from '../../machines/storage.js'
import type { RuntimeEventInput } from '../core/events.js'
import { DEFAULT_MAX_CLOCK_DRIFT_MS, HybridLogicalClock, type HlcTimestamp } from './hybrid-clock.js'
import type { Router } from '../core/router.js'
import { StorageMeta } from './record-meta.js'
import {
  LWW,
  fromDisk,
  isTombstone,
  makeRecord,
  recordStamp,
  resolveRecord,
  resolverSchema,
  resolverType,
  sameResolver,
  storedRecordSchema,
  toDisk,
  type DiskRecord,
  type NamespaceResolver,
  type StoredRecord,
} from './record.js'
import {
  MAX_PREFIX_LENGTH,
  checkUserNamespace,
  parseRequest,
  remoteGetManySchema,
  remoteGetSchema,
  remoteListSchema,
  remotePutManySchema,
  remotePutSchema,
  storageNameOf,
} from './requests.js'

export { type NamespaceResolver, type StoredRecord } from './record.js'

const NAMESPACES = 'aura.storage.namespaces'
const REVOCATIONS = 'aura.storage.revocations'
/** Validity of the self-issued capability for the default namespace. */
const SELF_CAPABILITY_MS = 365 * 24 * 3600_000

export const DEFAULT_MAX_VALUE_BYTES = 4 * 1024 * 1024

export const storageCoordinatorOptionsSchema = z
  .object({
    crypto: z.custom<Crypto>((v) => typeof v === 'object' && v !== null && typeof (v as Crypto).sign === 'function'),
    clock: z.custom<Clock>((v) => typeof v === 'object' && v !== null && typeof (v as Clock).now === 'function'),
    /** peers whose root capabilities are accepted, besides this peer */
    trustedRoots: z.array(z.string().min(1).max(128)).max(10_000).default([]),
    /** namespaces that accept only capabilities rooted at one of the listed owners */
    owners: z.record(z.string().min(1).max(256), z.array(z.string().min(1).max(128)).min(1)).default({}),
    /** capability ids revoked up front (added to the persisted list) */
    revocations: z.array(z.string().min(1)).default([]),
    maxValueBytes: z.number().int().positive().default(DEFAULT_MAX_VALUE_BYTES),
    maxBatchEntries: z.number().int().positive().default(10_000),
    maxListEntries: z.number().int().positive().default(10_000),
    defaultNamespace: z.string().default('default'),
    /** resolvers declared up front (persisted on first use; a conflicting stored one is an error) */
    namespaces: z.record(z.string(), resolverSchema).default({}),
    cacheSize: z.number().int().nonnegative().default(1024),
    /** how far ahead of the local clock a replica's timestamp may be; beyond it the merge is refused (ClockDrift) */
    maxClockDriftMs: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(DEFAULT_MAX_CLOCK_DRIFT_MS),
    emit: z.custom<(event: RuntimeEventInput) => void>((v) => typeof v === 'function').optional(),
    inspect: z.custom<(event: unknown) => void>((v) => typeof v === 'function').optional(),
  })
  .strict()

export type StorageCoordinatorOptions = z.input<typeof storageCoordinatorOptionsSchema>

export interface StoreReceipt {
  namespace: string
  key: StorageKey
  stamp: HlcTimestamp
}

export interface ListedEntry {
  key: StorageKey
  value: unknown
}

export interface GrantOptions {
  audience: string
  namespace: string
  rights: readonly Right[]
  /** default: now */
  notBefore?: number
  expiresAt: number
  id?: string
}

/** Operations a peer can ask of this one on the 'storage' family; see storage-requests.ts. */
export interface RemoteStorage {
  storeInNamespace(namespace: string, key: StorageKey, data: unknown, capability: CapabilityToken): Promise<HlcTimestamp>
  storeMany(namespace: string, entries: ReadonlyArray<{ key: StorageKey; data: unknown }>, capability: CapabilityToken): Promise<number>
  retrieve(namespace: string, key: StorageKey, capability: CapabilityToken): Promise<unknown>
  retrieveMany(namespace: string, keys: readonly StorageKey[], capability: CapabilityToken): Promise<unknown[]>
  delete(namespace: string, key: StorageKey, capability: CapabilityToken): Promise<boolean>
  list(namespace: string, prefix: string, capability: CapabilityToken, options?: { limit?: number }): Promise<ListedEntry[]>
}

export type OperationCounts = Record<StorageOperation, { done: number; denied: number; failed: number }>

interface NamespaceState {
  /** the user's name for it */
  readonly namespace: string
  /** its name in the Storage effect */
  readonly name: string
  readonly db: Namespace
  /** set while an exclusive write (batch, join, merge) is queued or running */
  exclusive: Promise<void> | undefined
  /** the last single write handed to the effect; commits are ordered, so awaiting it awaits all */
  lastWrite: Promise<unknown> | undefined
}

/** A replica merge as the replication coordinator hands it over (already received, not yet checked). */
export interface MergeRequest {
  namespace: string
  resolver: NamespaceResolver
  records: ReadonlyArray<readonly [StorageKey, StoredRecord]>
  capability: unknown
}

/** Told every record written to a namespace, once it has committed (normalized key). */
export type RecordListener = (key: StorageKey, record: StoredRecord) => void

export interface MergeResult {
  /** keys whose local record changed */
  applied: number
  /** keys whose local record already held what arrived */
  unchanged: number
}

const RIGHT_OF: Record<StorageOperation, Right> = {
  store: 'write',
  storeMany: 'write',
  merge: 'replicate',
  delete: 'delete',
  retrieve: 'read',
  retrieveMany: 'read',
  list: 'read',
  declare: 'admin',
}

const noop = () => {}

type Validated =
  | { op: 'store'; capability: unknown; key: StorageKey; data: unknown }
  // keys and data side by side: two arrays instead of an object per entry on the hot path
  | { op: 'storeMany'; capability: unknown; keys: StorageKey[]; data: unknown[] }
  | { op: 'delete' | 'retrieve'; capability: unknown; key: StorageKey }
  | { op: 'retrieveMany'; capability: unknown; keys: StorageKey[] }
  | { op: 'list'; capability: unknown; prefix: string; limit: number }
  | { op: 'merge'; capability: unknown; resolver: NamespaceResolver; records: Array<[StorageKey, StoredRecord]> }
  | { op: 'declare'; capability: unknown; resolver: NamespaceResolver }

export class StorageCoordinator {
  readonly peerId: string
  readonly defaultNamespace: string
  readonly #storage: Storage
  readonly #crypto: Crypto
  readonly #clock: Clock
  readonly #options: z.output<typeof storageCoordinatorOptionsSchema>
  readonly #verifier: CapabilityVerifier
  readonly #revocations: RevocationList
  readonly #hlc: HybridLogicalClock
  readonly #namespaces = new Map<string, NamespaceState>()
  readonly #resolvers = new Map<string, NamespaceResolver>()
  readonly #machine
  readonly #counts = {} as OperationCounts
  readonly #meta: StorageMeta
  /** this peer's index in the writer table */
  readonly #self: number
  #selfCapability: Promise<CapabilityToken> | undefined
  #router: Router | undefined
  /** per stored namespace name: who wants to see every record written there (digests) */
  readonly #listeners = new Map<string, Set<RecordListener>>()

  constructor(peerId: string, storage: Storage, options: StorageCoordinatorOptions) {
    const parsed = storageCoordinatorOptionsSchema.safeParse(options)
    if (!parsed.success) throw new InvalidInput('invalid storage coordinator options', { issues: parsed.error.issues })
    const o = parsed.data
    if (o.crypto.peerId !== peerId) throw new InvalidInput('peerId must be the crypto identity', { peerId, crypto: o.crypto.peerId })
    this.peerId = peerId
    this.defaultNamespace = checkUserNamespace(o.defaultNamespace)
    this.#storage = storage
    this.#crypto = o.crypto
    this.#clock = o.clock
    this.#options = o
    for (const op of ['store', 'storeMany', 'delete', 'merge', 'retrieve', 'retrieveMany', 'list', 'declare'] as const) {
      this.#counts[op] = { done: 0, denied: 0, failed: 0 }
    }

    const revoked = storage.namespace(REVOCATIONS)
    this.#revocations = new RevocationList([...revoked.range()].map((e) => String(e.key)))
    for (const id of o.revocations) this.#revocations.add(id)
    this.#verifier = new CapabilityVerifier({
      crypto: o.crypto,
      clock: o.clock,
      trustedRoots: new Set([peerId, ...o.trustedRoots]),
      revoked: this.#revocations,
      cacheSize: o.cacheSize,
    })

    for (const { key, value } of storage.namespace(NAMESPACES).range<unknown>()) {
      const resolver = resolverSchema.safeParse(value)
      if (resolver.success) this.#resolvers.set(String(key), resolver.data)
    }
    for (const [name, resolver] of Object.entries(o.namespaces)) {
      checkUserNamespace(name)
      resolverType(resolver)
      const stored = this.#resolvers.get(name)
      if (stored && !sameResolver(stored, resolver)) {
        throw new InvalidInput('namespace already declared with another resolver', { namespace: name, stored, declared: resolver })
      }
      this.#resolvers.set(name, resolver)
    }

    this.#meta = new StorageMeta(storage, (error) =>
      o.emit?.({ type: 'error', code: isAuraError(error) ? error.code : 'STORAGE', where: 'storage.meta', message: String(error) }),
    )
    this.#self = this.#meta.writerIndex(peerId)
    this.#hlc = new HybridLogicalClock(o.clock, peerId, this.#meta.lease, o.maxClockDriftMs)

    this.#machine = createStorageOperationMachine({
      validate: (input) => this.#validate(input),
      authorizeCached: (input) => this.#authorizeCached(input),
      read: (input) => this.#read(input),
    }).provide({
      actors: {
        authorize: fromPromise<unknown, ValidatedOp>(({ input }) => this.#authorize(input)),
        write: fromPromise<unknown, ValidatedOp>(({ input }) => this.#write(input)),
      },
    })
  }

  // --- public API ------------------------------------------------------------------------------

  /** Writes `data` under `key`; resolves once durable. Needs 'write' on the namespace. */
  async storeInNamespace(namespace: string, key: StorageKey, data: unknown, capability: CapabilityToken | unknown): Promise<StoreReceipt> {
    const stamp = (await this.#run('store', namespace, this.peerId, { capability, key, data }, true)) as HlcTimestamp
    return { namespace, key, stamp }
  }

  /** Writes every entry or none, in one transaction; resolves with the count once durable. */
  async storeMany(namespace: string, entries: ReadonlyArray<{ key: StorageKey; data: unknown }>, capability: CapabilityToken | unknown): Promise<number> {
    return (await this.#run('storeMany', namespace, this.peerId, { capability, entries }, true)) as number
  }

  /** The value under `key`, or undefined. Needs 'read'. */
  async retrieve(namespace: string, key: StorageKey, capability: CapabilityToken | unknown): Promise<unknown> {
    return this.#run('retrieve', namespace, this.peerId, { capability, key }, true)
  }

  async retrieveMany(namespace: string, keys: readonly StorageKey[], capability: CapabilityToken | unknown): Promise<unknown[]> {
    return (await this.#run('retrieveMany', namespace, this.peerId, { capability, keys }, true)) as unknown[]
  }

  /** Deletes `key` (a tombstone in LWW namespaces, so replicas agree); true if it held a value. Needs 'delete'. */
  async delete(namespace: string, key: StorageKey, capability: CapabilityToken | unknown): Promise<boolean> {
    return (await this.#run('delete', namespace, this.peerId, { capability, key }, true)) as boolean
  }

  /** Entries whose key starts with `prefix` ('' for all), in key order. Needs 'read'. */
  async list(namespace: string, prefix: string, capability: CapabilityToken | unknown, options: { limit?: number } = {}): Promise<ListedEntry[]> {
    return (await this.#run('list', namespace, this.peerId, { capability, prefix, limit: options.limit }, true)) as ListedEntry[]
  }

  /** Declares how concurrent writes to `namespace` resolve. Needs 'admin'; a namespace's resolver never changes. */
  async declareNamespace(namespace: string, resolver: NamespaceResolver, capability: CapabilityToken | unknown): Promise<void> {
    await this.#run('declare', namespace, this.peerId, { capability, resolver }, true)
  }

  /** `store(key, data)` on this peer's own default namespace, under a capability it issues itself. */
  async store(key: StorageKey, data: unknown): Promise<StoreReceipt> {
    return this.storeInNamespace(this.defaultNamespace, key, data, await this.selfCapability())
  }

  /** Reads back what `store` wrote. */
  async load(key: StorageKey): Promise<unknown> {
    return this.retrieve(this.defaultNamespace, key, await this.selfCapability())
  }

  /** Admin rights on the default namespace, held and issued by this peer. */
  selfCapability(): Promise<CapabilityToken> {
    this.#selfCapability ??= (async () => {
      const now = this.#clock.now()
      return issueRoot(this.#crypto, {
        audience: this.peerId,
        namespace: this.defaultNamespace,
        rights: ['admin'],
        notBefore: now,
        expiresAt: now + SELF_CAPABILITY_MS,
      })
    })()
    return this.#selfCapability
  }

  /** A root capability issued by this peer (valid wherever this peer is a trusted root). */
  grant(options: GrantOptions): Promise<CapabilityToken> {
    return issueRoot(this.#crypto, { ...options, notBefore: options.notBefore ?? this.#clock.now() })
  }

  /** Revokes a capability (and everything delegated from it); persisted before it resolves. */
  async revoke(capabilityId: string): Promise<void> {
    if (typeof capabilityId !== 'string' || capabilityId.length === 0 || capabilityId.length > 128) {
      throw new InvalidInput('capability id must be a non-empty string', {})
    }
    this.#revocations.add(capabilityId)
    await this.#storage.namespace(REVOCATIONS).put(capabilityId, this.#clock.now())
  }

  isRevoked(capabilityId: string): boolean {
    return this.#revocations.has(capabilityId)
  }

  resolverOf(namespace: string): NamespaceResolver {
    return this.#resolvers.get(namespace) ?? LWW
  }

  /** Operation outcomes since start, per operation. */
  counts(): OperationCounts {
    return structuredClone(this.#counts)
  }

  /** The Storage effect underneath (the replication coordinator keeps its repair queue there). */
  get effect(): Storage {
    return this.#storage
  }

  get verifierStats(): { hits: number; misses: number; size: number } {
    return this.#verifier.stats
  }

  // --- for the replication coordinator ------------------------------------------------------------

  /**
   * Merges records a peer replicated to this one, resolved by the namespace's resolver. `from` is
   * the authenticated sender; its capability must grant it 'replicate' on the namespace.
   */
  async mergeReplica(from: string, request: MergeRequest): Promise<MergeResult> {
    return (await this.#run('merge', request.namespace, from, request, false)) as MergeResult
  }

  /** Checks that this peer may replicate `namespace` with `capability` (before sending anything). */
  async authorizeOwn(namespace: string, right: Right, capability: unknown): Promise<void> {
    await this.authorize(this.peerId, namespace, right, capability)
  }

  /**
   * Checks that `holder` may exercise `right` on `namespace` with `capability` (PermissionDenied
   * otherwise), with the verifier, trusted roots, owners and revocations storage uses: other
   * patterns (CRDT collections, anti-entropy) authorize their peers here.
   */
  async authorize(holder: string, namespace: string, right: Right, capability: unknown): Promise<void> {
    checkUserNamespace(namespace)
    const cached = this.#verifier.authorizeCached(capability, { holder, namespace, right })
    if (cached !== undefined) return this.#checkOwner(namespace, cached.effective.root)
    await this.#check(capability, holder, namespace, right)
  }

  /** Calls `listener` with every record committed to `namespace` from now on; returns the unsubscribe. */
  onRecord(namespace: string, listener: RecordListener): () => void {
    const name = storageNameOf(checkUserNamespace(namespace))
    let set = this.#listeners.get(name)
    if (!set) this.#listeners.set(name, (set = new Set()))
    set.add(listener)
    return () => void set.delete(listener)
  }

  /** How many records (tombstones included) a namespace holds here. */
  count(namespace: string): number {
    return this.#state(checkUserNamespace(namespace)).db.count()
  }

  /** Every record of a namespace in key order (local, unchecked). */
  *entries(namespace: string): Iterable<[StorageKey, StoredRecord]> {
    for (const { key, value } of this.#state(checkUserNamespace(namespace)).db.range<DiskRecord>()) yield [key, this.#fromDisk(value)]
  }

  /** The stored records of `keys` (local, unchecked: callers authorize first); missing keys are left out. */
  records(namespace: string, keys: readonly StorageKey[]): Array<[StorageKey, StoredRecord]> {
    const db = this.#state(checkUserNamespace(namespace)).db
    const out: Array<[StorageKey, StoredRecord]> = []
    for (const key of keys) {
      const record = db.get<DiskRecord>(key)
      if (record !== undefined) out.push([checkKey(key).key, this.#fromDisk(record)])
    }
    return out
  }

  /** Every key of a namespace in order (local, unchecked). */
  *keys(namespace: string): Iterable<StorageKey> {
    for (const { key } of this.#state(checkUserNamespace(namespace)).db.range()) yield key
  }

  // --- serving peers -----------------------------------------------------------------------------

  /** Serves remote operations on router family 'storage'; the sender is the holder. */
  async attach(runtime: { router: Router }): Promise<void> {
    this.#router = runtime.router
    const serve =
      (op: StorageOperation, schema: z.ZodType<{ namespace: string }>, what: string) =>
      async ({ envelope, from }: { envelope: { payload: unknown }; from: string }) => {
        const request = parseRequest(schema, envelope.payload, what)
        const value = await this.#run(op, request.namespace, from, request, false)
        return value === undefined ? null : value
      }
    await runtime.router.register('storage', {
      put: serve('store', remotePutSchema, 'put'),
      putMany: serve('storeMany', remotePutManySchema, 'putMany'),
      get: serve('retrieve', remoteGetSchema, 'get'),
      getMany: serve('retrieveMany', remoteGetManySchema, 'getMany'),
      delete: serve('delete', remoteGetSchema, 'delete'),
      list: serve('list', remoteListSchema, 'list'),
    })
  }

  /** A client for another peer's storage over the router (this peer presents the capabilities). */
  remote(peerId: string, timeoutMs = 10_000): RemoteStorage {
    const router = this.#router
    if (!router) throw new InvalidInput('attach(runtime) before using remote storage')
    const call = <T>(kind: string, payload: Record<string, unknown>) => router.request<T>(peerId, 'storage', { kind, payload }, timeoutMs)
    return {
      storeInNamespace: (namespace, key, data, capability) => call('put', { namespace, key, data, capability }),
      storeMany: (namespace, entries, capability) => call('putMany', { namespace, entries, capability }),
      retrieve: async (namespace, key, capability) => (await call<unknown>('get', { namespace, key, capability })) ?? undefined,
      retrieveMany: async (namespace, keys, capability) => (await call<unknown[]>('getMany', { namespace, keys, capability })).map((v) => v ?? undefined),
      delete: (namespace, key, capability) => call('delete', { namespace, key, capability }),
      list: (namespace, prefix, capability, options = {}) =>
        call('list', { namespace, prefix, capability, ...(options.limit ? { limit: options.limit } : {}) }),
    }
  }

  // --- the operation chart -------------------------------------------------------------------

  async #run(op: StorageOperation, namespace: string, holder: string, request: unknown, local: boolean): Promise<unknown> {
    const startedAt = this.#clock.now()
    const actor = createActor(this.#machine, {
      input: { op, namespace, holder, request },
      ...(this.#options.inspect ? { inspect: this.#options.inspect } : {}),
    })
    const out = await runToOutput(actor)
    this.#counts[op][out.status]++
    if (out.status === 'done') {
      this.#options.emit?.({ type: 'latency', name: `storage.${op}`, ms: this.#clock.now() - startedAt })
      return out.value
    }
    const error = errorFromReport(out.error, 'STORAGE', 'storage operation failed') as AuraError
    // Remote failures are counted by the router when it answers the sender; local ones here.
    if (local) this.#options.emit?.({ type: 'error', code: error.code, where: `storage.${op}`, message: error.message })
    throw error
  }

  #validate(input: StorageOpInput): Validated {
    const namespace = checkUserNamespace(input.namespace)
    const resolver = this.resolverOf(namespace)
    const r = (input.request ?? {}) as Record<string, unknown>
    const capability = r.capability
    switch (input.op) {
      case 'store':
        return { op: 'store', capability, key: keyFor(resolver, r.key), data: this.#checkData(resolver, r.data) }
      case 'storeMany': {
        if (!Array.isArray(r.entries)) throw new InvalidInput('storeMany needs an array of { key, data }')
        if (r.entries.length > this.#options.maxBatchEntries) {
          throw new InvalidInput(`at most ${this.#options.maxBatchEntries} entries per batch`, { entries: r.entries.length })
        }
        const entries = r.entries as Array<{ key?: unknown; data?: unknown } | null>
        const keys: StorageKey[] = new Array(entries.length)
        const data: unknown[] = new Array(entries.length)
        for (let i = 0; i < entries.length; i++) {
          const e = entries[i]
          if (typeof e !== 'object' || e === null) throw new InvalidInput('storeMany entries are { key, data }')
          keys[i] = keyFor(resolver, e.key)
          data[i] = this.#checkData(resolver, e.data)
        }
        return { op: 'storeMany', capability, keys, data }
      }
      case 'delete':
        if (resolver.kind === 'crdt') {
          throw new InvalidInput('keys in a CRDT namespace are not deleted: remove through the type (e.g. an OR-Set remove)', { namespace })
        }
        return { op: 'delete', capability, key: keyShape(r.key) }
      case 'retrieve':
        return { op: 'retrieve', capability, key: keyShape(r.key) }
      case 'retrieveMany': {
        if (!Array.isArray(r.keys)) throw new InvalidInput('retrieveMany needs an array of keys')
        if (r.keys.length > this.#options.maxBatchEntries) throw new InvalidInput(`at most ${this.#options.maxBatchEntries} keys per batch`)
        return { op: 'retrieveMany', capability, keys: r.keys.map(keyShape) }
      }
      case 'list': {
        if (typeof r.prefix !== 'string' || r.prefix.length > MAX_PREFIX_LENGTH) throw new InvalidInput('list prefix must be a string', {})
        const limit = r.limit === undefined ? this.#options.maxListEntries : r.limit
        if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > this.#options.maxListEntries) {
          throw new InvalidInput(`list limit must be 1..${this.#options.maxListEntries}`, { limit })
        }
        return { op: 'list', capability, prefix: r.prefix, limit }
      }
      case 'merge':
        return { op: 'merge', capability, ...this.#checkMerge(namespace, resolver, r) }
      case 'declare': {
        const parsed = resolverSchema.safeParse(r.resolver)
        if (!parsed.success) throw new InvalidInput('invalid namespace resolver', { issues: parsed.error.issues })
        resolverType(parsed.data)
        return { op: 'declare', capability, resolver: parsed.data }
      }
    }
  }

  #checkData(resolver: NamespaceResolver, data: unknown): unknown {
    // Bytes are the common large value and their size is exact; anything else is estimated.
    if (data instanceof Uint8Array && resolver.kind === 'lww') {
      if (data.byteLength > this.#options.maxValueBytes)
        throw new InvalidInput(`storage value exceeds ${this.#options.maxValueBytes} bytes`, { maxBytes: this.#options.maxValueBytes })
      return data
    }
    checkValue(data, this.#options.maxValueBytes)
    if (resolver.kind === 'crdt') resolverType(resolver)!.decode(data)
    return data
  }

  #checkMerge(
    namespace: string,
    resolver: NamespaceResolver,
    r: Record<string, unknown>,
  ): { resolver: NamespaceResolver; records: Array<[StorageKey, StoredRecord]> } {
    const declared = resolverSchema.safeParse(r.resolver)
    if (!declared.success) throw new InvalidInput('replica carries no valid resolver', { issues: declared.error.issues })
    if (this.#resolvers.has(namespace) && !sameResolver(resolver, declared.data)) {
      throw new InvalidInput('replica resolver differs from the namespace declaration', { namespace, local: resolver, remote: declared.data })
    }
    if (!Array.isArray(r.records)) throw new InvalidInput('replica records must be an array')
    if (r.records.length > this.#options.maxBatchEntries) throw new InvalidInput(`at most ${this.#options.maxBatchEntries} records per replica message`)
    const type = resolverType(declared.data)
    const records = (r.records as unknown[]).map((entry, index): [StorageKey, StoredRecord] => {
      if (!Array.isArray(entry) || entry.length !== 2) throw new InvalidInput(`replica record ${index} is not [key, record]`)
      const parsed = storedRecordSchema.safeParse(entry[1])
      if (!parsed.success) throw new InvalidInput(`replica record ${index} is malformed`, { issues: parsed.error.issues })
      const record = parsed.data as StoredRecord
      // Every stamp is checked before anything is written, so a refused batch leaves no trace.
      this.#hlc.checkDrift(recordStamp(record))
      if (isTombstone(record)) {
        if (type) throw new InvalidInput('CRDT namespaces hold no tombstones', { index })
      } else {
        checkValue(record[4], this.#options.maxValueBytes)
        if (type) type.decode(record[4])
      }
      return [checkKey(entry[0]).key, record]
    })
    return { resolver: declared.data, records }
  }

  async #authorize(input: ValidatedOp): Promise<void> {
    const v = input.validated as Validated
    await this.#check(v.capability, input.holder, input.namespace, RIGHT_OF[input.op])
  }

  /** True when the verifier already holds a verdict on the capability and it grants the operation. */
  #authorizeCached(input: ValidatedOp): boolean {
    const v = input.validated as Validated
    const verdict = this.#verifier.authorizeCached(v.capability, { holder: input.holder, namespace: input.namespace, right: RIGHT_OF[input.op] })
    if (verdict === undefined) return false
    this.#checkOwner(input.namespace, verdict.effective.root)
    return true
  }

  async #check(capability: unknown, holder: string, namespace: string, right: Right): Promise<void> {
    const verdict = await this.#verifier.authorize(capability, { holder, namespace, right })
    this.#checkOwner(namespace, verdict.effective.root)
  }

  #checkOwner(namespace: string, root: string): void {
    const owners = this.#options.owners[namespace]
    if (owners && !owners.includes(root)) {
      throw new PermissionDenied('capability is not rooted at an owner of this namespace', { reason: 'untrusted-root', namespace, root })
    }
  }

  async #write(input: ValidatedOp): Promise<unknown> {
    const v = input.validated as Validated
    const state = this.#state(input.namespace)
    if (v.op === 'declare') return this.#declare(input.namespace, v.resolver)
    // The first write fixes the namespace's resolver (a replica brings its own), so a later
    // replica or declaration cannot reinterpret records already stored.
    if (!this.#resolvers.has(input.namespace)) await this.#declare(input.namespace, v.op === 'merge' ? v.resolver : LWW)
    const resolver = this.resolverOf(input.namespace)
    switch (v.op) {
      case 'store':
        if (resolver.kind === 'crdt') return this.#exclusive(state, () => this.#joinLocal(state, resolver, [v.key], [v.data])).then((stamps) => stamps[0])
        return this.#putSingle(state, v.key, (ts) => this.#ownRecord(ts, 0, v.data))
      case 'delete': {
        if (state.exclusive) await state.exclusive
        const before = state.db.get<DiskRecord>(v.key)
        await this.#putSingle(state, v.key, (ts) => this.#ownRecord(ts, 1, null))
        return before !== undefined && !isTombstone(before)
      }
      case 'storeMany':
        return this.#exclusive(state, async () => {
          if (resolver.kind === 'crdt') return (await this.#joinLocal(state, resolver, v.keys, v.data)).length
          // One atomic batch is one write: its records share a timestamp (a key given twice keeps
          // its last entry, as the transaction applies them in order).
          const ts = this.#stamp()
          const ops: BatchOp[] = new Array(v.keys.length)
          for (let i = 0; i < ops.length; i++) {
            ops[i] = { type: 'put', namespace: state.name, key: v.keys[i]!, value: this.#ownRecord(ts, 0, v.data[i]) }
          }
          await this.#commit(ops)
          return v.keys.length
        })
      case 'merge':
        return this.#exclusive(state, () => this.#merge(state, resolver, v.records))
      default:
        throw new InvalidInput(`${v.op} is not a write`)
    }
  }

  #read(input: ValidatedOp): unknown {
    const v = input.validated as Validated
    const db = this.#state(input.namespace).db
    const valueOf = (record: DiskRecord | undefined) => (record === undefined || isTombstone(record) ? undefined : record[4])
    switch (v.op) {
      case 'retrieve':
        return valueOf(db.get<DiskRecord>(v.key))
      case 'retrieveMany':
        return v.keys.map((k) => valueOf(db.get<DiskRecord>(k)))
      case 'list':
        return this.#list(db, v.prefix, v.limit)
      default:
        throw new InvalidInput(`${v.op} is not a read`)
    }
  }

  #list(db: Namespace, prefix: string, limit: number): ListedEntry[] {
    const out: ListedEntry[] = []
    const range = prefix === '' ? db.range<DiskRecord>() : db.range<DiskRecord>({ start: prefix })
    for (const { key, value } of range) {
      if (prefix !== '') {
        const lead = Array.isArray(key) ? key[0] : key
        // Keys sort by their leading string's bytes, so the first one not starting with the prefix ends the run.
        if (typeof lead !== 'string' || !lead.startsWith(prefix)) break
      }
      if (isTombstone(value)) continue
      out.push({ key, value: value[4] })
      if (out.length >= limit) break
    }
    return out
  }

  // --- writing ---------------------------------------------------------------------------------

  #state(namespace: string): NamespaceState {
    let state = this.#namespaces.get(namespace)
    if (!state) {
      state = { namespace, name: storageNameOf(namespace), db: this.#storage.namespace(storageNameOf(namespace)), exclusive: undefined, lastWrite: undefined }
      this.#namespaces.set(namespace, state)
    }
    return state
  }

  async #putSingle(state: NamespaceState, key: StorageKey, record: (ts: HlcTimestamp) => DiskRecord): Promise<HlcTimestamp> {
    // Behind any exclusive write queued before this one, so commits follow timestamp order.
    while (state.exclusive) await state.exclusive
    const ts = this.#stamp()
    this.#meta.writeAheadOfSingle(this.#hlc.wall)
    const stored = record(ts)
    const write = state.db.put(key, stored)
    state.lastWrite = write
    await write
    this.#written(state.name, key, stored)
    return ts
  }

  /** Runs `fn` alone on the namespace: after earlier single writes commit, before later ones start. */
  #exclusive<T>(state: NamespaceState, fn: () => Promise<T>): Promise<T> {
    const previous = state.exclusive
    const run = (async () => {
      if (previous) await previous
      await state.lastWrite?.catch(noop)
      return fn()
    })()
    const done = run.then(noop, noop)
    state.exclusive = done
    void done.then(() => {
      if (state.exclusive === done) state.exclusive = undefined
    })
    return run
  }

  async #joinLocal(state: NamespaceState, resolver: NamespaceResolver, keys: readonly StorageKey[], data: readonly unknown[]): Promise<HlcTimestamp[]> {
    const stamps: HlcTimestamp[] = []
    const pending = new Map<string, StoredRecord>()
    const ops: BatchOp[] = keys.flatMap((key, i) => {
      const ts = this.#stamp()
      stamps.push(ts)
      const id = keyId(key)
      const local = pending.get(id) ?? this.#localRecord(state, key)
      const merged = resolveRecord(resolver, local, makeRecord(ts, data[i]))
      if (!merged) return []
      pending.set(id, merged)
      return [{ type: 'put' as const, namespace: state.name, key, value: this.#toDisk(merged) }]
    })
    await this.#commit(ops)
    return stamps
  }

  async #merge(state: NamespaceState, resolver: NamespaceResolver, records: ReadonlyArray<[StorageKey, StoredRecord]>): Promise<MergeResult> {
    const pending = new Map<string, StoredRecord>()
    let unchanged = 0
    const ops: BatchOp[] = records.flatMap(([key, incoming]) => {
      this.#hlc.observe(recordStamp(incoming))
      const id = keyId(key)
      const local = pending.get(id) ?? this.#localRecord(state, key)
      const merged = resolveRecord(resolver, local, incoming)
      if (!merged) {
        unchanged++
        return []
      }
      pending.set(id, merged)
      return [{ type: 'put' as const, namespace: state.name, key, value: this.#toDisk(merged) }]
    })
    if (ops.length > 0) await this.#commit(ops)
    return { applied: pending.size, unchanged }
  }

  async #declare(namespace: string, resolver: NamespaceResolver): Promise<void> {
    const declared = this.#resolvers.get(namespace)
    if (declared && !sameResolver(declared, resolver)) {
      throw new InvalidInput('namespace already declared with another resolver', { namespace, declared, requested: resolver })
    }
    if (this.#storage.namespace(NAMESPACES).get(namespace) !== undefined) return
    // A namespace that already holds records was LWW all along.
    if (!declared && resolver.kind !== 'lww' && this.#state(namespace).db.count() > 0) {
      throw new InvalidInput('namespace already holds LWW records', { namespace, requested: resolver })
    }
    this.#resolvers.set(namespace, resolver)
    await this.#storage.namespace(NAMESPACES).put(namespace, resolver)
  }

  #stamp(): HlcTimestamp {
    return this.#hlc.now()
  }

  /** Commits a batch of records with the lease and writer-table entries they need. */
  async #commit(ops: BatchOp[]): Promise<void> {
    await this.#meta.commit(ops, this.#hlc.wall)
    if (this.#listeners.size > 0) for (const op of ops) if (op.type === 'put') this.#written(op.namespace, op.key, op.value as DiskRecord)
  }

  /** Tells the namespace's listeners (if any) about a committed record. */
  #written(name: string, key: StorageKey, stored: DiskRecord): void {
    const listeners = this.#listeners.get(name)
    if (listeners === undefined || listeners.size === 0) return
    const normalized = checkKey(key).key
    const record = this.#fromDisk(stored)
    for (const listener of listeners) listener(normalized, record)
  }

  /** A record this peer writes, in stored form (a tombstone when `deleted`). */
  #ownRecord(ts: HlcTimestamp, deleted: 0 | 1, data: unknown): DiskRecord {
    return [ts.wall, ts.logical, this.#self, deleted, data]
  }

  #localRecord(state: NamespaceState, key: StorageKey): StoredRecord | undefined {
    const stored = state.db.get<DiskRecord>(key)
    return stored === undefined ? undefined : this.#fromDisk(stored)
  }

  #fromDisk(record: DiskRecord): StoredRecord {
    return fromDisk(record, (writer) => this.#meta.writerOf(writer))
  }

  #toDisk(record: StoredRecord): DiskRecord {
    return toDisk(record, (peer) => this.#meta.writerIndex(peer))
  }
}

/**
 * The Storage effect validates every key in full before it reads or writes anything (and a batch
 * before any of it), so the hot path only checks the shape here. CRDT joins compare keys within a
 * batch, so they need the normalized form up front.
 */
function keyShape(key: unknown): StorageKey {
  if (typeof key === 'string' || typeof key === 'number' || Array.isArray(key)) return key as StorageKey
  throw new InvalidInput('storage keys are strings, numbers or arrays of them', { type: typeof key })
}

function keyFor(resolver: NamespaceResolver, key: unknown): StorageKey {
  return resolver.kind === 'crdt' ? checkKey(key).key : keyShape(key)
}

/** Identity of a normalized key within one merge (numbers and strings never collide). */
function keyId(key: StorageKey): string {
  return typeof key === 'string' ? `s${key}` : `j${JSON.stringify(key)}`
}
