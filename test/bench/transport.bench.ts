// Transport channel overhead: request/ack round trips through a TransportCoordinator channel vs
// the same round trip on a bare protocol stream of the same libp2p connection (TCP loopback,
// noise, yamux). Both sides answer every message with a small ack on their own stream, so the
// two figures differ only by what the channel adds: the router (envelopes validated with zod,
// request/answer correlation with a timeout, wire events to the bus and metrics), idempotency key
// and dedup, guard chain and budget charge, and the retry wrapper. Each coordinator is wired as
// createRuntime wires it (router, event bus with metrics, system clock, crypto random), without
// the runtime's per-peer inbound rate limit.

import { Libp2pNetwork } from '../../effects/network/libp2p.js'
import { CryptoRandom } from '../../effects/random/index.js'
import { SystemClock } from '../../effects/time/index.js'
import { EventBus } from '../../runtime/core/events.js'
import { Metrics } from '../../runtime/core/metrics.js'
import { Router } from '../../runtime/core/router.js'
import { TransportCoordinator, type TransportCoordinatorOptions } from '../../runtime/transport/transport-coordinator.js'
import { quantile, sample, type BenchReport } from './report.js'

const RAW = '/aura/bench-raw/1.0.0'
const RAW_ACK = '/aura/bench-raw-ack/1.0.0'
const PAYLOAD_BYTES = 64
const LATENCY_SAMPLES = 2_000
const THROUGHPUT_MESSAGES = 5_000
const ROUNDS = 5
const WINDOW = 32

async function pipelined(total: number, window: number, send: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0
  const start = performance.now()
  await Promise.all(
    Array.from({ length: window }, async () => {
      while (next < total) await send(next++)
    }),
  )
  return (total / (performance.now() - start)) * 1000
}

type RoundTrips = Awaited<ReturnType<typeof roundTrips>>

function coordinatorOn(network: Libp2pNetwork, options: Partial<TransportCoordinatorOptions> = {}) {
  const clock = new SystemClock()
  const random = new CryptoRandom()
  const bus = new EventBus(
    () => network.peerId,
    () => clock.now(),
  )
  const metrics = new Metrics(bus.events$)
  const router = new Router({ network, bus, clock, random, maxFrameBytes: network.maxFrameBytes })
  const transport = new TransportCoordinator({ peerId: network.peerId, router, bus, network, clock, random, ...options })
  const stop = async () => {
    await transport.stop()
    router.close()
    metrics.stop()
  }
  return { transport, stop }
}

/** Runs `measure` on a fresh, connected pair of networks with transport coordinators, then stops them. */
async function withPair<T>(coalesceWrites: boolean, measure: (trips: RoundTrips) => Promise<T>): Promise<T> {
  const a = await Libp2pNetwork.create({ transport: 'tcp', coalesceWrites })
  const b = await Libp2pNetwork.create({ transport: 'tcp', coalesceWrites })
  const sender = coordinatorOn(a, { poolLimit: 4 })
  const receiver = coordinatorOn(b)
  try {
    await Promise.all([sender.transport.start(), receiver.transport.start()])
    await a.connect(b.addresses()[0]!)
    return await measure(await roundTrips(a, b, sender.transport, receiver.transport))
  } finally {
    await sender.stop()
    await receiver.stop()
    await Promise.allSettled([a.stop(), b.stop()])
  }
}

/** Raw-stream and channel throughput, best of ROUNDS, the two alternating round by round. */
async function throughput({ rawRoundTrip, channelRoundTrip }: RoundTrips): Promise<{ raw: number; channel: number }> {
  let raw = 0
  let channel = 0
  for (let round = 0; round < ROUNDS; round++) {
    raw = Math.max(raw, await pipelined(THROUGHPUT_MESSAGES, WINDOW, rawRoundTrip))
    channel = Math.max(channel, await pipelined(THROUGHPUT_MESSAGES, WINDOW, channelRoundTrip))
  }
  return { raw, channel }
}

