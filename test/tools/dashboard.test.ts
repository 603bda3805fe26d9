// The dashboard server without a browser: routes, bad input (404, no traversal, no crash), the
// model's bounds, and the IPC adapter the CLI feeds it through.
import { request } from 'node:http'
import { EventEmitter } from 'node:events'
import { afterEach, describe, expect, it } from 'vitest'
import { Subject } from 'rxjs'
import { startDashboard, type Dashboard } from '../../tools/dashboard/dashboard.js'
import { DashboardModel, stateText, type DashboardInput } from '../../tools/dashboard/model.js'
import { inputsFromIpc, ipcFeed } from '../../tools/dashboard/feeds.js'

const open: Dashboard[] = []
afterEach(async () => {
  for (const d of open.splice(0)) await d.close()
})

async function start(feed = new Subject<DashboardInput>()) {
  const dashboard = await startDashboard(feed, { port: 0, pushMs: 10 })
  open.push(dashboard)
  return { dashboard, feed }
}

/** A raw request, so paths reach the server exactly as written (fetch would normalise `..`). */
function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk) => (body += chunk))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type'] ?? '') }))
    })
    req.on('error', reject)
    req.end()
  })
}

const transition = (peer: string, actorId: string, state: unknown): DashboardInput => ({
  type: 'event',
  event: { type: 'transition', t: 1, peer, actorId, machine: 'session', state, event: 'X' },
})

describe('dashboard server', () => {
  it('binds to loopback by default and serves the page, state, actors and charts', async () => {
    const { dashboard, feed } = await start()
    expect(dashboard.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/)
    feed.next({ type: 'peer', peer: 'peerA', label: 'p1', addresses: ['/ip4/127.0.0.1/tcp/1'] })
    feed.next(transition('peerA', 's1', { active: { running: 'sending' } }))
    const page = await get(dashboard.port, '/')
    expect(page.status).toBe(200)
    expect(page.body).toContain('EventSource')
    expect(page.body).not.toMatch(/src="https?:|href="https?:/)
    const state = JSON.parse((await get(dashboard.port, '/api/state')).body)
    expect(state.peers.map((p: { label: string }) => p.label)).toEqual(['p1'])
    const actor = await get(dashboard.port, '/api/actors/peerA/s1')
    expect(actor.status).toBe(200)
    expect(JSON.parse(actor.body).stateText).toBe('active.running.sending')
    const chart = await get(dashboard.port, '/charts/session.svg')
    expect(chart.status).toBe(200)
    expect(chart.type).toContain('image/svg+xml')
    expect((await get(dashboard.port, '/visualizations/session.svg')).status).toBe(200)
  })

  it('answers 404 for unknown actors, charts and files, and never leaves visualizations/', async () => {
    const { dashboard } = await start()
    for (const path of [
      '/api/actors/nobody/nothing',
      '/api/actors/only-one-segment',
      '/charts/noSuchMachine.svg',
      '/charts/..%2F..%2Fpackage.json',
      '/visualizations/nope.svg',
      '/visualizations/../package.json',
      '/visualizations/..%2Fpackage.json',
      '/visualizations/%2e%2e%2fpackage.json',
      '/visualizations/%2e%2e/package.json',
      '/visualizations/..%5Cpackage.json',
      '/visualizations/.hidden.json',
      '/visualizations/session.ts',
      '/../../etc/passwd',
      '/nothing-here',
    ]) {
      const response = await get(dashboard.port, path)
      expect(response.status, path).toBe(404)
      expect(response.body).not.toContain('"dependencies"')
    }
    expect((await get(dashboard.port, '/visualizations/%E0%A4%A')).status).toBe(400)
    expect((await get(dashboard.port, '/', 'POST')).status).toBe(405)
    // Still serving after all that.
    expect((await get(dashboard.port, '/api/state')).status).toBe(200)
  })

  it('pushes a snapshot over SSE when the state changes', async () => {
    const { dashboard, feed } = await start()
    const received = new Promise<string>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: dashboard.port, path: '/events' }, (res) => {
        let buffer = ''
        res.setEncoding('utf8')
        res.on('data', (chunk) => {
          buffer += chunk
          if (buffer.includes('"completed"')) {
            req.destroy()
            resolve(buffer)
          }
        })
      })
      req.on('error', (error) => (String(error).includes('socket hang up') ? undefined : reject(error)))
      req.end()
    })
    setTimeout(() => feed.next(transition('peerA', 's1', 'completed')), 20)
    const text = await received
    expect(text).toContain('event: snapshot')
  })
})

