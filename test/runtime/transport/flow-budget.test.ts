import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { ChannelTraffic, FlowMeter, flowBudgetSchema } from '../../../runtime/transport/flow-budget.js'

describe('FlowMeter', () => {
  it('a message budget admits maxMessages per window and refuses the next', () => {
    const meter = new FlowMeter({ maxMessages: 2, windowMs: 1000 })
    expect([meter.charge(1, 0), meter.charge(1, 10), meter.charge(1, 20)]).toEqual([true, true, false])
    expect({ bytes: meter.bytes, messages: meter.messages }).toEqual({ bytes: 2, messages: 2 })
  })

  it('a byte budget counts bytes, and a new window starts the count over', () => {
    const meter = new FlowMeter({ maxBytes: 100, windowMs: 1000 })
    expect(meter.charge(60, 0)).toBe(true)
    expect(meter.charge(40, 999)).toBe(true)
    expect(meter.charge(100, 1000)).toBe(true)
    expect({ startedAt: meter.startedAt, bytes: meter.bytes, messages: meter.messages }).toEqual({ startedAt: 1000, bytes: 100, messages: 1 })
    expect(meter.charge(1, 1500)).toBe(false)
  })

  it('a refused message charges nothing, and does not start a window', () => {
    const meter = new FlowMeter({ maxBytes: 10, windowMs: 100 })
    expect(meter.charge(11, 0)).toBe(false)
    expect({ startedAt: meter.startedAt, bytes: meter.bytes, messages: meter.messages }).toEqual({ startedAt: Number.NEGATIVE_INFINITY, bytes: 0, messages: 0 })
    expect(meter.charge(10, 5)).toBe(true)
    expect(meter.charge(1, 6)).toBe(false)
    expect(meter.bytes).toBe(10)
  })

  it('law: within any window, what was admitted never exceeds the budget', () => {
    fc.assert(
      fc.property(
        fc.record({ maxBytes: fc.integer({ min: 1, max: 200 }), maxMessages: fc.integer({ min: 1, max: 10 }), windowMs: fc.integer({ min: 1, max: 100 }) }),
        fc.array(fc.record({ bytes: fc.integer({ min: 0, max: 80 }), gap: fc.integer({ min: 0, max: 60 }) }), { maxLength: 60 }),
        (budget, sends) => {
          const meter = new FlowMeter(budget)
          let at = 0
          let admitted = 0
          for (const { bytes, gap } of sends) {
            at += gap
            const startedBefore = meter.startedAt
            if (meter.charge(bytes, at)) admitted++
            if (meter.startedAt !== startedBefore) expect(at - startedBefore).toBeGreaterThanOrEqual(budget.windowMs)
            expect(meter.bytes).toBeLessThanOrEqual(budget.maxBytes)
            expect(meter.messages).toBeLessThanOrEqual(budget.maxMessages)
          }
          expect(admitted).toBeLessThanOrEqual(sends.length)
        },
      ),
      { numRuns: 200 },
    )
  })

  it('the budget schema needs a limit and a window', () => {
    expect(flowBudgetSchema.safeParse({ windowMs: 10 }).success).toBe(false)
    expect(flowBudgetSchema.safeParse({ maxBytes: 0, windowMs: 10 }).success).toBe(false)
    expect(flowBudgetSchema.safeParse({ maxMessages: 1, windowMs: 10 }).success).toBe(true)
  })
})

describe('ChannelTraffic', () => {
  it('counts sends in flight, and says when the last one settles', () => {
    const traffic = new ChannelTraffic()
    traffic.started()
    traffic.started()
    expect(traffic).toMatchObject({ inflight: 2, sent: 2 })
    expect(traffic.settled(true)).toBe(false)
    expect(traffic.settled(false)).toBe(true)
    expect(traffic).toMatchObject({ inflight: 0, sent: 2, acked: 1, failed: 1 })
  })
})
