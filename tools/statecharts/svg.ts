// Statechart → SVG, without a browser or a network: a small layered layout (in the manner of
// Sugiyama: rank by longest path after breaking cycles, order by barycentre sweeps) applied
// recursively, so each compound state lays out its children inside its own box. Text is set in
// a monospace font so widths can be measured by counting characters.
//
// Every state is a <g class="state" data-path="a.b.c"> (path of keys from the root; the root is
// data-path=""), so a page can highlight an actor's current state by adding the class `active`
// to the groups on its state value's paths (see `activePaths`).

import { refName, transitionLabel, walkStates, type Chart, type ChartState, type ChartTransition } from './export.js'

const CHAR_W = 7.3 // 12px monospace
const LABEL_CHAR_W = 6.7 // 11px monospace
const LINE_H = 15
const LABEL_LINE_H = 13
const PAD = 10
const TITLE_H = 22
const MIN_W = 96
const H_GAP = 40
const V_GAP = 46
const INNER_PAD = 18
const INITIAL_ARROW = 22
const MARGIN = 16

interface Box {
  state: ChartState
  x: number
  y: number
  w: number
  h: number
  /** height of the title and detail lines; children are laid out below it */
  headerH: number
  details: string[]
  children: Box[]
  waypoints: Waypoint[]
}

/** Built-in actions without a name of their own say nothing about what a state does. */
const ANONYMOUS_ACTIONS = new Set(['assign', 'inline', 'xstate.assign'])

/** Lines shown inside a state: the work it does on entry, what it invokes, what it handles without leaving. */
function detailLines(state: ChartState): string[] {
  const entries = state.entry.map(refName).filter((name) => !ANONYMOUS_ACTIONS.has(name))
  const lines = [...entries.map((name) => `entry ${name}`), ...state.invoke.map((i) => `invoke ${i.src}`)]
  const seen = new Set<string>()
  for (const t of state.transitions) {
    const self = t.targets.length === 1 && t.targets[0] === state.id
    if (t.targets.length > 0 && !self) continue
    const line = (self ? '↻ ' : '') + transitionLabel(t)
    if (!seen.has(line)) (seen.add(line), lines.push(line))
  }
  return lines
}

const textWidth = (text: string, charW = CHAR_W) => [...text].length * charW

function headerOf(state: ChartState, title: string): { w: number; h: number; details: string[] } {
  const details = detailLines(state)
  const w = Math.max(MIN_W, textWidth(title) + 2 * PAD, ...details.map((d) => textWidth(d, LABEL_CHAR_W) + 2 * PAD))
  return { w, h: TITLE_H + details.length * LABEL_LINE_H + (details.length > 0 ? 4 : 0), details }
}

/** The child of `container` whose subtree holds `id`, if any. */
function childHolding(container: ChartState, id: string, owner: Map<string, ChartState[]>): ChartState | undefined {
  const chain = owner.get(id)
  if (!chain) return undefined
  const at = chain.indexOf(container)
  return at >= 0 ? chain[at + 1] : undefined
}

interface LayoutContext {
  transitions: ChartTransition[]
  /** state id → chain of states from the root down to it */
  chains: Map<string, ChartState[]>
  labelLines: Map<string, number>
  /** lifted pair key (`from\0to` state ids) → widest label of the edges it carries */
  labelWidth: Map<string, number>
}

/** A placeholder in a layer that an edge spanning several layers passes through. */
interface Waypoint {
  pair: string
  x: number
  y: number
  w: number
  h: number
}

type LayerItem = { state: ChartState } | { waypoint: string; index: number }

export const pairKey = (from: string, to: string) => `${from}\u0000${to}`

