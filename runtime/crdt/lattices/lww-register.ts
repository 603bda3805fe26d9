// Last-writer-wins register. Each write is stamped with a hybrid logical timestamp
// (wall, logical) taken from the caller's clock and bumped past the current winner, so a
// replica's own later write always wins locally even if its wall clock went backwards. Ties
// are broken by replica id and then by the value's canonical JSON: the order is total, so
// join is commutative even when two replicas write at the same instant.
//
// The register also keeps a version vector of writes seen. A write by r at r's k-th write
// beats everything r had seen, so a peer whose vector covers ours has a winner at least as
// late as ours: `missingFor` sends nothing to such a peer and the (small) state otherwise.

import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
import type { CvType } from './kinds.js'
import { isVectorClockWire, VectorClock, vectorClockSchema } from './vector-clock.js'
import {
  canonicalJson,
  counterSchema,
  hasExactly,
  isCounter,
  isJsonValue,
  isReplicaId,
  jsonValueSchema,
  parseWire,
  replicaIdSchema,
  type JsonValue,
} from './lattice-wire.js'

export interface HybridTimestamp {
  readonly wall: number
  readonly logical: number
  readonly replica: string
}

export interface LWWEntry {
  readonly value: JsonValue
  readonly ts: HybridTimestamp
}

export interface LWWRegisterState {
  readonly entry: LWWEntry | null
  readonly clock: VectorClock
}

const timestampSchema = z.object({ wall: counterSchema, logical: counterSchema, replica: replicaIdSchema }).strict()
export const lwwWireSchema = z
  .object({
    entry: z.object({ value: jsonValueSchema, ts: timestampSchema }).strict().nullable(),
    clock: vectorClockSchema,
  })
  .strict()

type LWWWire = z.infer<typeof lwwWireSchema>

const WIRE_KEYS = ['entry', 'clock'] as const
const ENTRY_KEYS = ['value', 'ts'] as const
const TS_KEYS = ['wall', 'logical', 'replica'] as const

/** The fast check of the wire form: a subset of what wireSchema accepts, as it would return it (the schema decides the rest). */
export function isLWWWire(wire: unknown): wire is LWWWire {
  // isVectorClockWire holds a clock to far fewer replicas than the schema's limit
  if (!hasExactly(wire, WIRE_KEYS) || !isVectorClockWire(wire.clock)) return false
  const entry = wire.entry
  if (entry === null) return true
  if (!hasExactly(entry, ENTRY_KEYS) || !isJsonValue(entry.value)) return false
  const ts = entry.ts
  return hasExactly(ts, TS_KEYS) && isCounter(ts.wall) && isCounter(ts.logical) && isReplicaId(ts.replica)
}

/** Total order on entries: timestamp, then replica id, then value. */
export function compareEntries(a: LWWEntry, b: LWWEntry): number {
  if (a.ts.wall !== b.ts.wall) return a.ts.wall < b.ts.wall ? -1 : 1
  if (a.ts.logical !== b.ts.logical) return a.ts.logical < b.ts.logical ? -1 : 1
  if (a.ts.replica !== b.ts.replica) return a.ts.replica < b.ts.replica ? -1 : 1
  if (a.value === b.value) return 0
  const x = canonicalJson(a.value)
  const y = canonicalJson(b.value)
  return x === y ? 0 : x < y ? -1 : 1
}

const bottom: LWWRegisterState = { entry: null, clock: VectorClock.empty }

const later = (a: LWWEntry | null, b: LWWEntry | null): LWWEntry | null => (a === null ? b : b === null ? a : compareEntries(a, b) >= 0 ? a : b)

export const lwwRegister = {
  name: 'lww-register',
  bottom: () => bottom,
  join: (a, b) => ({ entry: later(a.entry, b.entry), clock: a.clock.merge(b.clock) }),
  equals: (a, b) => a.clock.equals(b.clock) && (a.entry === null ? b.entry === null : b.entry !== null && compareEntries(a.entry, b.entry) === 0),
  version: (s) => s.clock,
  missingFor: (s, remote) => (remote.dominates(s.clock) ? bottom : s),
  isBottom: (s) => s.entry === null && s.clock.size === 0,
  encode: (s) => ({ entry: s.entry === null ? null : { value: s.entry.value, ts: { ...s.entry.ts } }, clock: s.clock.encode() }),
  decode(wire) {
    const parsed = parseWire(lwwWireSchema, wire, 'lww-register', isLWWWire)
    return { entry: parsed.entry, clock: VectorClock.of(Object.entries(parsed.clock)) }
  },

  /**
   * Delta-mutator for a write at wall time `now` (ms, from the Time effect). The delta holds
   * the new entry and this replica's write count.
   */
  set(s: LWWRegisterState, replica: string, value: JsonValue, now: number): LWWRegisterState {
    if (!Number.isSafeInteger(now) || now < 0) throw new InvalidInput('timestamp must be a non-negative integer', { now })
    const cur = s.entry?.ts
    const wall = Math.max(now, cur?.wall ?? 0)
    const logical = cur !== undefined && wall === cur.wall ? cur.logical + 1 : 0
    return { entry: { value, ts: { wall, logical, replica } }, clock: VectorClock.of([[replica, s.clock.get(replica) + 1]]) }
  },

  value: (s: LWWRegisterState): JsonValue | undefined => s.entry?.value,
} satisfies CvType<LWWRegisterState> & Record<string, unknown>
