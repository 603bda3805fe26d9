// The relay between inspected actors (in one or more processes) and the Stately inspector page.
//
// Stately's own relay (@statelyai/inspect/server) listens on every interface and takes a
// WebSocket from any web page. Inspection events carry every event and context of every actor
// (capabilities, message payloads), so this one:
//   - binds the loopback interface only;
//   - answers only requests whose Host is the relay itself (no DNS-rebinding page can reach it);
//   - admits WebSocket clients that send no Origin (processes: the runtimes) or come from its own
//     page; a browser always sends the Origin of the page that opened the socket.
//
// Protocol, as the inspector expects it: every text message a client sends is kept (the last
// `buffer` of them, for pages that connect late) and forwarded to every other client. The page
// embeds the inspector UI in an iframe and posts each event into it once the iframe announces
// '@statelyai.connected'.

import { spawn } from 'node:child_process'
import { createServer, type IncomingMessage } from 'node:http'
import type { AddressInfo } from 'node:net'
import { platform } from 'node:os'
import { WebSocket, WebSocketServer } from 'ws'

export interface InspectorRelayOptions {
  /** 0 picks a free port */
  port: number
  /** the inspector UI the page embeds */
  inspectorUrl?: string
  /** messages kept for clients that connect later */
  buffer?: number
  autoOpen?: boolean
}

export interface InspectorRelay {
  /** resolves with the bound port once listening */
  readonly listening: Promise<number>
  stop(): Promise<void>
}

const LOOPBACK = '127.0.0.1'

export function startInspectorRelay(options: InspectorRelayOptions): InspectorRelay {
  const inspectorUrl = options.inspectorUrl ?? 'https://stately.ai/inspect'
  const keep = options.buffer ?? 200
  let port = options.port
  const selves = () => new Set([`${LOOPBACK}:${port}`, `localhost:${port}`])
  const fromSelf = (req: IncomingMessage) => selves().has(req.headers.host ?? '')

  const http = createServer((req, res) => {
    if (!fromSelf(req) || req.method !== 'GET' || (req.url ?? '/') !== '/') {
      res.writeHead(fromSelf(req) ? 404 : 421, { 'content-type': 'text/plain' }).end('not here\n')
      return
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(bridgePage(port, inspectorUrl))
  })
  const sockets = new WebSocketServer({
    server: http,
    verifyClient: ({ origin, req }: { origin?: string; req: IncomingMessage }) =>
      fromSelf(req) && (origin === undefined || [...selves()].some((self) => origin === `http://${self}`)),
  })
  const kept: string[] = []
  sockets.on('connection', (socket) => {
    for (const message of kept) socket.send(message)
    socket.on('message', (data, isBinary) => {
      if (isBinary) return
      const message = data.toString()
      kept.push(message)
      if (kept.length > keep) kept.shift()
      for (const client of sockets.clients) if (client !== socket && client.readyState === WebSocket.OPEN) client.send(message)
    })
  })

  const listening = new Promise<number>((resolve, reject) => {
    http.once('error', reject)
    http.listen(options.port, LOOPBACK, () => {
      port = (http.address() as AddressInfo).port
      if (options.autoOpen) openInBrowser(`http://${LOOPBACK}:${port}/`)
      resolve(port)
    })
  })
  // An unhandled rejection must not take the process down when nobody awaits `listening`.
  listening.catch(() => undefined)

  return {
    listening,
    stop: () =>
      new Promise<void>((resolve) => {
        for (const client of sockets.clients) client.terminate()
        sockets.close()
        http.close(() => resolve())
      }),
  }
}

function bridgePage(port: number, inspectorUrl: string): string {
  return `<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>aura-orchestration · Stately inspector</title>
<style>html, body, iframe { margin: 0; width: 100%; height: 100%; border: 0; }</style>
</head>
<body>
<iframe id="inspector" src="${encodeURI(inspectorUrl)}"></iframe>
<script>
  const frame = document.getElementById('inspector')
  const waiting = []
  let ready = false
  const post = (event) => frame.contentWindow.postMessage(event, '*')
  window.addEventListener('message', (e) => {
    if (e.source !== frame.contentWindow || !e.data || e.data.type !== '@statelyai.connected') return
    ready = true
    waiting.splice(0).forEach(post)
  })
  const socket = new WebSocket('ws://${LOOPBACK}:${port}')
  socket.onmessage = (e) => {
    const event = JSON.parse(e.data)
    if (ready) post(event)
    else waiting.push(event)
  }
</script>
</body>
</html>
`
}

function openInBrowser(url: string): void {
  const opener = platform() === 'darwin' ? 'open' : platform() === 'win32' ? 'explorer' : 'xdg-open'
  // Best effort: a machine without a browser just does not open one.
  spawn(opener, [url], { stdio: 'ignore', detached: true })
    .on('error', () => undefined)
    .unref()
}