/** Layers (top to bottom) of a container's children and edge waypoints, each in left-to-right order. */
function layersOf(container: ChartState, ctx: LayoutContext): LayerItem[][] {
  const children = container.children
  const index = new Map(children.map((c, i) => [c, i]))
  const edges: Array<[ChartState, ChartState]> = []
  for (const t of ctx.transitions) {
    const from = childHolding(container, t.source, ctx.chains)
    if (!from) continue
    for (const target of t.targets) {
      const to = childHolding(container, target, ctx.chains)
      if (to && to !== from && !edges.some(([a, b]) => a === from && b === to)) edges.push([from, to])
    }
  }
  // Break cycles: a DFS from the initial child (then the rest in order) drops edges into the stack.
  const initial = children.find((c) => c.key === container.initial)
  const order = initial ? [initial, ...children.filter((c) => c !== initial)] : [...children]
  const mark = new Map<ChartState, 'open' | 'done'>()
  const forward: Array<[ChartState, ChartState]> = []
  const visit = (node: ChartState) => {
    mark.set(node, 'open')
    for (const edge of edges) {
      if (edge[0] !== node) continue
      const m = mark.get(edge[1])
      if (m === 'open') continue
      forward.push(edge)
      if (m === undefined) visit(edge[1])
    }
    mark.set(node, 'done')
  }
  for (const node of order) if (!mark.has(node)) visit(node)
  // Longest-path ranks over the acyclic remainder.
  const rank = new Map<ChartState, number>(children.map((c) => [c, 0]))
  for (let changed = true, rounds = 0; changed && rounds <= children.length; rounds++) {
    changed = false
    for (const [from, to] of forward) {
      if (rank.get(to)! < rank.get(from)! + 1) (rank.set(to, rank.get(from)! + 1), (changed = true))
    }
  }
  const depth = Math.max(0, ...rank.values())
  const layers: LayerItem[][] = Array.from({ length: depth + 1 }, () => [])
  const items = new Map<ChartState, LayerItem>()
  for (const child of children) {
    const item = { state: child }
    items.set(child, item)
    layers[rank.get(child)!]!.push(item)
  }
  // Edges spanning several layers get a waypoint in each layer between, so the layout leaves
  // them a lane instead of drawing them across the states in between.
  const links: Array<[LayerItem, LayerItem]> = []
  for (const [from, to] of forward) {
    let previous = items.get(from)!
    for (let r = rank.get(from)! + 1; r < rank.get(to)!; r++) {
      const waypoint: LayerItem = { waypoint: pairKey(from.id, to.id), index: r - rank.get(from)! - 1 }
      layers[r]!.push(waypoint)
      links.push([previous, waypoint])
      previous = waypoint
    }
    links.push([previous, items.get(to)!])
  }
  // Barycentre sweeps reduce crossings; ties keep declaration order so output stays stable.
  const position = new Map<LayerItem, number>()
  const reindex = () => layers.forEach((layer) => layer.forEach((item, i) => position.set(item, i)))
  reindex()
  const declared = (item: LayerItem) => ('state' in item ? index.get(item.state)! : children.length + item.index)
  for (let sweep = 0; sweep < 4; sweep++) {
    const down = sweep % 2 === 0
    const range = down
      ? layers.map((_, i) => i).slice(1)
      : layers
          .map((_, i) => i)
          .reverse()
          .slice(1)
    for (const li of range) {
      const layer = layers[li]!
      const weight = new Map(
        layer.map((item) => {
          const ns = links.filter(([a, b]) => (down ? b === item : a === item)).map(([a, b]) => (down ? a : b))
          return [item, ns.length > 0 ? ns.reduce((sum, other) => sum + position.get(other)!, 0) / ns.length : position.get(item)!]
        }),
      )
      layer.sort((a, b) => weight.get(a)! - weight.get(b)! || declared(a) - declared(b))
      reindex()
    }
  }
  return layers
}

