// Runtime configuration, validated with zod at the boundary. Effects can be injected (simulation
// and tests); anything not injected gets the real handler: libp2p TCP on 127.0.0.1, LMDB in a
// data folder, the system clock, crypto randomness, and an ed25519 identity kept in storage.

import { z } from 'zod'
import type { Network } from '../../effects/network/index.js'
import type { Storage } from '../../effects/storage/index.js'
import type { Clock } from '../../effects/time/index.js'
import type { Random } from '../../effects/random/index.js'
import type { Crypto } from '../../effects/crypto/index.js'
import { choreographySchema, sessionsOptionsSchema } from '../sessions/service.js'
import { storageInitSchema } from '../storage/service.js'
import { isServiceFactory, type ServiceFactory } from './components.js'
import { SERVICE_NAME } from './services.js'
import { parseConfig } from './service-init.js'

const isObject = (v: unknown) => typeof v === 'object' && v !== null

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
    maxFrameBytes: z
      .number()
      .int()
      .min(1024)
      .max(64 * 1024 * 1024)
      .default(1024 * 1024),
    /** send pipelined frames in fewer, larger writes, for a loop turn of latency (Libp2pNetwork's coalesceWrites) */
    coalesceWrites: z.boolean().default(false),
    limits: z
      .object({
        maxParticipants: z.number().int().min(2).max(1024).default(32),
        maxConcurrentSessions: z.number().int().min(1).max(1_000_000).default(1000),
        maxMessageBytes: z
          .number()
          .int()
          .min(64)
          .max(64 * 1024 * 1024)
          .default(256 * 1024),
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
    /** options of the default sessions service (or give `services.sessions` instead) */
    sessions: sessionsOptionsSchema.prefault({}),
    /** options of the default storage service (or give `services.storage` instead) */
    storage: storageInitSchema.prefault({}),
    /** scales every timeout: production 1, tests and simulation lower */
    timeoutProfile: z
      .object({ name: z.string().min(1), factor: z.number().positive().max(100) })
      .strict()
      .default({ name: 'production', factor: 1 }),
    /** choreographies this peer can run (needed before restored sessions resume) */
    protocols: z.array(choreographySchema).default([]),
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
    /** services to run besides (or instead of) the defaults, by name: `{ notes: crdt({ namespace: 'notes' }) }`.
     * A default (sessions, timeouts, transport, storage, replication) is replaced by a service of its kind */
    services: z
      .record(
        z.string().regex(SERVICE_NAME, 'a service name: a letter, then letters, digits, _ . : -'),
        z.custom<ServiceFactory>(isServiceFactory, 'expected a service factory (crdt(), sessions(), ...)'),
      )
      .default({}),
  })
  .strict()

export type RuntimeConfigInput = z.input<typeof runtimeConfigSchema>
export type RuntimeConfig = z.output<typeof runtimeConfigSchema>

/**
 * @example
 * const config = parseRuntimeConfig({ transport: 'memory', limits: { maxParticipants: 8 } })
 * config.limits.maxConcurrentSessions // 1000, the default
 * parseRuntimeConfig({ limits: { maxParticipants: 1 } }) // throws ConfigInvalid naming limits.maxParticipants
 */
export function parseRuntimeConfig(input: unknown): RuntimeConfig {
  return parseConfig(runtimeConfigSchema, input, 'runtime config')
}
