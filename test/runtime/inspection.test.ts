// Actors inspected through the WebSocket relay reach a Stately inspector client.
import { createServer } from 'node:net'
import { afterEach, describe, expect, it } from 'vitest'
import { createActor } from 'xstate'
import { createWebSocketReceiver, type StatelyInspectionEvent } from '@statelyai/inspect'
import { timeoutMachine } from '../../machines/timeout.js'
import { createInspector, type RuntimeInspector } from '../../runtime/inspection.js'

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

  it('rejects options it cannot use', () => {
    expect(() => createInspector({ url: 'http://example.invalid' })).toThrow(/ws:\/\//)
    expect(() => createInspector({ port: 70_000 })).toThrow()
  })
})
