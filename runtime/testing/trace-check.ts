// Trace checkers: assertions over a recorded trace rather than over one run's return values, so
// property tests can state what must hold for every seed.

import type { AnyStateMachine } from 'xstate'
import type { TraceEvent } from './simulation.js'

type NodeLike = {
  path: string[]
  states: Record<string, NodeLike>
  transitions: Map<string, Array<{ target?: ReadonlyArray<NodeLike> }>>
  always?: Array<{ target?: ReadonlyArray<NodeLike> }>
}

/**
 * Top-level state → the top-level states one step (from anywhere inside it) can end in. A step
 * passes through states its eventless (`always`) transitions leave at once, which a trace of
 * snapshots never shows: those states' `always` targets are reachable in the same step.
 * @example
 * topLevelTransitions(sessionMachine).get('active') // Set { 'agreeing', 'failed', ... }
 */
export function topLevelTransitions(machine: AnyStateMachine): Map<string, Set<string>> {
  const edges = new Map<string, Set<string>>()
  const onwards = new Map<string, Set<string>>()
  const visit = (node: NodeLike, top: string) => {
    const targets = edges.get(top) ?? new Set<string>([top])
    edges.set(top, targets)
    const always = onwards.get(top) ?? new Set<string>()
    onwards.set(top, always)
    for (const definition of [...node.transitions.values()].flat())
      for (const target of definition.target ?? []) if (target.path[0]) targets.add(target.path[0])
    for (const definition of node.always ?? []) {
      for (const target of definition.target ?? []) {
        if (!target.path[0]) continue
        targets.add(target.path[0])
        always.add(target.path[0])
      }
    }
    for (const child of Object.values(node.states)) visit(child, top)
  }
  for (const [name, node] of Object.entries((machine.root as unknown as NodeLike).states)) visit(node, name)
  for (const targets of edges.values()) {
    const pending = [...targets]
    while (pending.length > 0) {
      for (const next of onwards.get(pending.pop()!) ?? []) {
        if (targets.has(next)) continue
        targets.add(next)
        pending.push(next)
      }
    }
  }
  return edges
}

const topOf = (value: unknown): string => (typeof value === 'string' ? value : (Object.keys(value as object)[0] ?? ''))

/**
 * Every consecutive pair of states an actor went through (per peer and actor id) must be a move
 * the statechart allows; returns the violations (empty when the trace is valid).
 * @example
 * expect(lifecycleViolations(sim.trace, sessionMachine, 'session')).toEqual([])
 */
export function lifecycleViolations(trace: readonly TraceEvent[], machine: AnyStateMachine, machineName: string): string[] {
  const edges = topLevelTransitions(machine)
  const last = new Map<string, string>()
  const violations: string[] = []
  for (const event of trace) {
    if (event.type !== 'transition' || event.machine !== machineName) continue
    const key = `${event.peer}/${event.actorId}`
    const state = topOf(event.state)
    const previous = last.get(key)
    if (previous !== undefined && !edges.get(previous)?.has(state)) violations.push(`${key}: ${previous} → ${state} at t=${event.t}`)
    last.set(key, state)
  }
  return violations
}

/**
 * Final states entered per actor: a session must end exactly once.
 * @example
 * const finals = finalEntries(sim.trace, 'session', ['completed', 'failed', 'cancelled'])
 * for (const [peer, states] of finals) expect(states.length).toBeLessThanOrEqual(1)
 */
export function finalEntries(trace: readonly TraceEvent[], machineName: string, finals: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>()
  for (const event of trace) {
    if (event.type !== 'transition' || event.machine !== machineName) continue
    const state = topOf(event.state)
    if (!finals.includes(state)) continue
    const key = `${event.peer}/${event.actorId}`
    out.set(key, [...(out.get(key) ?? []), state])
  }
  return out
}
