// Per-message accounting of one channel, in plain code beside its machine: the flow budget's
// window and what the channel has sent, has in flight, and got back. The channel machine
// (machines/transport.ts) sees none of it per message; it hears only the changes that matter to
// its lifecycle: the budget is spent (BUDGET_SPENT) and a draining channel has nothing in flight
// any more (DRAINED).
//
// Budget: bytes and/or messages per window. A window starts with the first send after the
// previous one's `windowMs` has passed (not on a fixed grid), so a burst right after a quiet
// spell gets a whole window. A send that does not fit is refused whole: nothing of it is charged.
import { z } from 'zod'

export const flowBudgetSchema = z
  .object({
    maxBytes: z.number().int().positive().optional(),
    maxMessages: z.number().int().positive().optional(),
    windowMs: z.number().int().positive(),
  })
  .strict()
  .refine((b) => b.maxBytes !== undefined || b.maxMessages !== undefined, 'a flow budget limits bytes, messages or both')
export type FlowBudget = z.infer<typeof flowBudgetSchema>

/** How a send is guarded: fail-closed sends tear the channel down on overrun, best-effort ones are shed alone. */
export type GuardMode = 'fail-closed' | 'best-effort'

export class FlowMeter {
  /** the current window: when it started and what it has used */
  startedAt = Number.NEGATIVE_INFINITY
  bytes = 0
  messages = 0

  constructor(readonly budget: FlowBudget) {}

  /** Charges one message of `bytes` at time `at` if it fits the budget; false (and nothing charged) if not. */
  charge(bytes: number, at: number): boolean {
    const { maxBytes, maxMessages, windowMs } = this.budget
    const fresh = at - this.startedAt >= windowMs
    const used = fresh ? 0 : this.bytes
    const sent = fresh ? 0 : this.messages
    if (maxBytes !== undefined && used + bytes > maxBytes) return false
    if (maxMessages !== undefined && sent + 1 > maxMessages) return false
    if (fresh) this.startedAt = at
    this.bytes = used + bytes
    this.messages = sent + 1
    return true
  }
}

/** What a channel has sent, and what became of it. */
export class ChannelTraffic {
  inflight = 0
  sent = 0
  acked = 0
  failed = 0
  /** refused before sending: over budget, or the channel no longer open */
  rejected = 0

  /** A send was accepted and is now in flight. */
  started(): void {
    this.inflight++
    this.sent++
  }

  /** A send in flight ended; returns whether nothing is in flight any more. */
  settled(acked: boolean): boolean {
    this.inflight--
    if (acked) this.acked++
    else this.failed++
    return this.inflight === 0
  }
}
