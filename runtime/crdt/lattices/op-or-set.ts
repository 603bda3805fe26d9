// Operation-based observed-remove set. An add is tagged with its op id; a remove carries the
// tags its issuer observed and deletes only those. That is only right under causal delivery:
// a remove delivered before the add it observed would delete nothing and the add would then
// resurrect the element. The causal handler guarantees the order; this type relies on it.

import { z } from 'zod'
import type { CmType } from './kinds.js'
import { parseWire, WIRE_LIMITS, type WireValue } from './lattice-wire.js'

export type OpORSetState = ReadonlyMap<string, ReadonlySet<string>>

export type ORSetOp =
  { readonly kind: 'add'; readonly element: string } | { readonly kind: 'remove'; readonly element: string; readonly tags: readonly string[] }

const element = z.string().max(WIRE_LIMITS.keyLength)
const opSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('add'), element }).strict(),
  z.object({ kind: z.literal('remove'), element, tags: z.array(z.string().max(300)).max(WIRE_LIMITS.entries) }).strict(),
])

const stateSchema = z.array(z.tuple([element, z.array(z.string().max(300)).min(1).max(WIRE_LIMITS.entries)])).max(WIRE_LIMITS.entries)

export const opOrSet = {
  name: 'op-or-set',
  initial: (): OpORSetState => new Map(),
  apply(s, op, meta): OpORSetState {
    const next = new Map(s)
    const tags = new Set(s.get(op.element) ?? [])
    if (op.kind === 'add') tags.add(meta.opId)
    else for (const t of op.tags) tags.delete(t)
    if (tags.size === 0) next.delete(op.element)
    else next.set(op.element, tags)
    return next
  },
  equals(a, b) {
    if (a.size !== b.size) return false
    for (const [e, ts] of a) {
      const us = b.get(e)
      if (us === undefined || us.size !== ts.size || [...ts].some((t) => !us.has(t))) return false
    }
    return true
  },
  encodeOp: (op): WireValue => (op.kind === 'add' ? { kind: 'add', element: op.element } : { kind: 'remove', element: op.element, tags: [...op.tags] }),
  decodeOp: (wire) => parseWire(opSchema, wire, 'or-set op'),
  encodeState: (s): WireValue => [...s].map(([e, tags]) => [e, [...tags]]),
  decodeState: (wire): OpORSetState => new Map(parseWire(stateSchema, wire, 'or-set state').map(([e, tags]) => [e, new Set(tags)])),

  addOp: (element: string): ORSetOp => ({ kind: 'add', element }),
  /** A remove of the tags of `element` observed in `s`. */
  removeOp: (s: OpORSetState, element: string): ORSetOp => ({ kind: 'remove', element, tags: [...(s.get(element) ?? [])] }),
  values: (s: OpORSetState): string[] => [...s.keys()].sort(),
} satisfies CmType<OpORSetState, ORSetOp> & Record<string, unknown>
