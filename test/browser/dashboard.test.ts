// The dashboard in a real browser: headless Chromium (Debian's, driven by playwright-core) loads
// the page served for 3 runtimes talking over libp2p TCP, sees the 3 peers, and watches a session
// go from active to completed. A screenshot is left in test-artifacts/.
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chromium, type BrowserContext } from 'playwright-core'
import { createRuntime, type Runtime } from '../../runtime/core/runtime.js'
import { defineChoreography, type Choreography } from '../../runtime/sessions/choreography.js'
import { thresholdCeremony } from '../../runtime/sessions/protocols/threshold-ceremony.js'
import { startDashboard, type Dashboard } from '../../tools/dashboard/dashboard.js'

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'
const ARTIFACTS = join(process.cwd(), 'test-artifacts')

// Each step waits a little so the session stays active long enough to be seen on the page.
function slowed(choreography: Choreography, ms: number): Choreography {
  return defineChoreography({
    name: choreography.name,
    roles: choreography.roles,
    steps: choreography.steps.map((step) => ({
      ...step,
      produce: async (context) => {
        await new Promise((resolve) => setTimeout(resolve, ms))
        return step.produce(context)
      },
    })),
  })
}

const dirs: string[] = []
const runtimes: Runtime[] = []
let dashboard: Dashboard
let browser: BrowserContext
const protocol = slowed(thresholdCeremony(3), 250)

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: apt-get install -y chromium (CI's .ci/run does)`)
  for (let i = 0; i < 3; i++) {
    const dataDir = mkdtempSync(join(tmpdir(), 'aura-dash-'))
    dirs.push(dataDir)
    runtimes.push(await createRuntime({ dataDir, protocols: [protocol], sessions: { autoJoin: true } }))
  }
  for (const a of runtimes) for (const b of runtimes) if (a !== b) await a.connect(b.addresses()[0]!)
  for (const peer of runtimes.slice(1))
    peer.sessions.invitations$.subscribe((invite) => void peer.sessions.executeProtocol(invite.sessionId, invite.protocol).catch(() => undefined))
  dashboard = await startDashboard(runtimes, { port: 0 })
  const profile = mkdtempSync(join(tmpdir(), 'aura-chromium-'))
  dirs.push(profile)
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      // Without a GPU, screenshots need the software rasteriser or they never complete.
      '--use-angle=swiftshader',
      '--enable-unsafe-swiftshader',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
})

afterAll(async () => {
  await browser?.close()
  await dashboard?.close()
  for (const runtime of runtimes.splice(0)) await runtime.stop()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

describe('dashboard in headless Chromium', () => {
  it('shows the 3 peers and a session going from active to completed, highlighted on its statechart', async () => {
    expect(dashboard.url.startsWith('http://127.0.0.1:')).toBe(true)
    const page = browser.pages()[0] ?? (await browser.newPage())
    const external: string[] = []
    page.on('request', (request) => {
      if (!request.url().startsWith(dashboard.url)) external.push(request.url())
    })
    await page.goto(dashboard.url)
    await page.locator('#status.live').waitFor()
    await expect.poll(() => page.locator('#peers tbody tr').count()).toBe(3)
    for (const runtime of runtimes) await page.locator(`#peers tr[data-peer="${runtime.peerId}"]`).waitFor()

    const roster = runtimes.map((r, i) => ({ peerId: r.peerId, role: `p${i + 1}` }))
    const session = await runtimes[0]!.sessions.createSession('ceremony', roster, { timeoutMs: 30_000, protocol: protocol.name })
    const done = session.executeProtocol()
    const rows = page.locator(`#actors tr[data-actor$="/${session.id}"]`)

    await page.locator(`#actors tr[data-actor$="/${session.id}"][data-state^="active"]`).first().waitFor({ timeout: 20_000 })
    const activeText = await page.locator(`#actors tr[data-actor$="/${session.id}"][data-state^="active"] td.state`).first().textContent()
    expect(activeText).toMatch(/^active/)

    expect((await done).status).toBe('completed')
    await expect.poll(() => page.locator(`#actors tr[data-actor$="/${session.id}"][data-state="completed"]`).count(), { timeout: 20_000 }).toBe(3)
    expect(await rows.count()).toBe(3)
    // The history on the page shows the path it took, active before completed.
    const history = (await rows.first().locator('td.history').textContent()) ?? ''
    expect(history.indexOf('active')).toBeGreaterThanOrEqual(0)
    expect(history.indexOf('completed')).toBeGreaterThan(history.indexOf('active'))

    // The selected actor is drawn with its current state highlighted.
    await page.locator('#chart-body svg g.state.active[data-path="completed"]').waitFor()
    expect(await page.locator('#chart-body svg g.state.active[data-path="active"]').count()).toBe(0)
    // Wire messages and metrics made it to the page too.
    expect(await page.locator('#wire tbody tr').count()).toBeGreaterThan(0)
    await expect.poll(() => page.locator('#metrics tbody tr').count()).toBeGreaterThan(0)
    expect(external).toEqual([])

    mkdirSync(ARTIFACTS, { recursive: true })
    const shot = join(ARTIFACTS, 'dashboard.png')
    await page.screenshot({ path: shot, fullPage: true })
    expect(existsSync(shot)).toBe(true)
  })
})