function layout(state: ChartState, title: string, ctx: LayoutContext): Box {
  const header = headerOf(state, title)
  if (state.children.length === 0) {
    return { state, x: 0, y: 0, w: header.w, h: header.h + 6, headerH: header.h, details: header.details, children: [], waypoints: [] }
  }
  const layers = layersOf(state, ctx)
  const boxes = new Map(state.children.map((c) => [c, layout(c, c.key, ctx)]))
  const waypoints: Waypoint[] = []
  const size = (item: LayerItem): { w: number; h: number } => {
    if ('state' in item) return boxes.get(item.state)!
    return { w: Math.min(220, ctx.labelWidth.get(item.waypoint) ?? 12), h: 12 }
  }
  const widths = layers.map((layer) => layer.reduce((sum, item) => sum + size(item).w, 0) + H_GAP * (layer.length - 1))
  const contentW = Math.max(...widths)
  // Room between layers grows with the tallest label that has to fit there.
  const gapBelow = (li: number) => {
    let lines = 1
    for (const item of layers[li]!) if ('state' in item) lines = Math.max(lines, ctx.labelLines.get(item.state.id) ?? 1)
    return V_GAP + (lines - 1) * LABEL_LINE_H
  }
  let y = header.h + INNER_PAD + INITIAL_ARROW
  const children: Box[] = []
  layers.forEach((layer, li) => {
    let x = INNER_PAD + (contentW - widths[li]!) / 2
    const rowH = Math.max(...layer.map((item) => size(item).h))
    for (const item of layer) {
      const { w, h } = size(item)
      if ('state' in item) {
        const box = boxes.get(item.state)!
        box.x = x
        box.y = y + (rowH - h) / 2
        children.push(box)
      } else {
        waypoints.push({ pair: item.waypoint, x, y, w, h: rowH })
      }
      x += w + H_GAP
    }
    y += rowH + (li < layers.length - 1 ? gapBelow(li) : 0)
  })
  const w = Math.max(header.w, contentW + 2 * INNER_PAD)
  // Centre the content when the header is the wider part.
  const shift = (w - (contentW + 2 * INNER_PAD)) / 2
  for (const child of children) child.x += shift
  for (const waypoint of waypoints) waypoint.x += shift
  children.sort((a, b) => state.children.indexOf(a.state) - state.children.indexOf(b.state))
  return { state, x: 0, y: 0, w, h: y + INNER_PAD, headerH: header.h, details: header.details, children, waypoints }
}

function absolutize(box: Box, dx: number, dy: number, out: Map<string, Box>, lanes: Map<string, Waypoint[]>): void {
  box.x += dx
  box.y += dy
  out.set(box.state.id, box)
  for (const waypoint of box.waypoints) {
    waypoint.x += box.x
    waypoint.y += box.y
    lanes.set(waypoint.pair, [...(lanes.get(waypoint.pair) ?? []), waypoint])
  }
  for (const child of box.children) absolutize(child, box.x, box.y, out, lanes)
}

// ---------------------------------------------------------------------------------------------
// Drawing

const n = (v: number) => String(Math.round(v * 10) / 10)
const xml = (text: string) => text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;')

interface Edge {
  from: Box
  to: Box
  labels: string[]
  /** waypoints of the layers the edge crosses, top to bottom */
  lane: Waypoint[]
}

function drawState(box: Box, out: string[]): void {
  const s = box.state
  const kind = s.type === 'final' ? 'final' : box.children.length > 0 ? 'compound' : 'atomic'
  out.push(`<g class="state state-${kind}" data-path="${xml(s.path.join('.'))}" data-id="${xml(s.id)}">`)
  out.push(`<rect x="${n(box.x)}" y="${n(box.y)}" width="${n(box.w)}" height="${n(box.h)}" rx="8"/>`)
  if (s.type === 'final') out.push(`<rect class="final-ring" x="${n(box.x + 3)}" y="${n(box.y + 3)}" width="${n(box.w - 6)}" height="${n(box.h - 6)}" rx="6"/>`)
  const title = s.path.length === 0 ? s.id : s.key
  out.push(`<text class="title" x="${n(box.x + PAD)}" y="${n(box.y + 16)}">${xml(title)}</text>`)
  box.details.forEach((line, i) => {
    out.push(`<text class="detail" x="${n(box.x + PAD)}" y="${n(box.y + TITLE_H + 9 + i * LABEL_LINE_H)}">${xml(line)}</text>`)
  })
  if (box.children.length > 0) {
    out.push(`<line class="divider" x1="${n(box.x)}" y1="${n(box.y + box.headerH)}" x2="${n(box.x + box.w)}" y2="${n(box.y + box.headerH)}"/>`)
    const initial = box.children.find((c) => c.state.key === s.initial)
    if (initial) {
      const cx = initial.x + initial.w / 2
      out.push(`<circle class="initial" cx="${n(cx)}" cy="${n(initial.y - INITIAL_ARROW + 4)}" r="4"/>`)
      out.push(`<path class="edge" d="M${n(cx)},${n(initial.y - INITIAL_ARROW + 8)} L${n(cx)},${n(initial.y - 1)}" marker-end="url(#arrow)"/>`)
    }
  }
  for (const child of box.children) drawState(child, out)
  out.push('</g>')
}

