// Short form of the real-process campaign (`npm run chaos -- --only processes` reaches 2,000
// acknowledged writes): peer processes SIGKILLed and restarted from their LMDB folders while they
// write replicated keys under quorum and all policies and bump a CRDT counter; afterwards no
// acknowledged write is missing anywhere and every replica holds the same records and count.
import { describe, expect, it } from 'vitest'
import { processCampaign } from './processes.js'

describe('real processes under SIGKILL', () => {
  it('law: no acknowledged write or increment is lost and the replicas converge', async () => {
    const r = await processCampaign({ keys: 120, seed: 2 })
    expect(r.kills).toBeGreaterThan(0)
    expect(r.ackedWrites).toBeGreaterThanOrEqual(120)
    expect(r.violations).toEqual([])
    expect(r.lostAckedWrites).toBe(0)
    expect(r.diverged).toBe(0)
    expect(r.counterMismatch).toBe(0)
  }, 170_000)
})
