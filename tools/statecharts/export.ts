// Statechart export: reads an XState machine's resolved state-node tree into a small, plain model
// (states, transitions, invokes), and writes that model out as a machine config that Stately
// Studio / the Stately visualizer imports (and `createMachine` accepts again) and as a Mermaid
// stateDiagram-v2. The SVG renderer (statechart-svg.ts) and the dashboard read the same model.
//
// Why the state-node tree and not `machine.toJSON()`: the definition omits eventless (`always`)
// transitions and the onDone/onError of invokes (they only appear as `xstate.done.actor.*`
// entries), and it is not a config that `createMachine` accepts. The tree has all of it.
//
// Output is deterministic: order follows the machine's own declaration order, so regenerating
// without a change to the machine gives byte-identical files (CI diffs them).

import { readdirSync } from 'node:fs'
import { join } from 'node:path'
import { pathToFileURL } from 'node:url'
import { StateMachine, type AnyStateMachine, type AnyStateNode } from 'xstate'

export type StateType = 'atomic' | 'compound' | 'parallel' | 'final' | 'history'

/** A guard or action as it can be written in a config: a name, or a name with JSON params. */
export type ImplementationRef = string | { type: string; params: unknown }

export type TransitionKind = 'event' | 'always' | 'after' | 'invoke-done' | 'invoke-error' | 'state-done'

export interface ChartTransition {
  /** id of the state node that owns the transition */
  source: string
  /** the event descriptor ('' for eventless) */
  event: string
  kind: TransitionKind
  /** for `after`: the delay (ms or a named delay); for invoke-*: the invoke id */
  detail?: string
  /** state-node ids; empty for a targetless (internal) transition */
  targets: string[]
  guard?: ImplementationRef
  actions: ImplementationRef[]
  reenter: boolean
}

export interface ChartState {
  id: string
  key: string
  /** keys from the root (exclusive) to this node; [] for the root */
  path: string[]
  type: StateType
  /** key of the initial child, for compound states */
  initial?: string
  children: ChartState[]
  invoke: Array<{ id: string; src: string }>
  entry: ImplementationRef[]
  exit: ImplementationRef[]
  tags: string[]
  description?: string
  transitions: ChartTransition[]
}

export interface Chart {
  id: string
  root: ChartState
}

// ---------------------------------------------------------------------------------------------
// Naming implementations (inline functions have no name in a config, so they get a stable one)

function functionName(fn: { name?: string; type?: unknown; guards?: unknown[] }): string {
  // Higher-order guards (not/and/or) carry their operands; built-in actions carry their type.
  if (Array.isArray(fn.guards) && ['not', 'and', 'or'].includes(fn.name ?? '')) {
    return `${fn.name}(${fn.guards.map((g) => refName(implementationRef(g))).join(', ')})`
  }
  if (typeof fn.type === 'string') return fn.type.replace(/^xstate\./, '')
  return fn.name && fn.name !== 'guard' && fn.name !== 'anonymous' ? `inline:${fn.name}` : 'inline'
}

export function implementationRef(value: unknown): ImplementationRef {
  if (typeof value === 'string') return value
  if (typeof value === 'function') return functionName(value as never)
  if (value !== null && typeof value === 'object') {
    const { type, params } = value as { type?: unknown; params?: unknown }
    const name = typeof type === 'string' ? type : typeof type === 'function' ? functionName(type as never) : 'inline'
    if (params !== undefined && typeof params !== 'function') return { type: name, params: JSON.parse(JSON.stringify(params)) as unknown }
    return name
  }
  return 'inline'
}

export const refName = (ref: ImplementationRef): string => (typeof ref === 'string' ? ref : ref.type)

// ---------------------------------------------------------------------------------------------
// Reading a machine