interface Rect {
  x: number
  y: number
  w: number
  h: number
}

const overlaps = (a: Rect, b: Rect) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h

function labelRect(x: number, y: number, labels: string[]): Rect {
  const w = Math.max(...labels.map((l) => textWidth(l, LABEL_CHAR_W))) + 6
  const h = labels.length * LABEL_LINE_H + 2
  return { x: x - w / 2, y: y - h / 2, w, h }
}

function drawLabel(rect: Rect, labels: string[], out: string[]): void {
  out.push(`<rect class="label-bg" x="${n(rect.x)}" y="${n(rect.y)}" width="${n(rect.w)}" height="${n(rect.h)}" rx="3"/>`)
  labels.forEach((label, i) => {
    out.push(`<text class="label" x="${n(rect.x + rect.w / 2)}" y="${n(rect.y + 11 + i * LABEL_LINE_H)}" text-anchor="middle">${xml(label)}</text>`)
  })
}

const contains = (outer: Box, inner: Box) =>
  inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.w <= outer.x + outer.w && inner.y + inner.h <= outer.y + outer.h

type Point = [number, number]

function cubicAt(p: [Point, Point, Point, Point], t: number): Point {
  const u = 1 - t
  const a = u * u * u
  const b = 3 * u * u * t
  const c = 3 * u * t * t
  const d = t * t * t
  return [a * p[0][0] + b * p[1][0] + c * p[2][0] + d * p[3][0], a * p[0][1] + b * p[1][1] + c * p[2][1] + d * p[3][1]]
}

/** A smooth top-to-bottom path through points: vertical tangents at every point. */
function verticalPath(points: Point[]): { d: string; segments: Array<[Point, Point, Point, Point]> } {
  const segments: Array<[Point, Point, Point, Point]> = []
  for (let i = 0; i + 1 < points.length; i++) {
    const [x0, y0] = points[i]!
    const [x1, y1] = points[i + 1]!
    const bend = Math.max(12, (y1 - y0) / 2)
    segments.push([
      [x0, y0],
      [x0, y0 + bend],
      [x1, y1 - bend],
      [x1, y1],
    ])
  }
  const d =
    `M${n(points[0]![0])},${n(points[0]![1])}` +
    segments.map((s) => ` C${n(s[1][0])},${n(s[1][1])} ${n(s[2][0])},${n(s[2][1])} ${n(s[3][0])},${n(s[3][1])}`).join('')
  return { d, segments }
}

interface EdgeGeometry {
  d: string
  /** where the label may go, best first */
  labelAt: Point[]
}

