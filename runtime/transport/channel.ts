// A handle on one outbound logical channel: its lifecycle lives in a transport machine actor
// (machines/transport.ts), its per-message accounting in a ChannelTraffic beside it
// (flow-budget.ts). The coordinator creates channels; applications hold the handle and pass it
// back to send and close.
import type { Actor } from 'xstate'
import type { ChannelStateName, CloseReason, TransportOutput, transportMachine } from '../../machines/transport.js'
import type { ChannelTraffic } from './flow-budget.js'

/** How a channel ended: the machine's verdict and what was sent on it. */
export type ChannelOutcome = TransportOutput & { sent: number; acked: number; failed: number }

export class Channel {
  /** @internal */
  constructor(
    readonly id: string,
    readonly peerId: string,
    readonly contextId: string,
    /** @internal */ readonly actor: Actor<typeof transportMachine>,
    /** @internal */ readonly traffic: ChannelTraffic,
    /** resolves when the channel reaches Closed or Failed */
    readonly closed: Promise<ChannelOutcome>,
  ) {}

  get state(): ChannelStateName {
    const value = this.actor.getSnapshot().value
    return (typeof value === 'string' ? value : Object.keys(value)[0]) as ChannelStateName
  }

  get epoch(): number {
    return this.actor.getSnapshot().context.epoch
  }

  get closeReason(): CloseReason | null {
    return this.actor.getSnapshot().context.closeReason
  }

  /** sends accepted on this channel and not yet acknowledged or failed */
  get inflight(): number {
    return this.traffic.inflight
  }
}
