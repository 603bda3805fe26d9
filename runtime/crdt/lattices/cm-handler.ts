// Causal delivery for operation-based types. An op from origin o with deps D is deliverable
// at a replica that delivered V when D[o] = V[o] (it is o's next op) and D[p] ≤ V[p] for
// every other p (everything it depended on is here). Received ops wait in a bounded buffer;
// each arrival delivers ops until none is ready (a fixed point: one delivery can unblock
// another buffered op, which can unblock a third). Duplicates — already delivered or already
// buffered — are dropped by op id.
//
// The log of delivered ops (what a peer behind is sent) is compacted once ops are causally
// stable: `compact(stable)` folds every op with seq ≤ stable[origin] into a snapshot (`base` at
// the cut `baseClock`). The cut is causally closed (a meet of delivered clocks, each closed), so
// the folded ops, applied in log order, are a valid delivery order of exactly that cut. A peer
// behind the cut gets the snapshot and the ops after it; adopting replays what the adopter
// delivered beyond the cut on top (their dependencies are all in the cut or replayed before).

import { Conflict, LimitExceeded } from '../../../effects/errors.js'
import { checkCausalOp, opIdOf } from './causal-op.js'
import type { CausalOp, CmHandler, CmReceipt, CmSnapshot, CmType } from './kinds.js'
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
  let log: CausalOp<Op>[] = []
  let base = type.initial()
  let baseClock = VectorClock.empty

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

  const drain = (): CausalOp<Op>[] => {
    const out: CausalOp<Op>[] = []
    let progressed = true
    while (progressed) {
      progressed = false
      for (const [id, waiting] of buffer) {
        if (waiting.seq <= delivered.get(waiting.origin)) {
          buffer.delete(id) // delivered meanwhile (inside an adopted snapshot)
        } else if (ready(waiting)) {
          buffer.delete(id)
          deliver(waiting)
          out.push(waiting)
          progressed = true
        }
      }
    }
    return out
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
      const out = drain()
      return { delivered: out, duplicate: false, buffered: buffer.has(op.opId) }
    },
    opsSince(since) {
      return log.filter((op) => op.seq > since.get(op.origin))
    },
    snapshotFor(since): CmSnapshot<S> | undefined {
      return baseClock.size === 0 || since.dominates(baseClock) ? undefined : { state: base, clock: baseClock }
    },
    compact(stable) {
      if (type.encodeState === undefined) return 0
      const kept: CausalOp<Op>[] = []
      let folded = 0
      for (const op of log) {
        if (op.seq <= stable.get(op.origin)) {
          base = type.apply(base, op.op, { opId: op.opId, origin: op.origin })
          baseClock = baseClock.with(op.origin, Math.max(op.seq, baseClock.get(op.origin)))
          folded += 1
        } else kept.push(op)
      }
      if (folded > 0) log = kept
      return folded
    },
    adopt(snapshot) {
      if (baseClock.dominates(snapshot.clock) || delivered.dominates(snapshot.clock)) return false
      if (!snapshot.clock.dominates(baseClock)) {
        throw new Conflict('cannot adopt the snapshot: this replica compacted ops it lacks', { here: baseClock.encode(), snapshot: snapshot.clock.encode() })
      }
      const beyond = log.filter((op) => op.seq > snapshot.clock.get(op.origin))
      base = snapshot.state
      baseClock = snapshot.clock
      current = snapshot.state
      for (const op of beyond) current = type.apply(current, op.op, { opId: op.opId, origin: op.origin })
      delivered = delivered.merge(snapshot.clock)
      log = beyond
      drain()
      return true
    },
  }
}
