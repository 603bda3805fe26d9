// Wire form of an operation with its causal context, for CmRDT sync:
//   { opId: "<origin>#<seq>", origin, seq, deps: VectorClockWire, op: <type's op wire> }
// The op id is derived from (origin, seq) and checked, so deduplication by id and by
// sequence number can never disagree.

import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
import type { CausalOp, CmType } from './kinds.js'
import { VectorClock, vectorClockSchema } from './vector-clock.js'
import { counterSchema, parseWire, replicaIdSchema, type WireValue } from './lattice-wire.js'

export const opIdOf = (origin: string, seq: number): string => `${origin}#${seq}`

const causalOpSchema = z
  .object({
    opId: z.string().min(1).max(300),
    origin: replicaIdSchema,
    seq: counterSchema.min(1),
    deps: vectorClockSchema,
    op: z.unknown(),
  })
  .strict()

export function encodeCausalOp<S, Op>(type: CmType<S, Op>, op: CausalOp<Op>): WireValue {
  return { opId: op.opId, origin: op.origin, seq: op.seq, deps: op.deps.encode(), op: type.encodeOp(op.op) }
}

export function decodeCausalOp<S, Op>(type: CmType<S, Op>, wire: unknown): CausalOp<Op> {
  const parsed = parseWire(causalOpSchema, wire, 'causal op')
  const deps = VectorClock.of(Object.entries(parsed.deps))
  checkCausalOp(parsed.opId, parsed.origin, parsed.seq, deps)
  return { opId: parsed.opId, origin: parsed.origin, seq: parsed.seq, deps, op: type.decodeOp(parsed.op) }
}

export function checkCausalOp(opId: string, origin: string, seq: number, deps: VectorClock): void {
  if (opId !== opIdOf(origin, seq)) throw new InvalidInput('op id does not match origin and seq', { opId, origin, seq })
  if (deps.get(origin) !== seq - 1) throw new InvalidInput('op deps must hold the origin at seq - 1', { opId, depsAtOrigin: deps.get(origin) })
}
