// Sessions between runtimes over real libp2p TCP on loopback, each with its own LMDB folder.
import { afterEach, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { thresholdCeremony } from '../../../runtime/sessions/protocols/threshold-ceremony.js'

const dirs: string[] = []
const runtimes: Runtime[] = []
afterEach(async () => {
  for (const runtime of runtimes.splice(0)) await runtime.stop()
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true })
})

async function cluster(n: number, coalesceWrites = false) {
  const protocol = thresholdCeremony(n)
  const peers: Runtime[] = []
  for (let i = 0; i < n; i++) {
    const dataDir = mkdtempSync(join(tmpdir(), 'aura-tcp-'))
    dirs.push(dataDir)
    const runtime = await createRuntime({ dataDir, protocols: [protocol], sessions: { autoJoin: true }, coalesceWrites })
    runtimes.push(runtime)
    peers.push(runtime)
  }
  for (const a of peers) for (const b of peers) if (a !== b) await a.connect(b.addresses()[0]!)
  for (const peer of peers.slice(1)) peer.sessions.invitations$.subscribe((invite) => void peer.sessions.executeProtocol(invite.sessionId, invite.protocol))
  return { peers, protocol, roster: peers.map((p, i) => ({ peerId: p.peerId, role: `p${i + 1}` })) }
}

describe('sessions over libp2p TCP', () => {
  it.each([false, true])('3 runtimes complete a threshold ceremony and agree on the group key (coalesceWrites: %s)', async (coalesceWrites) => {
    const { peers, protocol, roster } = await cluster(3, coalesceWrites)
    const session = await peers[0]!.sessions.createSession('ceremony', roster, { timeoutMs: 10_000, protocol: protocol.name })
    const results = await Promise.all([session.executeProtocol(), ...peers.slice(1).map((p) => p.sessions.result(session.id))])
    const keys = new Set<string>()
    for (const result of results) {
      expect(result.status).toBe('completed')
      expect(result.outcome.kind).toBe('success')
      const byStep = (result.outcome as { results: Record<string, Record<string, { groupKey?: string }>> }).results
      for (const payloads of Object.values(byStep)) for (const p of Object.values(payloads)) if (p.groupKey) keys.add(p.groupKey)
    }
    expect(keys.size).toBe(1)
    const metrics = peers[0]!.metrics()
    expect(metrics.messagesSent).toBeGreaterThan(0)
    expect(metrics.latency['session.duration']?.count).toBe(1)
  })

  it('a peer stopped mid-session makes the others end Failed (timeout) by the deadline', async () => {
    const { peers, protocol, roster } = await cluster(3)
    const victim = peers[2]!
    // Stop the third peer as soon as it has sent its first step.
    const stopped = new Promise<void>((resolve) => {
      const sub = victim.events$.subscribe((event) => {
        if (event.type === 'wire' && event.direction === 'out' && event.kind === 'step') {
          sub.unsubscribe()
          void victim.stop().then(resolve)
        }
      })
    })
    const timeoutMs = 3_000
    const session = await peers[0]!.sessions.createSession('ceremony', roster, { timeoutMs, protocol: protocol.name })
    const deadlineAt = session.state().deadlineAt
    const results = await Promise.all([session.executeProtocol(), peers[1]!.sessions.result(session.id)])
    await stopped
    for (const result of results) {
      expect(result.status).toBe('failed')
      expect(result.outcome, JSON.stringify(result.outcome)).toMatchObject({ kind: 'timeout' })
    }
    // ended by the deadline (a retry that cannot finish in time gives up a little early), never hung
    expect(Date.now() - deadlineAt).toBeLessThan(1_000)
  })
})
