// Causal delivery for operation-based types. An op from origin o with deps D is deliverable
// at a replica that delivered V when D[o] = V[o] (it is o's next op) and D[p] ≤ V[p] for
// every other p (everything it depended on is here). Received ops wait in a bounded buffer;
// each arrival delivers ops until none is ready (a fixed point: one delivery can unblock
// another buffered op, which can unblock a third). Duplicates — already delivered or already
// buffered — are dropped by op id.

import { LimitExceeded } from '../errors.js'
import { checkCausalOp, opIdOf } from './causal-op.js'
import type { CausalOp, CmHandler, CmReceipt, CmType } from './kinds.js'
import { VectorClock } from './vector-clock.js'

export interface CmHandlerOptions {
  /** Ops that may wait for dependencies at once; more is LimitExceeded. */
  readonly maxBuffered?: number
}

export function createCmHandler<S, Op>(type: CmType<S, Op>, replica: string, options: CmHandlerOptions = {}): CmHandler<S, Op> {
  const maxBuffered = options.maxBuffered ?? 1024
  let current = type.initial()
  let delivered = VectorClock.empty
  const buffer = new Map<string, CausalOp<Op>>()
  const log: CausalOp<Op>[] = []

  const ready = (op: CausalOp<Op>): boolean => {
    if (op.deps.get(op.origin) !== delivered.get(op.origin)) return false
    for (const [p, n] of op.deps.entries()) if (p !== op.origin && n > delivered.get(p)) return false
    return true
  }

  const deliver = (op: CausalOp<Op>): void => {
    current = type.apply(current, op.op, { opId: op.opId, origin: op.origin })
    delivered = delivered.with(op.origin, op.seq)
    log.push(op)
  }

  return {
    type,
    replica,
    state: () => current,
    clock: () => delivered,
    pending: () => buffer.size,
    emit(op) {
      const seq = delivered.get(replica) + 1
      const causal: CausalOp<Op> = { opId: opIdOf(replica, seq), origin: replica, seq, deps: delivered, op }
      deliver(causal)
      return causal
    },
    receive(op): CmReceipt<Op> {
      checkCausalOp(op.opId, op.origin, op.seq, op.deps)
      if (op.seq <= delivered.get(op.origin) || buffer.has(op.opId)) return { delivered: [], duplicate: true, buffered: false }
      if (!ready(op) && buffer.size >= maxBuffered) {
        throw new LimitExceeded('causal buffer full', { maxBuffered, opId: op.opId })
      }
      buffer.set(op.opId, op)
      const out: CausalOp<Op>[] = []
      let progressed = true
      while (progressed) {
        progressed = false
        for (const [id, waiting] of buffer) {
          if (ready(waiting)) {
            buffer.delete(id)
            deliver(waiting)
            out.push(waiting)
            progressed = true
          }
        }
      }
      return { delivered: out, duplicate: false, buffered: buffer.has(op.opId) }
    },
    opsSince(since) {
      return log.filter((op) => op.seq > since.get(op.origin))
    },
  }
}