function classify(node: AnyStateNode, event: string): Pick<ChartTransition, 'kind' | 'detail'> {
  const doneActor = 'xstate.done.actor.'
  const errorActor = 'xstate.error.actor.'
  const invokeIds = new Set(node.invoke.map((i) => i.id))
  if (event.startsWith(doneActor) && invokeIds.has(event.slice(doneActor.length))) return { kind: 'invoke-done', detail: event.slice(doneActor.length) }
  if (event.startsWith(errorActor) && invokeIds.has(event.slice(errorActor.length))) return { kind: 'invoke-error', detail: event.slice(errorActor.length) }
  if (event === `xstate.done.state.${node.id}`) return { kind: 'state-done' }
  const delayed = node.after.find((t) => t.eventType === event)
  if (delayed) return { kind: 'after', detail: typeof delayed.delay === 'function' ? 'inline' : String(delayed.delay) }
  return { kind: 'event' }
}

function readTransition(
  node: AnyStateNode,
  t: { target?: readonly AnyStateNode[] | undefined; guard?: unknown; actions: readonly unknown[]; reenter: boolean },
  event: string,
  kind: Pick<ChartTransition, 'kind' | 'detail'>,
): ChartTransition {
  const out: ChartTransition = {
    source: node.id,
    event,
    ...kind,
    targets: (t.target ?? []).map((target) => target.id),
    actions: t.actions.map(implementationRef),
    reenter: t.reenter,
  }
  if (t.guard !== undefined) out.guard = implementationRef(t.guard)
  return out
}

function readState(node: AnyStateNode, path: string[]): ChartState {
  const transitions: ChartTransition[] = []
  for (const [event, list] of node.transitions) {
    const kind = classify(node, event)
    for (const t of list) transitions.push(readTransition(node, t, event, kind))
  }
  for (const t of node.always ?? []) transitions.push(readTransition(node, t, '', { kind: 'always' }))
  const state: ChartState = {
    id: node.id,
    key: node.key,
    path,
    type: node.type,
    children: Object.values(node.states as Record<string, AnyStateNode>).map((child) => readState(child, [...path, child.key])),
    invoke: node.invoke.map((i) => ({ id: i.id, src: typeof i.src === 'string' ? i.src : 'inline' })),
    entry: node.entry.map(implementationRef),
    exit: node.exit.map(implementationRef),
    tags: [...node.tags],
    transitions,
  }
  if (node.type === 'compound') state.initial = node.initial.target[0]?.key
  if (node.description) state.description = node.description
  return state
}

export function chartOf(machine: AnyStateMachine): Chart {
  return { id: machine.id, root: readState(machine.root, []) }
}

export function* walkStates(state: ChartState): Generator<ChartState> {
  yield state
  for (const child of state.children) yield* walkStates(child)
}

export function allTransitions(chart: Chart): ChartTransition[] {
  return [...walkStates(chart.root)].flatMap((s) => s.transitions)
}

// ---------------------------------------------------------------------------------------------
// Machine config (Stately-importable JSON)

type JsonTransition = { target?: string | string[]; guard?: ImplementationRef; actions?: ImplementationRef[]; reenter?: true }
type JsonTransitions = JsonTransition | JsonTransition[]

function targetRef(source: ChartState, targetId: string, byId: Map<string, ChartState>): string {
  const target = byId.get(targetId)!
  // Siblings by key (how people write it); anything else by absolute id, which never misresolves.
  const sameParent = target.path.length === source.path.length && target.path.slice(0, -1).join('.') === source.path.slice(0, -1).join('.')
  return sameParent && source.path.length > 0 ? target.key : `#${target.id}`
}

function jsonTransition(source: ChartState, t: ChartTransition, byId: Map<string, ChartState>): JsonTransition {
  const out: JsonTransition = {}
  if (t.targets.length === 1) out.target = targetRef(source, t.targets[0]!, byId)
  else if (t.targets.length > 1) out.target = t.targets.map((id) => targetRef(source, id, byId))
  if (t.guard !== undefined) out.guard = t.guard
  if (t.actions.length > 0) out.actions = t.actions
  if (t.reenter) out.reenter = true
  return out
}

const oneOrMany = (list: JsonTransition[]): JsonTransitions => (list.length === 1 ? list[0]! : list)

function groupBy(transitions: ChartTransition[], key: (t: ChartTransition) => string): Map<string, ChartTransition[]> {
  const groups = new Map<string, ChartTransition[]>()
  for (const t of transitions) {
    const k = key(t)
    groups.set(k, [...(groups.get(k) ?? []), t])
  }
  return groups
}

