// Short form of the hostile-wire campaign (`npm run chaos -- --only hostile` runs 100,000 frames):
// the peer under attack lives, its memory stays bounded, nothing it holds changes, and a
// legitimate peer is served during and after the attack.
import { describe, expect, it } from 'vitest'
import { hostileRun } from './hostile.js'

describe('hostile wire', () => {
  it('malformed, truncated, oversized, spoofed and mutated frames on every protocol, and a hundred streams: the peer lives and keeps serving', async () => {
    const r = await hostileRun({ frames: 5_000, streams: 100, seed: 1 })
    expect(r.alive).toBe(true)
    expect(r.framesSent).toBe(5_000)
    // the stream limit refused most of the hundred
    expect(r.streamsOpened).toBeLessThanOrEqual(64)
    expect(r.rssAfterMb - r.rssBeforeMb).toBeLessThan(100)
    expect(r.legitDuring.failed + r.legitAfter.failed).toBe(0)
    expect(r.legitAfter.ok).toBeGreaterThan(0)
    expect(r.tags).toEqual(['kept'])
    expect((r.rejected.MALFORMED_FRAME ?? 0) + (r.rejected.PERMISSION_DENIED ?? 0) + (r.rejected.INVALID_INPUT ?? 0)).toBeGreaterThan(1_000)
  }, 120_000)
})
