// Runtime configuration, validated with zod at the boundary. Effects can be injected (simulation
// and tests); anything not injected gets the real handler: libp2p TCP on 127.0.0.1, LMDB in a
// data folder, the system clock, crypto randomness, and an ed25519 identity kept in storage.

import { z } from 'zod'
import { ConfigInvalid } from '../../effects/errors.js'
import type { Network } from '../../effects/network/index.js'
import type { Storage } from '../../effects/storage/index.js'
import type { Clock } from '../../effects/time/index.js'
import type { Random } from '../../effects/random/index.js'
import type { Crypto } from '../../effects/crypto/index.js'
import type { Choreography } from '../sessions/choreography.js'
import { DEFAULT_MAX_CLOCK_DRIFT_MS } from '../storage/hybrid-clock.js'

const isObject = (v: unknown) => typeof v === 'object' && v !== null

const DEFAULT_RETAIN_FINISHED_MS = 10 * 60_000
// Long next to a session's own timeout, short enough that a leader gone for good does not keep
// its participants waiting for ever.
const DEFAULT_VERDICT_GRACE_MS = 60_000

const DEFAULT_LIMITS = {
  maxParticipants: 32,
  maxConcurrentSessions: 1000,
  maxMessageBytes: 256 * 1024,
  // far above what any pattern sends in normal work (pipelined replication included), low enough
  // that one peer cannot keep every core busy answering it
  maxInboundPerPeerPerSecond: 20_000,
  // streams are long-lived (one per protocol and direction); see effects/network/libp2p.ts
  maxStreamsPerPeer: 64,
  maxConnections: 300,
}

export const runtimeConfigSchema = z
  .object({
    /** LMDB folder; default: a new folder under the OS temp dir */
    dataDir: z.string().min(1).optional(),
    transport: z.enum(['tcp', 'memory']).default('tcp'),
    /** listen multiaddrs; default 127.0.0.1 on a free TCP port (or a fresh memory address) */
    listen: z.array(z.string().min(1)).optional(),
    /** addresses dialled at start */
    bootstrap: z.array(z.string().min(1)).default([]),
    maxFrameBytes: z.number().int().min(1024).max(64 * 1024 * 1024).default(1024 * 1024),
    /** send pipelined frames in fewer, larger writes, for a loop turn of latency (Libp2pNetwork's coalesceWrites) */
    coalesceWrites: z.boolean().default(false),
    limits: z
      .object({
        maxParticipants: z.number().int().min(2).max(1024).default(32),
        maxConcurrentSessions: z.number().int().min(1).max(1_000_000).default(1000),
        maxMessageBytes: z.number().int().min(64).max(64 * 1024 * 1024).default(256 * 1024),
        /** inbound messages one peer may send per second (a token bucket with a second's worth of
         * burst); more are answered LIMIT_EXCEEDED. Answers to our own requests are not counted */
        maxInboundPerPeerPerSecond: z.number().int().min(1).max(10_000_000).default(DEFAULT_LIMITS.maxInboundPerPeerPerSecond),
        /** streams one peer may hold open with us, each way (libp2p muxer and per protocol) */
        maxStreamsPerPeer: z.number().int().min(8).max(65_536).default(DEFAULT_LIMITS.maxStreamsPerPeer),
        /** connections libp2p keeps before it prunes */
        maxConnections: z.number().int().min(1).max(100_000).default(DEFAULT_LIMITS.maxConnections),
      })
      .strict()
      .default(DEFAULT_LIMITS),
    sessions: z
      .object({
        defaultTimeoutMs: z.number().positive().max(7 * 24 * 3600_000).default(30_000),
        /** join sessions we are invited to automatically, with the role the invite gives us */
        autoJoin: z.boolean().default(false),
        /** how long a finished (completed, failed, cancelled) session stays readable before it is
         * dropped from memory and storage; endSession drops it at once */
        retainFinishedMs: z.number().int().nonnegative().max(30 * 24 * 3600_000).default(DEFAULT_RETAIN_FINISHED_MS),
        /** how long past its deadline a participant keeps asking the session's leader for the
         * verdict before it times out on its own (the one way outcomes can differ: a leader gone
         * for good). Scaled by the timeout profile */
        verdictGraceMs: z.number().int().nonnegative().max(7 * 24 * 3600_000).default(DEFAULT_VERDICT_GRACE_MS),
      })
      .strict()
      .default({ defaultTimeoutMs: 30_000, autoJoin: false, retainFinishedMs: DEFAULT_RETAIN_FINISHED_MS, verdictGraceMs: DEFAULT_VERDICT_GRACE_MS }),
    storage: z
      .object({
        /** how far ahead of this peer's clock a replicated record's timestamp may be (ClockDrift beyond) */
        maxClockDriftMs: z.number().int().positive().max(Number.MAX_SAFE_INTEGER).default(DEFAULT_MAX_CLOCK_DRIFT_MS),
        /** peers whose root capabilities this peer accepts besides its own (cluster members, an
         * administrator): a token a trusted root issued itself is enough, no pairwise grants */
        trustedRoots: z.array(z.string().min(1).max(128)).max(10_000).default([]),
        /** namespaces (exact names) that accept only capabilities rooted at one of the listed owners */
        owners: z.record(z.string().min(1).max(256), z.array(z.string().min(1).max(128)).min(1)).default({}),
      })
      .strict()
      .default({ maxClockDriftMs: DEFAULT_MAX_CLOCK_DRIFT_MS, trustedRoots: [], owners: {} }),
    /** scales every timeout: production 1, tests and simulation lower */
    timeoutProfile: z
      .object({ name: z.string().min(1), factor: z.number().positive().max(100) })
      .strict()
      .default({ name: 'production', factor: 1 }),
    /** choreographies this peer can run (needed before restored sessions resume) */
    protocols: z.array(z.custom<Choreography>((v) => isObject(v) && Array.isArray((v as Choreography).steps))).default([]),
    /** true: start a Stately inspector (WebSocket relay on port 8080); or a function receiving
     * every actor's inspection events (e.g. the `inspect` of one shared createInspector()) */
    inspect: z.union([z.literal(true), z.custom<(event: unknown) => void>((v) => typeof v === 'function')]).optional(),
    effects: z
      .object({
        network: z.custom<Network>(isObject).optional(),
        storage: z.custom<Storage>(isObject).optional(),
        clock: z.custom<Clock>(isObject).optional(),
        random: z.custom<Random>(isObject).optional(),
        crypto: z.custom<Crypto>(isObject).optional(),
      })
      .strict()
      .default({}),
  })
  .strict()

export type RuntimeConfigInput = z.input<typeof runtimeConfigSchema>
export type RuntimeConfig = z.output<typeof runtimeConfigSchema>

export function parseRuntimeConfig(input: unknown): RuntimeConfig {
  const parsed = runtimeConfigSchema.safeParse(input ?? {})
  if (!parsed.success) {
    throw new ConfigInvalid(`invalid runtime config: ${parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`, {
      issues: parsed.error.issues,
    })
  }
  return parsed.data
}
