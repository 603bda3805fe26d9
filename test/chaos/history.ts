// The history of a chaos run and the checks made on it, in the manner of Jepsen's checkers: every
// operation a client started is recorded with its outcome (acknowledged, failed), and after the
// faults heal and the cluster quiesces, what each replica holds is compared with what was promised.
//
// Checked (each failure is one violation line, naming the run's seed so it replays):
//   storage   every acknowledged write is on every peer it was replicated to; every replica of the
//             namespace holds the same records (unacknowledged writes may be anywhere, but alike)
//   counter   every replica of the PN-Counter is equal and counts each acknowledged increment once
//             (an increment that failed locally may not be counted; none is counted twice)
//   set       every replica of the OR-Set is equal and holds every acknowledged add
//   sessions  every peer that knows a session ended it, and all of them the same way

export type WritePolicy = { kind: 'all' } | { kind: 'quorum'; k: number } | { kind: 'async' }

export type Operation =
  | { kind: 'write'; peer: number; key: string; value: string; policy: WritePolicy; targets: number[]; ok: boolean; acked: number[] }
  | { kind: 'increment'; peer: number; by: number; ok: boolean }
  | { kind: 'add'; peer: number; element: string; ok: boolean }
  | { kind: 'session'; peer: number; sessionId: string; peers: number[] }

/** What each replica holds once the run has quiesced, by peer index. */
export interface Observed {
  storage: Array<Map<string, unknown>>
  counters: number[]
  sets: string[][]
  /** session id → status on each peer that knows it */
  sessions: Map<string, Array<{ peer: number; status: string; outcome: string | undefined }>>
}

export class History {
  readonly operations: Operation[] = []

  record(operation: Operation): void {
    this.operations.push(operation)
  }

  count(kind: Operation['kind']): number {
    return this.operations.filter((o) => o.kind === kind).length
  }
}

const FINAL = new Set(['completed', 'failed', 'cancelled'])

/** Only what a converged cluster must satisfy; `check` adds the promises made to clients. */
export function divergence(observed: Observed): string[] {
  const out: string[] = []
  const [first, ...rest] = observed.storage
  for (const [index, replica] of rest.entries()) {
    const differing = differingKeys(first!, replica)
    if (differing.length > 0) out.push(`storage: peer ${index + 1} differs from peer 0 on ${differing.length} key(s), e.g. ${differing.slice(0, 3).join(', ')}`)
  }
  if (new Set(observed.counters).size > 1) out.push(`counter: replicas differ ${JSON.stringify(observed.counters)}`)
  const sets = new Set(observed.sets.map((s) => JSON.stringify(s)))
  if (sets.size > 1) out.push(`set: replicas differ (${sets.size} distinct states)`)
  for (const [id, views] of observed.sessions) {
    const open = views.filter((v) => !FINAL.has(v.status))
    if (open.length > 0) out.push(`session ${id}: still ${open.map((v) => `${v.status} on peer ${v.peer}`).join(', ')}`)
    const outcomes = new Set(views.map((v) => `${v.status}/${v.outcome ?? ''}`))
    if (outcomes.size > 1) out.push(`session ${id}: outcomes differ: ${views.map((v) => `peer ${v.peer} ${v.status}/${v.outcome ?? '-'}`).join(', ')}`)
  }
  return out
}

export function check(history: History, observed: Observed): string[] {
  const out = divergence(observed)
  for (const op of history.operations) {
    if (op.kind === 'write' && op.ok) {
      for (const target of [op.peer, ...op.targets]) {
        const held = observed.storage[target]!.get(op.key)
        // A later write to the same key may win (LWW); a unique key must hold exactly this value.
        if (held === undefined) out.push(`storage: acknowledged write ${op.key} (${op.policy.kind}, acked by ${op.acked.join('/')}) missing on peer ${target}`)
        else if (op.key.startsWith('k') && held !== op.value) out.push(`storage: ${op.key} holds ${String(held)} on peer ${target}, not ${op.value}`)
      }
    }
  }
  const increments = history.operations.filter((o): o is Extract<Operation, { kind: 'increment' }> => o.kind === 'increment')
  const acked = increments.filter((o) => o.ok).reduce((n, o) => n + o.by, 0)
  const attempted = increments.reduce((n, o) => n + o.by, 0)
  for (const [peer, value] of observed.counters.entries()) {
    if (value < acked) out.push(`counter: peer ${peer} counts ${value}, lost ${acked - value} acknowledged increment(s)`)
    if (value > attempted) out.push(`counter: peer ${peer} counts ${value}, more than the ${attempted} ever made (doubled)`)
  }
  for (const op of history.operations) {
    if (op.kind !== 'add' || !op.ok) continue
    for (const [peer, set] of observed.sets.entries()) if (!set.includes(op.element)) out.push(`set: acknowledged add ${op.element} missing on peer ${peer}`)
  }
  return out
}

function differingKeys(a: Map<string, unknown>, b: Map<string, unknown>): string[] {
  const keys = new Set([...a.keys(), ...b.keys()])
  return [...keys].filter((k) => JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k))).sort()
}
