// What the storage coordinator keeps under each key of a user namespace, and how two versions of
// one key become one: the namespace's declared resolver.
//
// Record form (in memory and on the wire to replicas):
//
//   [wall, logical, writer, deleted, data]
//     wall, logical  hybrid logical timestamp of the write (see hybrid-clock.ts)
//     writer         peer id that made the write; breaks timestamp ties
//     deleted        1 for a tombstone (a delete), 0 otherwise; data is null in a tombstone
//     data           the value; in a CRDT namespace, the wire encoding of a state of its type
//
// On disk (a MessagePack array) the writer is its index in the peer's writer table
// (storage-meta.ts), which keeps a 100-byte record from carrying a 52-character peer id;
// records written before the table existed carry the peer id itself and read back the same.
//
// Resolvers. 'lww': the record with the later (wall, logical, writer) wins, so a delete is a
// tombstone that beats every older write and a deleted key never reappears after a merge.
// 'crdt': data are states of a registered state-based type and merge by its join (associative,
// commutative, idempotent), the stamp by max. CRDT namespaces have no tombstones: removal is
// part of the type (an OR-Set's remove), because a record-level delete could not keep join a
// semilattice. Neither resolver ever drops a write silently: the loser of an LWW comparison is
// older than the winner by a total order every peer computes the same way.

import { z } from 'zod'
import { InvalidInput } from '../../effects/errors.js'
import type { StorageKey } from '../../effects/storage/index.js'
import { cvType, type AnyCvType } from '../crdt/lattices/registry.js'
import { compareHlc, type HlcTimestamp } from './hybrid-clock.js'

export type StoredRecord = [wall: number, logical: number, writer: string, deleted: 0 | 1, data: unknown]

/** A record as stored: the writer by its writer-table index (or, from older stores, by peer id). */
export type DiskRecord = [wall: number, logical: number, writer: number | string, deleted: 0 | 1, data: unknown]

export function toDisk(r: StoredRecord, writerIndex: (peer: string) => number): DiskRecord {
  return [r[0], r[1], writerIndex(r[2]), r[3], r[4]]
}

export function fromDisk(d: DiskRecord, writerOf: (stored: number | string) => string): StoredRecord {
  return [d[0], d[1], writerOf(d[2]), d[3], d[4]]
}

export type NamespaceResolver = { kind: 'lww' } | { kind: 'crdt'; type: string }

export const resolverSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('lww') }).strict(),
  z.object({ kind: z.literal('crdt'), type: z.string().min(1).max(300) }).strict(),
])

export const LWW: NamespaceResolver = Object.freeze({ kind: 'lww' })

const counter = z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER)
export const storedRecordSchema = z.tuple([counter, counter, z.string().min(1).max(128), z.union([z.literal(0), z.literal(1)]), z.unknown()])

export function makeRecord(ts: HlcTimestamp, data: unknown): StoredRecord {
  return [ts.wall, ts.logical, ts.peer, 0, data]
}

export const recordStamp = (r: StoredRecord): HlcTimestamp => ({ wall: r[0], logical: r[1], peer: r[2] })
export const isTombstone = (r: StoredRecord | DiskRecord): boolean => r[3] === 1

export function compareRecords(a: StoredRecord, b: StoredRecord): number {
  return compareHlc(recordStamp(a), recordStamp(b))
}

export function sameResolver(a: NamespaceResolver, b: NamespaceResolver): boolean {
  return a.kind === b.kind && (a.kind === 'lww' || a.type === (b as { type: string }).type)
}

/** The CvType of a CRDT resolver (InvalidInput for an unknown type name). */
export function resolverType(resolver: NamespaceResolver): AnyCvType | undefined {
  return resolver.kind === 'crdt' ? cvType(resolver.type) : undefined
}

/** Throws InvalidInput unless `data` is a valid state of the namespace's CRDT type. */
export function checkCrdtData(type: AnyCvType, data: unknown): void {
  type.decode(data)
}

/**
 * The record to keep when `incoming` meets `local`, or undefined when `local` already holds
 * everything `incoming` carries (nothing to write).
 */
export function resolveRecord(resolver: NamespaceResolver, local: StoredRecord | undefined, incoming: StoredRecord): StoredRecord | undefined {
  if (local === undefined) return incoming
  if (resolver.kind === 'lww') return compareRecords(incoming, local) > 0 ? incoming : undefined
  if (isTombstone(local) || isTombstone(incoming)) {
    throw new InvalidInput('CRDT namespaces hold no tombstones', { resolver: resolver.type })
  }
  const type = cvType(resolver.type)
  const mine = type.decode(local[4])
  const joined = type.join(mine, type.decode(incoming[4]))
  const later = compareRecords(incoming, local) > 0 ? incoming : local
  if (later === local && type.equals(joined, mine)) return undefined
  return [later[0], later[1], later[2], 0, type.encode(joined)]
}

/** Rough encoded size of a [key, record] pair, for chunking (bytes dominate large values). */
export function estimateRecordBytes([key, record]: readonly [StorageKey, StoredRecord]): number {
  const data = record[4]
  const keyBytes = typeof key === 'string' ? key.length * 3 : 32
  if (data instanceof Uint8Array) return keyBytes + data.byteLength + 96
  if (typeof data === 'string') return keyBytes + data.length * 3 + 96
  if (data === null || typeof data !== 'object') return keyBytes + 112
  try {
    return keyBytes + JSON.stringify(data).length * 2 + 96
  } catch {
    return keyBytes + 4096
  }
}
