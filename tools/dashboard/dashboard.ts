// The dashboard: a local web page (node:http, no framework, no external assets) showing peers,
// live actors with their current state highlighted on the statechart, recent wire messages and
// metrics, updated live over Server-Sent Events from the runtimes' rxjs streams.
//
//   GET /                       the page
//   GET /events                 SSE: `snapshot` events (full state, sent when it changed)
//   GET /api/state              the same snapshot as JSON
//   GET /api/actors/:peer/:id   one actor, or 404
//   GET /charts/:machine.svg    statechart of a machine exported from machines/, or 404
//   GET /visualizations/:file   a file from visualizations/ (names only: no paths), or 404
//
// Bound to 127.0.0.1 unless told otherwise: it shows session ids, peer ids and error messages.

import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import { readFile } from 'node:fs/promises'
import { dirname, join, resolve, sep } from 'node:path'
import { fileURLToPath } from 'node:url'
import { isObservable, type Observable, type Subscription } from 'rxjs'
import { z } from 'zod'
import { InvalidInput } from '../../effects/errors.js'
import { DASHBOARD_PAGE } from './page.js'
import { DashboardModel, type DashboardInput, type DashboardLimits } from './model.js'
import { runtimeFeed } from './feeds.js'
import type { Runtime } from '../../runtime/core/runtime.js'
import { chartOf, discoverMachines } from '../statecharts/export.js'
import { svgOf } from '../statecharts/svg.js'

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..')

export const dashboardOptionsSchema = z
  .object({
    /** 0 picks a free port */
    port: z.number().int().min(0).max(65535).default(7373),
    host: z.string().min(1).default('127.0.0.1'),
    /** how often a changed state is pushed to the pages */
    pushMs: z.number().int().min(10).max(10_000).default(100),
    visualizationsDir: z.string().min(1).default(join(root, 'visualizations')),
    machinesDir: z.string().min(1).default(join(root, 'machines')),
    limits: z
      .object({
        actors: z.number().int().positive(),
        wire: z.number().int().positive(),
        errors: z.number().int().positive(),
        history: z.number().int().positive(),
      })
      .partial()
      .default({}),
  })
  .strict()
export type DashboardOptions = z.input<typeof dashboardOptionsSchema>

export interface Dashboard {
  readonly url: string
  readonly port: number
  readonly model: DashboardModel
  close(): Promise<void>
}

const VISUALIZATION_FILE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}\.(svg|json|mmd|html)$/
const CONTENT_TYPES: Record<string, string> = {
  svg: 'image/svg+xml; charset=utf-8',
  json: 'application/json; charset=utf-8',
  mmd: 'text/plain; charset=utf-8',
  html: 'text/html; charset=utf-8',
}

/**
 * Starts the dashboard over runtimes in this process or any stream of dashboard inputs.
 * @example
 * const dashboard = await startDashboard([alice, bob], { port: 8090 })
 * console.log(dashboard.url)
 */
export async function startDashboard(source: Runtime[] | Observable<DashboardInput>, options: DashboardOptions = {}): Promise<Dashboard> {
  const parsed = dashboardOptionsSchema.safeParse(options)
  if (!parsed.success) throw new InvalidInput(`invalid dashboard options: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`)
  const config = parsed.data
  const model = new DashboardModel(config.limits as Partial<DashboardLimits>)
  const feed = isObservable(source) ? source : runtimeFeed(source)
  const subscription: Subscription = feed.subscribe({ next: (input) => void model.apply(input) })

  let charts: Promise<Map<string, string>> | undefined
  // Rendered on first request: importing every machine module is not free.
  const chartsByMachine = () =>
    (charts ??= discoverMachines(config.machinesDir).then((found) => new Map(found.map(({ machine }) => [machine.id, svgOf(chartOf(machine))]))))

  const clients = new Set<ServerResponse>()
  let sentRevision = -1
  const snapshotMessage = () => `event: snapshot\ndata: ${JSON.stringify(model.snapshot())}\n\n`
  const pusher = setInterval(() => {
    if (model.revision === sentRevision || clients.size === 0) return
    sentRevision = model.revision
    const message = snapshotMessage()
    for (const client of clients) client.write(message)
  }, config.pushMs)
  pusher.unref()

  const send = (res: ServerResponse, status: number, body: string, type = 'text/plain; charset=utf-8') => {
    res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store', 'x-content-type-options': 'nosniff' })
    res.end(body)
  }
  const notFound = (res: ServerResponse) => send(res, 404, 'not found\n')

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('allow', 'GET, HEAD')
      return send(res, 405, 'method not allowed\n')
    }
    const url = new URL(req.url ?? '/', 'http://dashboard.invalid')
    // Decoded segments: an encoded '/' or '..' must not slip past the checks below.
    let segments: string[]
    try {
      segments = url.pathname
        .split('/')
        .slice(1)
        .map((s) => decodeURIComponent(s))
    } catch {
      return send(res, 400, 'bad request\n')
    }
    const [head, ...rest] = segments
    if (url.pathname === '/') return send(res, 200, DASHBOARD_PAGE, 'text/html; charset=utf-8')
    if (url.pathname === '/events') {
      res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' })
      res.write(`retry: 1000\n\n${snapshotMessage()}`)
      clients.add(res)
      req.on('close', () => clients.delete(res))
      return
    }
    if (url.pathname === '/api/state') return send(res, 200, JSON.stringify(model.snapshot()), CONTENT_TYPES.json)
    if (head === 'api' && rest[0] === 'actors' && rest.length === 3) {
      const actor = model.actor(rest[1]!, rest[2]!)
      return actor ? send(res, 200, JSON.stringify(actor), CONTENT_TYPES.json) : notFound(res)
    }
    if (head === 'charts' && rest.length === 1 && rest[0]!.endsWith('.svg')) {
      const svg = (await chartsByMachine()).get(rest[0]!.slice(0, -'.svg'.length))
      return svg ? send(res, 200, svg, CONTENT_TYPES.svg) : notFound(res)
    }
    if (head === 'visualizations' && rest.length === 1 && VISUALIZATION_FILE.test(rest[0]!)) {
      const base = resolve(config.visualizationsDir)
      const file = resolve(base, rest[0]!)
      if (!file.startsWith(base + sep)) return notFound(res)
      try {
        const body = await readFile(file, 'utf8')
        return send(res, 200, body, CONTENT_TYPES[rest[0]!.split('.').pop()!])
      } catch {
        return notFound(res)
      }
    }
    return notFound(res)
  }

  const server: Server = createServer((req, res) => {
    handle(req, res).catch(() => {
      if (!res.headersSent) send(res, 500, 'internal error\n')
      else res.end()
    })
  })
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject)
    server.listen(config.port, config.host, () => {
      server.off('error', reject)
      resolveListen()
    })
  })
  const address = server.address()
  const port = typeof address === 'object' && address ? address.port : config.port
  const hostForUrl = config.host.includes(':') ? `[${config.host}]` : config.host

  return {
    url: `http://${hostForUrl}:${port}/`,
    port,
    model,
    async close() {
      clearInterval(pusher)
      subscription.unsubscribe()
      for (const client of clients) client.end()
      clients.clear()
      await new Promise<void>((done) => {
        server.close(() => done())
        server.closeAllConnections()
      })
      model.close()
    },
  }
}
