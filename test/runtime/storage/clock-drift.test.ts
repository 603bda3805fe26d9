// Hybrid clock poisoning (issue 10, hole 4): a peer holding only 'replicate' sends a record
// stamped far in the future. Without a bound, the receiver's hybrid clock (and its persisted
// lease) jumps there for good, so that peer's later writes win every LWW comparison forever.
// With the bound, the whole merge is refused with ClockDrift, counted, and the clock stays put.
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Ed25519Crypto } from '../../../effects/crypto/ed25519.js'
import { issueRoot } from '../../../runtime/core/capability.js'
import { LmdbStorage, type Storage } from '../../../effects/storage/index.js'
import type { Clock } from '../../../effects/time/index.js'
import { createRuntime, type Runtime } from '../../../runtime/core/runtime.js'
import { StorageCoordinator, type StoredRecord } from '../../../runtime/storage/storage-coordinator.js'
import { HLC_LEASE_MS } from '../../../runtime/storage/record-meta.js'
import { componentsOf } from '../../../runtime/core/components.js'

const HOUR = 3_600_000
const T = 1_700_000_000_000
const dirs: string[] = []
const runtimes: Runtime[] = []
afterEach(async () => {
  for (const r of runtimes.splice(0)) await r.stop()
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true })
})

const clockAt = (t: number): Clock => ({ now: () => t, setTimeout: () => undefined, clearTimeout: () => undefined, sleep: async () => undefined })

describe('bounded remote clock drift', () => {
  let me: Ed25519Crypto
  let attacker: string
  beforeAll(async () => {
    me = await Ed25519Crypto.fromSeed(new Uint8Array(32).fill(21))
    attacker = (await Ed25519Crypto.fromSeed(new Uint8Array(32).fill(22))).peerId
  })

  async function replica(storage: Storage) {
    const c = new StorageCoordinator(me.peerId, storage, { crypto: me, clock: clockAt(T) })
    const cap = await issueRoot(me, { audience: me.peerId, namespace: '*', rights: ['admin'], notBefore: T - HOUR, expiresAt: T + HOUR })
    const merge = (records: Array<[string, StoredRecord]>) =>
      c.mergeReplica(me.peerId, { namespace: 'docs', resolver: { kind: 'lww' }, records, capability: cap })
    return { c, cap, merge }
  }

  it('a record stamped near 2^53 is refused with ClockDrift; nothing of its batch lands; the clock (and its persisted lease) never jumps', async () => {
    const path = mkdtempSync(join(tmpdir(), 'aura-drift-'))
    dirs.push(path)
    const first = await replica(new LmdbStorage({ path }))
    const poisoned: StoredRecord = [Number.MAX_SAFE_INTEGER - 1, 0, attacker, 0, 'poison']
    const error = await first
      .merge([
        ['honest', [T - 5, 0, attacker, 0, 'fine']],
        ['k', poisoned],
      ])
      .catch((e: unknown) => e)
    expect(error).toMatchObject({ code: 'CLOCK_DRIFT', details: { reason: 'clock-drift', maxClockDriftMs: 60_000 } })
    expect(await first.c.retrieveMany('docs', ['honest', 'k'], first.cap)).toEqual([undefined, undefined])
    const receipt = await first.c.storeInNamespace('docs', 'k', 'mine', first.cap)
    expect(receipt.stamp.wall).toBe(T)
    // within the bound is still accepted, and ordered by the hybrid clock as before
    expect(await first.merge([['near', [T + 30_000, 0, attacker, 0, 'ahead but fine']]])).toEqual({ applied: 1, unchanged: 0 })
    await first.c.effect.close()

    const again = await replica(new LmdbStorage({ path }))
    const later = await again.c.storeInNamespace('docs', 'k', 'after restart', again.cap)
    expect(later.stamp.wall).toBeLessThanOrEqual(T + 30_000 + HLC_LEASE_MS)
    await again.c.effect.close()
  })

  it('createRuntime takes storage.maxClockDriftMs (zod-checked); a refused replica is counted in metrics().errors', async () => {
    await expect(createRuntime({ storage: { maxClockDriftMs: -1 } } as never)).rejects.toMatchObject({ code: 'CONFIG_INVALID' })
    const strict = await createRuntime({})
    const lenient = await createRuntime({ storage: { maxClockDriftMs: 2 * HOUR } })
    const sender = await createRuntime({})
    runtimes.push(strict, lenient, sender)
    for (const r of [strict, lenient]) await sender.connect(r.addresses()[0]!)
    const hourAhead: StoredRecord = [Date.now() + HOUR, 0, sender.peerId, 0, 'from the future']
    const apply = async (to: Runtime) => {
      const capability = await to.storage.grant({
        audience: sender.peerId,
        namespace: 'docs',
        rights: ['replicate'],
        notBefore: Date.now() - HOUR,
        expiresAt: Date.now() + HOUR,
      })
      return componentsOf(sender).router.request(
        to.peerId,
        'replication',
        { kind: 'apply', payload: { namespace: 'docs', resolver: { kind: 'lww' }, records: [['k', hourAhead]], capability } },
        5_000,
      )
    }
    await expect(apply(strict)).rejects.toMatchObject({ code: 'CLOCK_DRIFT' })
    expect(strict.metrics().errors.CLOCK_DRIFT).toBe(1)
    expect(strict.storage.records('docs', ['k'])).toEqual([])
    expect(await apply(lenient)).toEqual({ applied: 1, unchanged: 0 })
  })
})
