import { describe, expect, it } from 'vitest'
import { VirtualClock } from '../../../effects/time/virtual.js'
import { InboundChannels } from '../../../runtime/transport/inbound-channels.js'

function setup(ttlMs: number, maxEntries: number) {
  const clock = new VirtualClock(0)
  const counts: Record<string, number> = {}
  const inbound = new InboundChannels(clock, { ttlMs, maxEntries }, (name) => (counts[name] = (counts[name] ?? 0) + 1))
  return { clock, counts, inbound, rec: inbound.add('p', 'c1', 'ctx', 0) }
}

describe('InboundChannels: the dedup window', () => {
  it('remembers delivered keys for ttlMs, then forgets them', async () => {
    const { clock, inbound, rec } = setup(1_000, 100)
    inbound.delivered(rec, 'k1')
    await clock.advance(600)
    inbound.delivered(rec, 'k2')
    expect([...rec.delivered.keys()]).toEqual(['k1', 'k2'])
    await clock.advance(400) // k1 is now ttlMs old
    inbound.delivered(rec, 'k3')
    expect([...rec.delivered.keys()]).toEqual(['k2', 'k3'])
  })

  it('past maxEntries the oldest keys go first, counted as evicted before their time', () => {
    const { counts, inbound, rec } = setup(60_000, 3)
    for (const key of ['a', 'b', 'c', 'd', 'e']) inbound.delivered(rec, key)
    expect([...rec.delivered.keys()]).toEqual(['c', 'd', 'e'])
    expect(counts.dedupEvicted).toBe(2)
  })

  it('a long run keeps the window bounded and the key queue compact', () => {
    const { inbound, rec } = setup(60_000, 500)
    for (let i = 0; i < 20_000; i++) inbound.delivered(rec, `k${i}`)
    expect(rec.delivered.size).toBe(500)
    expect(rec.delivered.has('k19999') && rec.delivered.has('k19500') && !rec.delivered.has('k19499')).toBe(true)
    expect(rec.order.length - rec.head).toBe(500)
    expect(rec.order.length).toBeLessThan(3_000)
  })

  it('sweep drops closed channels once no retry can reach them', async () => {
    const { clock, inbound, rec } = setup(1_000, 100)
    inbound.close(rec)
    inbound.sweep(true)
    expect(inbound.get('p', 'c1')).toBe(rec)
    await clock.advance(1_000)
    inbound.sweep(true)
    expect(inbound.get('p', 'c1')).toBeUndefined()
  })
})