function stateConfig(state: ChartState, byId: Map<string, ChartState>, rootId: string): Record<string, unknown> {
  const config: Record<string, unknown> = {}
  // The root always names itself; a child only when its id is not the default (root id + path).
  if (state.path.length === 0 || state.id !== [rootId, ...state.path].join('.')) config.id = state.id
  if (state.description) config.description = state.description
  if (state.type === 'final' || state.type === 'parallel' || state.type === 'history') config.type = state.type
  if (state.initial !== undefined) config.initial = state.initial
  if (state.tags.length > 0) config.tags = state.tags
  if (state.entry.length > 0) config.entry = state.entry
  if (state.exit.length > 0) config.exit = state.exit
  const of = (kind: TransitionKind) => state.transitions.filter((t) => t.kind === kind)
  const json = (list: ChartTransition[]) => oneOrMany(list.map((t) => jsonTransition(state, t, byId)))
  if (state.invoke.length > 0) {
    const invokes = state.invoke.map((inv) => {
      const entry: Record<string, unknown> = { id: inv.id, src: inv.src }
      const done = of('invoke-done').filter((t) => t.detail === inv.id)
      const error = of('invoke-error').filter((t) => t.detail === inv.id)
      if (done.length > 0) entry.onDone = json(done)
      if (error.length > 0) entry.onError = json(error)
      return entry
    })
    config.invoke = invokes.length === 1 ? invokes[0] : invokes
  }
  const events = groupBy(of('event'), (t) => t.event)
  if (events.size > 0) config.on = Object.fromEntries([...events].map(([event, list]) => [event, json(list)]))
  if (of('always').length > 0) config.always = json(of('always'))
  const delayed = groupBy(of('after'), (t) => t.detail!)
  if (delayed.size > 0) config.after = Object.fromEntries([...delayed].map(([delay, list]) => [delay, json(list)]))
  if (of('state-done').length > 0) config.onDone = json(of('state-done'))
  if (state.children.length > 0) config.states = Object.fromEntries(state.children.map((child) => [child.key, stateConfig(child, byId, rootId)]))
  return config
}

/** The machine as a config object: paste it into Stately Studio, or pass it to `createMachine`. */
export function machineConfigOf(chart: Chart): Record<string, unknown> {
  const byId = new Map([...walkStates(chart.root)].map((s) => [s.id, s]))
  return stateConfig(chart.root, byId, chart.root.id)
}

export function machineJson(chart: Chart): string {
  return JSON.stringify(machineConfigOf(chart), null, 2) + '\n'
}

// ---------------------------------------------------------------------------------------------
// Labels shared by Mermaid and SVG

export function transitionLabel(t: ChartTransition): string {
  let event: string
  switch (t.kind) {
    case 'always':
      event = 'always'
      break
    case 'after':
      event = `after ${t.detail}`
      break
    case 'invoke-done':
      event = `done: ${t.detail}`
      break
    case 'invoke-error':
      event = `error: ${t.detail}`
      break
    case 'state-done':
      event = 'onDone'
      break
    default:
      event = t.event
  }
  return t.guard === undefined ? event : `${event} [${refName(t.guard)}]`
}

// ---------------------------------------------------------------------------------------------
// Mermaid stateDiagram-v2

const mermaidId = (state: ChartState): string => (state.path.length === 0 ? 'root' : state.path.join('__')).replace(/[^A-Za-z0-9_]/g, '_')
// Characters Mermaid reads as syntax inside a transition label.
const mermaidText = (text: string): string =>
  text.replace(/[:;#{}"]/g, (c) => (c === ':' ? '﹕' : c === ';' ? ',' : c === '#' ? '' : c === '"' ? "'" : c === '{' ? '(' : ')'))

/** The lowest state whose subtree holds both nodes: Mermaid wants an edge declared there. */
function commonAncestorPath(a: string[], b: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) break
    out.push(a[i]!)
  }
  return out
}

