// Capability sets as a meet semilattice: the state is the set of rights still granted, and
// combining two constraints keeps only the rights both allow (intersection). Top is "every
// right" (nothing constrained yet); the state only ever shrinks, so a right revoked anywhere
// stays revoked everywhere after the constraints meet.
//
// Wire form: { all: true } | { rights: string[] (sorted) }

import { z } from 'zod'
import type { MeetType } from './kinds.js'
import { parseWire, WIRE_LIMITS, type WireValue } from './lattice-wire.js'

export type CapabilitySetState = { readonly all: true } | { readonly all: false; readonly rights: ReadonlySet<string> }

const TOP: CapabilitySetState = { all: true }

const wireSchema = z.union([
  z.object({ all: z.literal(true) }).strict(),
  z.object({ rights: z.array(z.string().min(1).max(WIRE_LIMITS.keyLength)).max(WIRE_LIMITS.entries) }).strict(),
])

function leq(a: CapabilitySetState, b: CapabilitySetState): boolean {
  if (b.all) return true
  if (a.all) return false
  for (const r of a.rights) if (!b.rights.has(r)) return false
  return true
}

const only = (rights: Iterable<string>): CapabilitySetState => ({ all: false, rights: new Set(rights) })

export const capabilitySet = {
  name: 'capability-set',
  top: () => TOP,
  meet(a, b) {
    if (a.all) return b
    if (b.all) return a
    return only([...a.rights].filter((r) => b.rights.has(r)))
  },
  leq,
  equals: (a, b) => leq(a, b) && leq(b, a),
  encode: (s): WireValue => (s.all ? { all: true } : { rights: [...s.rights].sort() }),
  decode(wire) {
    const parsed = parseWire(wireSchema, wire, 'capability set')
    return 'all' in parsed ? TOP : only(parsed.rights)
  },

  of: only,
  allows: (s: CapabilitySetState, right: string): boolean => s.all || s.rights.has(right),
} satisfies MeetType<CapabilitySetState> & Record<string, unknown>
