// Actors inspected through the WebSocket relay reach a Stately inspector client.
import { request } from 'node:http'
import { createServer } from 'node:net'
import { networkInterfaces } from 'node:os'
import { WebSocket } from 'ws'
import { afterEach, describe, expect, it } from 'vitest'
import { createActor } from 'xstate'
import { createWebSocketReceiver, type StatelyInspectionEvent } from '@statelyai/inspect'
import { timeoutMachine } from '../../../machines/timeout.js'
import { createInspector, type RuntimeInspector } from '../../../runtime/core/inspection.js'

const freePort = () =>
  new Promise<number>((resolve) => {
    const server = createServer()
    server.listen(0, '127.0.0.1', () => {
      const port = (server.address() as { port: number }).port
      server.close(() => resolve(port))
    })
  })

let inspector: RuntimeInspector | undefined
afterEach(() => inspector?.stop())

describe('createInspector', () => {
  it("relays an actor's registration, events and snapshots to an inspector client", async () => {
    const port = await freePort()
    inspector = createInspector({ port })
    expect(inspector.url).toBe(`ws://127.0.0.1:${port}`)
    const seen: StatelyInspectionEvent[] = []
    const receiver = createWebSocketReceiver({ server: `ws://127.0.0.1:${port}` })
    receiver.subscribe((event) => seen.push(event))

    const actor = createActor(timeoutMachine, { input: { deadlineAt: 1 }, inspect: inspector.inspect })
    actor.start()
    actor.send({ type: 'CANCEL', reason: 'inspected' })
    expect(actor.getSnapshot().value).toBe('cancelled')

    await expect
      .poll(() => seen.filter((e) => e.type === '@xstate.snapshot' && (e.snapshot as { value?: unknown }).value === 'cancelled').length, { timeout: 10_000 })
      .toBeGreaterThan(0)
    expect(seen.some((e) => e.type === '@xstate.actor')).toBe(true)
    expect(seen.some((e) => e.type === '@xstate.event' && (e.event as { type: string }).type === 'CANCEL')).toBe(true)
  })

  it('the relay is loopback-only and admits no other web page (the events carry every context)', async () => {
    const port = await freePort()
    inspector = createInspector({ port })
    expect(inspector.pageUrl).toBe(`http://127.0.0.1:${port}/`)
    const get = (host: string, hostHeader: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = request({ host, port, path: '/', headers: { host: hostHeader } }, (res) => {
          let body = ''
          res.on('data', (chunk) => (body += chunk))
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
        })
        req.on('error', reject)
        req.end()
      })
    await expect
      .poll(() =>
        get('127.0.0.1', `127.0.0.1:${port}`).then(
          (r) => r.status,
          () => 0,
        ),
      )
      .toBe(200)
    expect((await get('127.0.0.1', `127.0.0.1:${port}`)).body).toContain('<iframe id="inspector"')
    // a page reached through another name (DNS rebinding) gets nothing
    expect((await get('127.0.0.1', `attacker.example:${port}`)).status).toBe(421)
    // not on any other interface
    const external = Object.values(networkInterfaces())
      .flat()
      .find((i) => i && i.family === 'IPv4' && !i.internal)
    if (external) await expect(get(external.address, `${external.address}:${port}`)).rejects.toThrow(/ECONNREFUSED/)
    const opens = (headers: Record<string, string>) =>
      new Promise<boolean>((resolve) => {
        const socket = new WebSocket(`ws://127.0.0.1:${port}`, { headers })
        socket.on('open', () => {
          socket.close()
          resolve(true)
        })
        socket.on('error', () => resolve(false))
      })
    expect(await opens({})).toBe(true)
    expect(await opens({ origin: `http://127.0.0.1:${port}` })).toBe(true)
    expect(await opens({ origin: 'https://attacker.example' })).toBe(false)
  })

  it('rejects options it cannot use', () => {
    expect(() => createInspector({ url: 'http://example.invalid' })).toThrow(/ws:\/\//)
    expect(() => createInspector({ port: 70_000 })).toThrow()
  })
})
