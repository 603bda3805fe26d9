// Reachable states for law tests. A history runs a few replicas through local mutations
// (delta-mutators), full-state merges, `missingFor` syncs, late, duplicated, reordered
// delivery of old deltas and, for types that collect sync metadata, collections at the clock
// every replica has reached; every state any replica passes through goes into the pool. Laws are
// then checked on states drawn from the pool, which are states real replicas can reach
// (arbitrary structures would include states no execution produces).

import fc from 'fast-check'
import type { CvType } from '../../../../runtime/crdt/lattices/index.js'

export type Mutation<S> = (s: S, replica: string) => S

export interface Fixture<S> {
  readonly type: CvType<S>
  readonly replicas: readonly string[]
  readonly mutation: fc.Arbitrary<Mutation<S>>
}

type Step<S> =
  | { kind: 'mutate'; at: number; mutation: Mutation<S> }
  | { kind: 'merge'; at: number; from: number }
  | { kind: 'sync'; at: number; from: number }
  | { kind: 'delta'; at: number; pick: number }
  | { kind: 'collect'; at: number }

export interface History<S> {
  /** Every state reached, replica finals last. */
  readonly pool: S[]
  /** Every delta produced by a mutation. */
  readonly deltas: S[]
  /** Final state per replica, and the indices of the deltas it has absorbed. */
  readonly finals: { state: S; absorbed: number[] }[]
}

function steps<S>(fx: Fixture<S>, maxSteps: number): fc.Arbitrary<Step<S>[]> {
  const at = fc.nat(fx.replicas.length - 1)
  const step: fc.Arbitrary<Step<S>> = fc.oneof(
    { weight: 4, arbitrary: fc.record({ kind: fc.constant('mutate' as const), at, mutation: fx.mutation }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('merge' as const), at, from: at }) },
    { weight: 1, arbitrary: fc.record({ kind: fc.constant('sync' as const), at, from: at }) },
    { weight: 2, arbitrary: fc.record({ kind: fc.constant('delta' as const), at, pick: fc.nat(1000) }) },
    { weight: fx.type.collect ? 1 : 0, arbitrary: fc.record({ kind: fc.constant('collect' as const), at }) },
  )
  return fc.array(step, { maxLength: maxSteps, size: 'max' })
}

export function run<S>(fx: Fixture<S>, script: Step<S>[]): History<S> {
  const { type } = fx
  const states = fx.replicas.map(() => type.bottom())
  const absorbed = fx.replicas.map(() => new Set<number>())
  const deltas: S[] = []
  const pool: S[] = [type.bottom()]
  for (const st of script) {
    const i = st.at
    if (st.kind === 'mutate') {
      const delta = st.mutation(states[i]!, fx.replicas[i]!)
      deltas.push(delta)
      absorbed[i]!.add(deltas.length - 1)
      states[i] = type.join(states[i]!, delta)
    } else if (st.kind === 'merge') {
      states[i] = type.join(states[i]!, states[st.from]!)
      for (const d of absorbed[st.from]!) absorbed[i]!.add(d)
    } else if (st.kind === 'sync') {
      const missing = type.missingFor(states[st.from]!, type.version(states[i]!))
      states[i] = type.join(states[i]!, missing)
      for (const d of absorbed[st.from]!) absorbed[i]!.add(d)
    } else if (st.kind === 'collect') {
      // What every replica has seen: the meet of their versions (old deltas still in flight
      // are seen by their senders, so they are below it or not collected).
      const stable = states.map((s) => type.version(s)).reduce((a, b) => a.meet(b))
      states[i] = type.collect!(states[i]!, stable)
    } else {
      if (deltas.length === 0) continue
      const d = st.pick % deltas.length
      states[i] = type.join(states[i]!, deltas[d]!)
      absorbed[i]!.add(d)
    }
    pool.push(states[i]!)
  }
  pool.push(...states)
  return { pool, deltas, finals: states.map((state, i) => ({ state, absorbed: [...absorbed[i]!] })) }
}

export function history<S>(fx: Fixture<S>, maxSteps = 20): fc.Arbitrary<History<S>> {
  return steps(fx, maxSteps).map((script) => run(fx, script))
}

/** A history and `n` states drawn from its pool. */
export function statesFrom<S>(fx: Fixture<S>, n: number, maxSteps = 20): fc.Arbitrary<{ h: History<S>; states: S[] }> {
  return fc
    .tuple(history(fx, maxSteps), fc.array(fc.nat(), { minLength: n, maxLength: n }))
    .map(([h, picks]) => ({ h, states: picks.map((p) => h.pool[p % h.pool.length]!) }))
}
