// The dashboard page: one self-contained HTML document (no external scripts, styles or fonts).
// It listens to /events (SSE, a full snapshot whenever something changed) and draws peers, actors,
// wire messages and metrics. The selected actor's statechart comes from /charts/<machine>.svg and
// its active states get the class `active`. Everything from the network is set as text, never HTML.

export const DASHBOARD_PAGE = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>aura dashboard</title>
<style>
body { font: 13px system-ui, sans-serif; margin: 0; color: #0f172a; background: #f8fafc; }
header { background: #0f172a; color: #f8fafc; padding: .6rem 1rem; display: flex; gap: 1rem; align-items: baseline; }
header h1 { font-size: 1rem; margin: 0; }
#status { font-size: .8rem; color: #94a3b8; }
#status.live { color: #4ade80; }
main { display: grid; grid-template-columns: minmax(420px, 1fr) minmax(420px, 1fr); gap: 1rem; padding: 1rem; }
section { background: #fff; border: 1px solid #e2e8f0; border-radius: 6px; padding: .6rem .8rem; overflow: auto; }
section h2 { font-size: .9rem; margin: 0 0 .4rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #f1f5f9; white-space: nowrap; font-variant-numeric: tabular-nums; }
th { color: #64748b; font-weight: 600; }
td.mono, .mono { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 12px; }
tr.selected td { background: #fef3c7; }
tr[data-actor] { cursor: pointer; }
td.state { font-weight: 600; }
td.history { color: #64748b; max-width: 28rem; overflow: hidden; text-overflow: ellipsis; }
#chart { grid-column: 1 / -1; }
#chart-body svg { max-width: 100%; height: auto; }
.wide { grid-column: 1 / -1; }
section.log { max-height: 26rem; }
.muted { color: #94a3b8; }
</style>
</head>
<body>
<header><h1>aura-orchestration</h1><span id="status">connecting…</span><span id="summary" class="mono"></span></header>
<main>
<section><h2>Peers</h2><table id="peers"><thead><tr><th>peer</th><th>id</th><th>address</th><th>connected</th><th>transitions</th><th>sent</th><th>received</th><th>errors</th></tr></thead><tbody></tbody></table></section>
<section><h2>Metrics</h2><table id="metrics"><thead><tr><th>latency</th><th>count</th><th>p50 ms</th><th>p99 ms</th></tr></thead><tbody></tbody></table>
<table id="error-codes"><thead><tr><th>error code</th><th>count</th></tr></thead><tbody></tbody></table></section>
<section class="wide"><h2>Actors</h2><table id="actors"><thead><tr><th>peer</th><th>machine</th><th>actor</th><th>state</th><th>event</th><th>history</th></tr></thead><tbody></tbody></table></section>
<section id="chart"><h2>Statechart <span id="chart-title" class="mono muted"></span></h2><div id="chart-body" class="muted">select an actor</div></section>
<section class="log"><h2>Recent wire messages</h2><table id="wire"><thead><tr><th>t</th><th>peer</th><th></th><th>kind</th><th>remote</th><th>bytes</th><th>session</th></tr></thead><tbody></tbody></table></section>
<section class="log"><h2>Recent errors</h2><table id="errors"><thead><tr><th>t</th><th>peer</th><th>code</th><th>where</th><th>message</th></tr></thead><tbody></tbody></table></section>
</main>
<script>
(() => {
  const short = (id) => id && id.length > 14 ? id.slice(0, 6) + '…' + id.slice(-4) : (id || '')
  const clock = (t) => new Date(t).toISOString().slice(11, 23)
  let labels = new Map()
  let selected = null
  let pinned = false
  let chartMachine = null
  let latest = null

  function row(cells, attrs) {
    const tr = document.createElement('tr')
    for (const [k, v] of Object.entries(attrs || {})) tr.setAttribute(k, v)
    for (const cell of cells) {
      const td = document.createElement('td')
      const [text, cls, title] = Array.isArray(cell) ? cell : [cell]
      td.textContent = String(text)
      if (cls) td.className = cls
      if (title) td.title = title
      tr.appendChild(td)
    }
    return tr
  }
  function fill(id, rows) {
    const body = document.querySelector('#' + id + ' tbody')
    body.replaceChildren(...rows)
  }
  // Paths of the active states (ancestors included) of a state value; matches data-path in the SVG.
  function activePaths(value) {
    const out = ['']
    const walk = (v, prefix) => {
      if (typeof v === 'string') out.push(prefix.concat(v).join('.'))
      else if (v && typeof v === 'object') for (const [k, c] of Object.entries(v)) { out.push(prefix.concat(k).join('.')); walk(c, prefix.concat(k)) }
    }
    walk(value, [])
    return out
  }
  function highlight() {
    const actor = latest && selected ? latest.actors.find((a) => a.key === selected) : null
    const svg = document.querySelector('#chart-body svg')
    if (!actor || !svg) return
    // The root box is always active; highlighting it would drown the states that matter.
    const active = new Set(activePaths(actor.state).filter((p) => p !== ''))
    for (const g of svg.querySelectorAll('g.state')) g.classList.toggle('active', active.has(g.getAttribute('data-path')))
  }
  async function showChart(machine) {
    if (chartMachine === machine) return highlight()
    chartMachine = machine
    const body = document.getElementById('chart-body')
    const response = await fetch('/charts/' + encodeURIComponent(machine) + '.svg')
    if (chartMachine !== machine) return
    if (!response.ok) { body.textContent = 'no statechart for ' + machine; return }
    body.innerHTML = await response.text()
    body.classList.remove('muted')
    highlight()
  }
  function render(snapshot) {
    latest = snapshot
    labels = new Map(snapshot.peers.map((p) => [p.peer, p.label]))
    const label = (peer) => labels.get(peer) || short(peer)
    fill('peers', snapshot.peers.map((p) => row([
      [p.label, 'mono'], [short(p.peer), 'mono', p.peer], [p.addresses[0] || '', 'mono'], p.connected.length,
      p.metrics.transitions, p.metrics.messagesSent, p.metrics.messagesReceived, p.metrics.errorCount,
    ], { 'data-peer': p.peer })))
    fill('metrics', Object.entries(snapshot.totals.latency).sort().map(([name, s]) => row([[name, 'mono'], s.count, s.p50.toFixed(1), s.p99.toFixed(1)])))
    const codes = {}
    for (const p of snapshot.peers) for (const [code, n] of Object.entries(p.metrics.errors)) codes[code] = (codes[code] || 0) + n
    fill('error-codes', Object.entries(codes).sort().map(([code, n]) => row([[code, 'mono'], n])))
    const actors = [...snapshot.actors].reverse()
    if (!pinned && actors.length > 0) selected = actors[0].key
    fill('actors', actors.map((a) => {
      const tr = row([[label(a.peer), 'mono'], a.machine, [short(a.actorId), 'mono', a.actorId], [a.stateText, 'state mono'], [a.event, 'mono'], [a.history.join(' → '), 'history mono', a.history.join(' → ')]],
        { 'data-actor': a.key, 'data-machine': a.machine, 'data-state': a.stateText })
      if (a.key === selected) tr.classList.add('selected')
      tr.addEventListener('click', () => { selected = a.key; pinned = true; render(latest) })
      return tr
    }))
    fill('wire', [...snapshot.wire].reverse().map((w) => row([[clock(w.t), 'mono'], [label(w.peer), 'mono'], w.direction === 'out' ? '→' : '←', [w.kind, 'mono'], [label(w.remote), 'mono', w.remote], w.bytes, [short(w.session || ''), 'mono', w.session || '']])))
    fill('errors', [...snapshot.errors].reverse().map((e) => row([[clock(e.t), 'mono'], [label(e.peer), 'mono'], [e.code, 'mono'], e.where, e.message])))
    const t = snapshot.totals
    document.getElementById('summary').textContent = snapshot.peers.length + ' peers · ' + snapshot.actors.length + ' actors · sent ' + t.messagesSent + ' · received ' + t.messagesReceived + ' · errors ' + t.errorCount
    const actor = snapshot.actors.find((a) => a.key === selected)
    if (actor) {
      document.getElementById('chart-title').textContent = actor.machine + ' · ' + label(actor.peer) + ' · ' + actor.actorId
      showChart(actor.machine)
    }
  }
  const status = document.getElementById('status')
  const source = new EventSource('/events')
  source.addEventListener('snapshot', (e) => { render(JSON.parse(e.data)); status.textContent = 'live'; status.className = 'live' })
  source.onerror = () => { status.textContent = 'disconnected, retrying…'; status.className = '' }
})()
</script>
</body>
</html>
`
