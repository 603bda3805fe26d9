// How a session is kept on disk: its actor's persisted snapshot, packed here into one byte
// string, beside the choreography its invite named and when it finished.
//
// The record is a flat array (bytes and primitives), which storage checks and encodes in one
// step; the snapshot as a nested object had storage walk every field to size it and LMDB's
// encoder learn and look up a shape for each of its objects, at every one of a session's writes.
// The packing is the wire's (plain MessagePack): whatever a step's payload may carry on the wire,
// its snapshot keeps.

import type { AnyActor, AnyMachineSnapshot } from 'xstate'
import { plainMessagePack as packr } from '../core/wire.js'

export interface SessionRecord {
  snapshot: unknown
  /** choreography named by the invite, so a restarted peer can execute it */
  protocol?: string
  /** when the session reached a final state (this peer's clock); its retention counts from here */
  finishedAt?: number
}

type StoredForm = [snapshot: Uint8Array, protocol: string | null, finishedAt: number | null]

export function encodeSessionRecord(record: SessionRecord): StoredForm {
  return [packr.pack(record.snapshot), record.protocol ?? null, record.finishedAt ?? null]
}

/** The record, or undefined for a value that is not one (its key is then skipped on resume). */
export function decodeSessionRecord(stored: unknown): SessionRecord | undefined {
  if (!Array.isArray(stored) || !(stored[0] instanceof Uint8Array)) return undefined
  const [bytes, protocol, finishedAt] = stored as StoredForm
  let snapshot: unknown
  try {
    // Unpacked from a copy: the bytes read back may be a view into storage's read buffer, which
    // the next read reuses, and binary payloads come out as views into what is unpacked (a plain
    // Uint8Array, as on the wire).
    snapshot = packr.unpack(new Uint8Array(bytes))
  } catch {
    return undefined
  }
  if (!isSnapshotLike(snapshot)) return undefined
  return {
    snapshot,
    ...(typeof protocol === 'string' ? { protocol } : {}),
    ...(typeof finishedAt === 'number' ? { finishedAt } : {}),
  }
}

function isSnapshotLike(value: unknown): boolean {
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return false
  const { status, context } = value as { status?: unknown; context?: unknown }
  return typeof status === 'string' && typeof context === 'object' && context !== null
}

/**
 * The actor's persisted snapshot as XState's getPersistedSnapshot makes it (the same fields in
 * the same order, so the same bytes), without its walk of the whole context looking for actor
 * refs to replace, nor its rest-copy of the snapshot: the session machine's context is plain
 * data, never an actor, and a session writes its snapshot five times. History values need
 * XState's own form: the machine has no history states, and one that gets them takes that way.
 */
export function persistedSnapshotOf(actor: AnyActor): unknown {
  const snapshot = actor.getSnapshot() as AnyMachineSnapshot
  for (const _ in snapshot.historyValue) return actor.getPersistedSnapshot()
  const children: Record<string, unknown> = {}
  for (const [id, child] of Object.entries(snapshot.children as Record<string, AnyActor | undefined>)) {
    if (!child) continue
    // `syncSnapshot` is never asked for in this machine's invokes
    children[id] = { snapshot: child.getPersistedSnapshot(), src: child.src, systemId: child.systemId, syncSnapshot: false }
  }
  const { status, output, error, value, context } = snapshot
  return { status, output, error, value, historyValue: {}, context, children }
}
