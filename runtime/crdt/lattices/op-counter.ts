// Operation-based counter: an op adds a signed amount. Additions commute, so any delivery
// order gives one value; the causal handler still dedupes, which is what makes it safe.

import { z } from 'zod'
import type { CmType } from './kinds.js'
import { parseWire } from './lattice-wire.js'

export interface CounterOp {
  readonly add: number
}

const stateSchema = z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER)
const opSchema = z.object({ add: z.number().int().min(-Number.MAX_SAFE_INTEGER).max(Number.MAX_SAFE_INTEGER) }).strict()

export const opCounter = {
  name: 'op-counter',
  initial: () => 0,
  apply: (s, op) => s + op.add,
  equals: (a, b) => a === b,
  encodeOp: (op) => ({ add: op.add }),
  decodeOp: (wire) => parseWire(opSchema, wire, 'counter op'),
  encodeState: (s) => s,
  decodeState: (wire) => parseWire(stateSchema, wire, 'counter state'),
} satisfies CmType<number, CounterOp>