function drawEdges(edges: Edge[], obstacles: Rect[], out: string[]): void {
  // Ports: edges leaving the bottom (or entering the top) of a box are spread along that side.
  const ports = new Map<string, Edge[]>()
  const port = (key: string, edge: Edge) => ports.set(key, [...(ports.get(key) ?? []), edge])
  const downward = (e: Edge) => e.to.y >= e.from.y + e.from.h - 1 && !contains(e.to, e.from) && !contains(e.from, e.to)
  for (const e of edges) if (downward(e)) (port(`out:${e.from.state.id}`, e), port(`in:${e.to.state.id}`, e))
  const towards = (e: Edge, outgoing: boolean): number => {
    const lane = e.lane[outgoing ? 0 : e.lane.length - 1]
    if (lane) return lane.x + lane.w / 2
    const other = outgoing ? e.to : e.from
    return other.x + other.w / 2
  }
  const slot = (key: string, e: Edge, box: Box) => {
    const outgoing = key.startsWith('out')
    const list = (ports.get(key) ?? [e]).slice().sort((a, b) => towards(a, outgoing) - towards(b, outgoing))
    return box.x + (box.w * (list.indexOf(e) + 1)) / (list.length + 1)
  }
  const placed: Rect[] = []
  let loop = 0
  for (const e of edges) {
    const { from, to } = e
    let geometry: EdgeGeometry
    if (downward(e)) {
      const start: Point = [slot(`out:${from.state.id}`, e, from), from.y + from.h]
      const end: Point = [slot(`in:${to.state.id}`, e, to), to.y - 1]
      const lane = e.lane.map((w): Point => [w.x + w.w / 2, w.y + w.h / 2])
      const { d, segments } = verticalPath([start, ...lane, end])
      const labelAt: Point[] = lane.length > 0 ? lane : [0.5, 0.35, 0.65, 0.2, 0.8].map((t) => cubicAt(segments[0]!, t))
      geometry = { d, labelAt }
    } else if (contains(to, from) || contains(from, to)) {
      // To an enclosing state or into a child: a short hook on the right side.
      const inner = contains(to, from) ? from : to
      const outer = inner === from ? to : from
      const y = inner.y + Math.min(inner.h / 2, 14)
      const x0 = inner === from ? inner.x + inner.w : outer.x + outer.w
      const x1 = inner === from ? outer.x + outer.w : inner.x + inner.w
      const mid = Math.max(x0, x1) + 18
      geometry = {
        d: `M${n(x0)},${n(y)} C${n(mid)},${n(y - 10)} ${n(mid)},${n(y + 10)} ${n(x1)},${n(y)}`,
        labelAt: [
          [mid, y - 14],
          [mid + 30, y],
        ],
      }
    } else if (to.y + to.h <= from.y + 1) {
      // Back edge: out of the right side, round the outside, into the right side.
      loop++
      const p0: Point = [from.x + from.w, from.y + from.h / 2]
      const p3: Point = [to.x + to.w + 1, to.y + to.h / 2]
      const bulge = Math.max(p0[0], p3[0]) + 28 + (loop % 4) * 12
      const curve: [Point, Point, Point, Point] = [p0, [bulge, p0[1]], [bulge, p3[1]], p3]
      geometry = {
        d: `M${n(p0[0])},${n(p0[1])} C${n(bulge)},${n(p0[1])} ${n(bulge)},${n(p3[1])} ${n(p3[0])},${n(p3[1])}`,
        labelAt: [0.5, 0.35, 0.65, 0.2, 0.8].map((t) => cubicAt(curve, t)),
      }
    } else {
      // Same row: straight across between facing sides.
      const rightward = to.x >= from.x + from.w
      const y = Math.max(from.y, to.y) + Math.min(from.h, to.h) / 2
      const x0 = rightward ? from.x + from.w : from.x
      const x1 = rightward ? to.x - 1 : to.x + to.w + 1
      const above = y - 8 - (e.labels.length - 1) * 6
      geometry = {
        d: `M${n(x0)},${n(y)} L${n(x1)},${n(y)}`,
        labelAt: [
          [(x0 + x1) / 2, above],
          [(x0 + x1) / 2, y + 14],
        ],
      }
    }
    // First candidate that collides with nothing drawn so far; else the first.
    const candidates = geometry.labelAt.map(([x, y]) => labelRect(x, y, e.labels))
    const rect = candidates.find((c) => ![...placed, ...obstacles].some((o) => overlaps(c, o))) ?? candidates[0]!
    placed.push(rect)
    out.push(`<g class="transition" data-source="${xml(from.state.path.join('.'))}" data-target="${xml(to.state.path.join('.'))}">`)
    out.push(`<path class="edge" d="${geometry.d}" marker-end="url(#arrow)"/>`)
    drawLabel(rect, e.labels, out)
    out.push('</g>')
  }
}

const STYLE = `
.state > rect { fill: #f8fafc; stroke: #475569; stroke-width: 1.2; }
.state-compound > rect { fill: #f1f5f9; }
.state > rect.final-ring { fill: none; stroke: #475569; }
.state.active > rect { fill: #fef3c7; stroke: #d97706; stroke-width: 2.4; }
.state.current > rect { fill: #fde68a; }
.title { font: bold 12px ui-monospace, Menlo, Consolas, monospace; fill: #0f172a; }
.detail { font: 11px ui-monospace, Menlo, Consolas, monospace; fill: #475569; }
.label { font: 11px ui-monospace, Menlo, Consolas, monospace; fill: #1e3a8a; }
.label-bg { fill: #ffffff; fill-opacity: 0.85; }
.edge { fill: none; stroke: #64748b; stroke-width: 1.2; }
.divider { stroke: #cbd5e1; }
.initial { fill: #0f172a; }
`