describe('dashboard model', () => {
  it('ignores malformed inputs instead of failing', () => {
    const model = new DashboardModel()
    expect(model.apply({ type: 'event', event: { type: 'transition' } })).toBe(false)
    expect(model.apply(null)).toBe(false)
    expect(model.apply({ type: 'peer', peer: '' })).toBe(false)
    expect(model.snapshot().peers).toEqual([])
  })

  it('keeps a bounded window of actors, wire messages and history', () => {
    const model = new DashboardModel({ actors: 2, wire: 3, history: 2 })
    for (let i = 0; i < 5; i++) model.apply(transition('p', `a${i}`, 'created'))
    for (const state of ['created', 'active', 'terminating', 'completed']) model.apply(transition('p', 'a4', state))
    for (let i = 0; i < 10; i++) model.apply({ type: 'event', event: { type: 'wire', t: i, peer: 'p', direction: 'out', kind: 'step', remote: 'q', bytes: 1 } })
    const snapshot = model.snapshot()
    expect(snapshot.actors.map((a) => a.actorId)).toEqual(['a3', 'a4'])
    expect(model.actor('p', 'a4')?.history).toEqual(['terminating', 'completed'])
    expect(snapshot.wire.map((w) => w.t)).toEqual([7, 8, 9])
    expect(snapshot.peers[0]!.metrics.messagesSent).toBe(10)
  })

  it('writes state values as dotted paths', () => {
    expect(stateText({ active: { running: 'awaiting' } })).toBe('active.running.awaiting')
    expect(stateText('completed')).toBe('completed')
    expect(stateText({ a: 'x', b: 'y' })).toBe('a.x, b.y')
  })
})

describe("IPC feed (the CLI's peer processes)", () => {
  it('translates peer-process messages into dashboard inputs', () => {
    expect(inputsFromIpc('P', { type: 'progress', what: 'transition', sessionId: 's', state: { active: 'running' }, t: 5 })).toEqual([
      { type: 'event', event: { type: 'transition', peer: 'P', t: 5, actorId: 's', machine: 'session', state: { active: 'running' }, event: '' } },
    ])
    expect(inputsFromIpc('P', { type: 'progress', what: 'step-sent', to: 'Q', sessionId: 's', t: 6 })[0]).toMatchObject({
      event: { type: 'wire', direction: 'out', remote: 'Q', session: 's' },
    })
    expect(inputsFromIpc('P', { type: 'connected', peers: ['Q'] })).toEqual([{ type: 'peer', peer: 'P', connected: ['Q'] }])
    expect(inputsFromIpc('P', { type: 'nonsense' })).toEqual([])
    expect(inputsFromIpc('P', 'garbage')).toEqual([])
  })

  it('feeds a model from child processes, learning peer ids from their ready message', () => {
    const child = new EventEmitter()
    const model = new DashboardModel()
    const sub = ipcFeed([{ process: child as never, label: 'p1' }]).subscribe((input) => model.apply(input))
    child.emit('message', { type: 'progress', what: 'transition', sessionId: 'early', state: 'created' })
    child.emit('message', { type: 'ready', peerId: 'PEER1', addresses: ['/ip4/127.0.0.1/tcp/9'] })
    child.emit('message', { type: 'progress', what: 'transition', sessionId: 's1', state: 'completed', t: 1 })
    sub.unsubscribe()
    child.emit('message', { type: 'progress', what: 'transition', sessionId: 'late', state: 'created' })
    const snapshot = model.snapshot()
    expect(snapshot.peers).toMatchObject([{ peer: 'PEER1', label: 'p1', addresses: ['/ip4/127.0.0.1/tcp/9'] }])
    expect(snapshot.actors.map((a) => a.actorId)).toEqual(['s1'])
  })
})
