// Observed-remove map: string keys → values of a nested state-based type. Each update writes
// a contribution (the key's current value joined with the nested delta) under a fresh dot and
// supersedes the contributions its replica had seen; the key's value is the join of its
// surviving contributions, so concurrent updates merge through the nested type. Removing a
// key removes the contributions seen; an update concurrent with a removal wins (add-wins),
// and a key removed and re-added starts again from the nested bottom at the re-adding replica.
// Tombstones as in the OR-Set, so `missingFor` sends only changed keys and removals.
//
// Wire form: { valueType: <nested type name>, store: <dot store wire, payload = nested wire> }

import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
import type { CvType } from './kinds.js'
import { dotStore, dotStoreLattice, type DotStoreState } from './dot-store.js'
import { parseWire } from './lattice-wire.js'

export type ORMapState<V> = DotStoreState<V>

export type ORMapType<V> = CvType<ORMapState<V>> & {
  readonly valueType: CvType<V>
  /** Delta-mutator: apply the nested delta-mutator `mutator` to the value under `key`. */
  update(s: ORMapState<V>, replica: string, key: string, mutator: (value: V) => V): ORMapState<V>
  /** Delta-mutator: remove `key` (bottom if absent). */
  remove(s: ORMapState<V>, replica: string, key: string): ORMapState<V>
  get(s: ORMapState<V>, key: string): V | undefined
  has(s: ORMapState<V>, key: string): boolean
  /** Keys, sorted. */
  keys(s: ORMapState<V>): string[]
}

const wireSchema = z.object({ valueType: z.string().min(1).max(256), store: z.unknown() }).strict()

export function orMapType<V>(valueType: CvType<V>): ORMapType<V> {
  const store = dotStore<V>({
    tombstones: true,
    payload: { equals: valueType.equals, encode: valueType.encode, decode: valueType.decode },
  })
  const get = (s: ORMapState<V>, key: string): V | undefined => {
    const ps = store.payloads(s, key)
    return ps.length === 0 ? undefined : ps.reduce((acc, v) => valueType.join(acc, v))
  }
  const name = `or-map<${valueType.name}>`
  return {
    name,
    valueType,
    ...dotStoreLattice(store),
    encode: (s) => ({ valueType: valueType.name, store: store.encode(s) }),
    decode(wire) {
      const parsed = parseWire(wireSchema, wire, name)
      if (parsed.valueType !== valueType.name) {
        throw new InvalidInput(`${name}: value type mismatch`, { expected: valueType.name, got: parsed.valueType })
      }
      return store.decode(parsed.store, name)
    },
    update(s, replica, key, mutator) {
      const current = get(s, key) ?? valueType.bottom()
      return store.put(s, replica, key, valueType.join(current, mutator(current)), true)
    },
    remove: (s, replica, key) => store.remove(s, replica, key),
    get,
    has: (s, key) => s.live.has(key),
    keys: (s) => store.keys(s).sort(),
  }
}