/** Renders a chart as a standalone SVG document (deterministic for a given chart). */
export function svgOf(chart: Chart): string {
  const states = [...walkStates(chart.root)]
  const chains = new Map<string, ChartState[]>()
  const collect = (state: ChartState, chain: ChartState[]) => {
    chains.set(state.id, [...chain, state])
    for (const child of state.children) collect(child, [...chain, state])
  }
  collect(chart.root, [])
  const transitions = states.flatMap((s) => s.transitions)

  // Parallel transitions between the same two boxes share one arrow with one label per line.
  const merged = new Map<string, { from: string; to: string; labels: string[] }>()
  for (const t of transitions) {
    for (const target of t.targets) {
      if (target === t.source) continue
      const key = `${t.source}\u0000${target}`
      const entry = merged.get(key) ?? { from: t.source, to: target, labels: [] }
      const label = transitionLabel(t)
      if (!entry.labels.includes(label)) entry.labels.push(label)
      merged.set(key, entry)
    }
  }
  const labelLines = new Map<string, number>()
  const labelWidth = new Map<string, number>()
  const liftedPair = (from: string, to: string): string | undefined => {
    const a = chains.get(from)!
    const b = chains.get(to)!
    let i = 0
    while (i < a.length && i < b.length && a[i] === b[i]) i++
    return a[i] && b[i] ? pairKey(a[i]!.id, b[i]!.id) : undefined
  }
  for (const e of merged.values()) {
    // Charged to every ancestor of the source, since the gap the label sits in is theirs too.
    for (const s of chains.get(e.from) ?? []) labelLines.set(s.id, Math.max(labelLines.get(s.id) ?? 1, e.labels.length))
    const pair = liftedPair(e.from, e.to)
    const width = Math.max(...e.labels.map((l) => textWidth(l, LABEL_CHAR_W))) + 10
    if (pair) labelWidth.set(pair, Math.max(labelWidth.get(pair) ?? 0, width))
  }

  const root = layout(chart.root, chart.id, { transitions, chains, labelLines, labelWidth })
  const boxes = new Map<string, Box>()
  const lanes = new Map<string, Waypoint[]>()
  absolutize(root, MARGIN, MARGIN, boxes, lanes)
  const edges: Edge[] = [...merged.values()].map((e) => {
    const pair = liftedPair(e.from, e.to)
    const lane = ((pair && lanes.get(pair)) || []).slice().sort((a, b) => a.y - b.y)
    return { from: boxes.get(e.from)!, to: boxes.get(e.to)!, labels: e.labels, lane }
  })
  // Labels keep clear of state titles and detail lines.
  const obstacles: Rect[] = [...boxes.values()].map((b) => ({ x: b.x, y: b.y, w: b.w, h: b.children.length > 0 ? b.headerH : b.h }))

  // Back edges and hooks bulge out to the right; leave room for them and their labels.
  const rightmost = Math.max(
    root.x + root.w,
    ...edges.map((e) => Math.max(e.from.x + e.from.w, e.to.x + e.to.w) + 80 + Math.max(...e.labels.map((l) => textWidth(l, LABEL_CHAR_W))) / 2),
  )
  const width = rightmost + MARGIN
  const height = root.y + root.h + MARGIN
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" class="statechart" data-machine="${xml(chart.id)}" width="${n(width)}" height="${n(height)}" viewBox="0 0 ${n(width)} ${n(height)}">`,
    `<title>${xml(chart.id)} statechart</title>`,
    `<style>${STYLE}</style>`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#64748b"/></marker></defs>',
    `<rect width="100%" height="100%" fill="#ffffff"/>`,
  ]
  drawState(root, out)
  drawEdges(edges, obstacles, out)
  out.push('</svg>')
  return out.join('\n') + '\n'
}

/** data-path values of every state active in a state value (ancestors included; root is ''). */
export function activePaths(value: unknown): string[] {
  const out = ['']
  const walk = (v: unknown, prefix: string[]) => {
    if (typeof v === 'string') out.push([...prefix, v].join('.'))
    else if (v !== null && typeof v === 'object') {
      for (const [key, child] of Object.entries(v)) {
        out.push([...prefix, key].join('.'))
        walk(child, [...prefix, key])
      }
    }
  }
  walk(value, [])
  return out
}