export function mermaidOf(chart: Chart): string {
  const byId = new Map([...walkStates(chart.root)].map((s) => [s.id, s]))
  // Edges are grouped by the composite they belong in; labels of parallel edges are merged.
  const edgesIn = new Map<string, Map<string, string[]>>()
  for (const t of allTransitions(chart)) {
    const source = byId.get(t.source)!
    for (const targetId of t.targets) {
      const target = byId.get(targetId)!
      let scope = commonAncestorPath(source.path, target.path)
      // An edge touching a composite itself is declared outside it.
      if (scope.length === source.path.length || scope.length === target.path.length) scope = scope.slice(0, -1)
      const key = `${mermaidId(source)} --> ${mermaidId(target)}`
      const scoped = edgesIn.get(scope.join('.')) ?? new Map<string, string[]>()
      edgesIn.set(scope.join('.'), scoped)
      scoped.set(key, [...(scoped.get(key) ?? []), mermaidText(transitionLabel(t))])
    }
  }
  const lines: string[] = ['stateDiagram-v2', `  %% ${chart.id} — generated by npm run visualize; do not edit`]
  const emit = (state: ChartState, indent: string) => {
    for (const child of state.children) {
      const id = mermaidId(child)
      if (child.key !== id) lines.push(`${indent}state "${mermaidText(child.key)}" as ${id}`)
      if (child.children.length > 0) {
        lines.push(`${indent}state ${id} {`)
        emit(child, indent + '  ')
        lines.push(`${indent}}`)
      }
      const notes = [...child.invoke.map((i) => `invoke ${i.src}`), ...child.transitions.filter((t) => t.targets.length === 0).map(transitionLabel)]
      if (notes.length > 0) lines.push(`${indent}note right of ${id}`, ...notes.map((n) => `${indent}  ${mermaidText(n)}`), `${indent}end note`)
    }
    const initial = state.children.find((c) => c.key === state.initial)
    if (initial) lines.push(`${indent}[*] --> ${mermaidId(initial)}`)
    for (const [edge, labels] of edgesIn.get(state.path.join('.')) ?? []) lines.push(`${indent}${edge}: ${labels.join(' / ')}`)
    for (const child of state.children) if (child.type === 'final') lines.push(`${indent}${mermaidId(child)} --> [*]`)
  }
  emit(chart.root, '  ')
  return lines.join('\n') + '\n'
}

// ---------------------------------------------------------------------------------------------
// Discovery: every StateMachine exported from machines/*.ts (or *.js once compiled)

export interface DiscoveredMachine {
  /** file the machine is exported from, relative to the machines folder */
  file: string
  exportName: string
  machine: AnyStateMachine
}

const isMachine = (value: unknown): value is AnyStateMachine =>
  value instanceof StateMachine ||
  (value !== null &&
    typeof value === 'object' &&
    'root' in value &&
    'definition' in value &&
    typeof (value as { transition?: unknown }).transition === 'function')

export async function discoverMachines(machinesDir: string): Promise<DiscoveredMachine[]> {
  const files = readdirSync(machinesDir)
    .filter((f) => /\.(ts|js|mts|mjs)$/.test(f) && !/\.d\.[mc]?ts$/.test(f) && !/\.test\./.test(f))
    .sort()
  const found: DiscoveredMachine[] = []
  const seen = new Set<AnyStateMachine>()
  const byId = new Map<string, DiscoveredMachine>()
  for (const file of files) {
    const module = (await import(pathToFileURL(join(machinesDir, file)).href)) as Record<string, unknown>
    for (const exportName of Object.keys(module).sort()) {
      const value = module[exportName]
      if (!isMachine(value) || seen.has(value)) continue
      seen.add(value)
      const entry = { file, exportName, machine: value }
      const clash = byId.get(value.id)
      // Files are named after machine ids, so two machines with one id would overwrite each other.
      if (clash) throw new Error(`machine id "${value.id}" is used by ${clash.file}:${clash.exportName} and ${file}:${exportName}`)
      byId.set(value.id, entry)
      found.push(entry)
    }
  }
  return found.sort((a, b) => (a.machine.id < b.machine.id ? -1 : a.machine.id > b.machine.id ? 1 : 0))
}