/** raw: [seq (4 bytes) ‖ payload] out, [seq] back; channel: a message on an established channel. */
async function roundTrips(a: Libp2pNetwork, b: Libp2pNetwork, sender: TransportCoordinator, receiver: TransportCoordinator) {
  const waiting = new Map<number, () => void>()
  await b.handle(RAW, (frame) => void b.send(a.peerId, RAW_ACK, frame.bytes.subarray(0, 4)).catch(() => undefined))
  await a.handle(RAW_ACK, (frame) => {
    const seq = new DataView(frame.bytes.buffer, frame.bytes.byteOffset, 4).getUint32(0)
    waiting.get(seq)?.()
    waiting.delete(seq)
  })
  let seq = 0
  const rawRoundTrip = () => {
    const frame = new Uint8Array(4 + PAYLOAD_BYTES)
    const n = seq++
    new DataView(frame.buffer).setUint32(0, n)
    const acked = new Promise<void>((resolve) => waiting.set(n, resolve))
    return a.send(b.peerId, RAW, frame).then(() => acked)
  }
  const channel = await sender.establishChannel(b.peerId, 'bench')
  receiver.onMessage(() => undefined)
  const payload = new Uint8Array(PAYLOAD_BYTES)
  const channelRoundTrip = () => sender.sendWithRetry(channel, { payload })
  return { rawRoundTrip, channelRoundTrip, connections: () => sender.connectionCount(b.peerId) }
}

export const transportBench = {
  name: 'transport',
  run: async (report: BenchReport): Promise<void> => {
    await withPair(false, async (trips) => {
      const rawLatency = await sample(LATENCY_SAMPLES, trips.rawRoundTrip, 200)
      const channelLatency = await sample(LATENCY_SAMPLES, trips.channelRoundTrip, 200)
      // Alternating rounds, best of each: other work on the machine hits both sides alike.
      const rates = await throughput(trips)
      const note = `${PAYLOAD_BYTES}-byte messages, ${WINDOW} in flight, best of ${ROUNDS}, TCP loopback, ${trips.connections()} connection`
      report.add('transport.channel.msgs_per_s', rates.channel, 'msg/s', note)
      report.add('transport.raw_stream.msgs_per_s', rates.raw, 'msg/s', note)
      report.add(
        'transport.channel.ratio_vs_raw_stream',
        rates.raw / rates.channel,
        'x',
        'raw msgs/s ÷ channel msgs/s (time per message, channel vs raw); aim ≤ 1.5',
      )
      report.add('transport.channel.p50_ms', quantile(channelLatency, 0.5), 'ms', 'one message, send to ack')
      report.add('transport.channel.p99_ms', quantile(channelLatency, 0.99), 'ms')
      report.add('transport.raw_stream.p50_ms', quantile(rawLatency, 0.5), 'ms')
      report.add('transport.raw_stream.p99_ms', quantile(rawLatency, 0.99), 'ms')
      report.add('transport.channel.latency_ratio_p50', quantile(channelLatency, 0.5) / quantile(rawLatency, 0.5), 'x')
    })

    // The same throughput with Libp2pNetwork's coalesceWrites on, against the default in the same run.
    const coalesced = await withPair(true, throughput)
    const plain = await withPair(false, throughput)
    report.add(
      'transport.raw_stream.coalesced.msgs_per_s',
      coalesced.raw,
      'msg/s',
      `coalesceWrites: ${(coalesced.raw / plain.raw).toFixed(2)}x the default (${Math.round(plain.raw)} msg/s) in this run`,
    )
    report.add(
      'transport.channel.coalesced.msgs_per_s',
      coalesced.channel,
      'msg/s',
      `coalesceWrites: ${(coalesced.channel / plain.channel).toFixed(2)}x the default (${Math.round(plain.channel)} msg/s) in this run`,
    )
  },
}
