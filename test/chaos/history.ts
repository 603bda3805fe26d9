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
  /** false for a peer that crashed for good: it is left out of every check */
  live: boolean[]
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
  const live = liveIndexes(observed)
  const first = live[0]!
  for (const index of live.slice(1)) {
    const differing = differingKeys(observed.storage[first]!, observed.storage[index]!)
    if (differing.length > 0)
      out.push(`storage: peer ${index} differs from peer ${first} on ${differing.length} key(s), e.g. ${differing.slice(0, 3).join(', ')}`)
  }
  const counters = live.map((i) => observed.counters[i])
  if (new Set(counters).size > 1) out.push(`counter: replicas differ ${JSON.stringify(counters)}`)
  const sets = new Set(live.map((i) => JSON.stringify(observed.sets[i])))
  if (sets.size > 1) out.push(`set: replicas differ (${sets.size} distinct states)`)
  for (const [id, all] of observed.sessions) {
    const views = all.filter((v) => observed.live[v.peer])
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
    // A write whose origin died for good survives if some live peer acknowledged it (async: none did).
    if (op.kind === 'write' && op.ok && (observed.live[op.peer] || op.acked.some((p) => observed.live[p]))) {
      for (const target of [op.peer, ...op.targets]) {
        if (!observed.live[target]) continue
        const held = observed.storage[target]!.get(op.key)
        // A later write to the same key may win (LWW); a unique key must hold exactly this value.
        if (held === undefined) out.push(`storage: acknowledged write ${op.key} (${op.policy.kind}, acked by ${op.acked.join('/')}) missing on peer ${target}`)
        else if (op.key.startsWith('k') && held !== op.value) out.push(`storage: ${op.key} holds ${String(held)} on peer ${target}, not ${op.value}`)
      }
    }
  }
  const increments = history.operations.filter((o): o is Extract<Operation, { kind: 'increment' }> => o.kind === 'increment')
  // an increment acknowledged only by a peer that then died for good may die with it
  const acked = increments.filter((o) => o.ok && observed.live[o.peer]).reduce((n, o) => n + o.by, 0)
  const attempted = increments.reduce((n, o) => n + o.by, 0)
  for (const peer of liveIndexes(observed)) {
    const value = observed.counters[peer]!
    if (value < acked) out.push(`counter: peer ${peer} counts ${value}, lost ${acked - value} acknowledged increment(s)`)
    if (value > attempted) out.push(`counter: peer ${peer} counts ${value}, more than the ${attempted} ever made (doubled)`)
  }
  for (const op of history.operations) {
    if (op.kind !== 'add' || !op.ok) continue
    if (!observed.live[op.peer]) continue // an add made only on a peer that then died for good may die with it
    for (const peer of liveIndexes(observed))
      if (!observed.sets[peer]!.includes(op.element)) out.push(`set: acknowledged add ${op.element} missing on peer ${peer}`)
  }
  return out
}

const liveIndexes = (observed: Observed): number[] => observed.live.flatMap((alive, i) => (alive ? [i] : []))

function differingKeys(a: Map<string, unknown>, b: Map<string, unknown>): string[] {
  const keys = new Set([...a.keys(), ...b.keys()])
  return [...keys].filter((k) => JSON.stringify(a.get(k)) !== JSON.stringify(b.get(k))).sort()
}
