// The storage services (pattern 3): `storage(init)` is the capability-checked namespaced store on
// the storage effect, serving the 'storage' family; `replication(init)` replicates its records
// to peers under all / quorum / async policies and serves the 'replication' family. Replication
// depends on a storage service ('storage' unless init says otherwise).

import { z } from 'zod'
import type { ServiceFactory } from '../core/components.js'
import { parseInit } from '../core/service-init.js'
import { ReplicationCoordinator, replicationCoordinatorOptionsSchema } from './replication-coordinator.js'
import { StorageCoordinator, storageCoordinatorOptionsSchema } from './storage-coordinator.js'

/** What createRuntime's `storage` section and `storage(init)` accept: every option but the effects. */
export const storageInitSchema = storageCoordinatorOptionsSchema.omit({ crypto: true, clock: true, emit: true, inspect: true })
export type StorageInit = z.input<typeof storageInitSchema>

const replicationInitSchema = replicationCoordinatorOptionsSchema
  .omit({ storage: true, router: true, clock: true, random: true, emit: true, inspect: true })
  .extend({
    /** the storage service whose records are replicated */
    storage: z.string().min(1).default('storage'),
  })
export type ReplicationInit = z.input<typeof replicationInitSchema>

/**
 * The storage service: namespaces with conflict resolvers, capabilities, remote access.
 * @example
 * const runtime = await createRuntime({ storage: { trustedRoots: [admin], namespaces: { docs: { kind: 'lww' } } } })
 * await runtime.storage.storeInNamespace('docs', 'readme', { text: 'hi' }, capability)
 */
export function storage(init: StorageInit = {}): ServiceFactory<StorageCoordinator> {
  const options = parseInit(storageInitSchema, init, 'storage')
  return {
    kind: 'storage',
    create: (c) => {
      const store = new StorageCoordinator(c.peerId, c.storage, {
        ...options,
        crypto: c.crypto,
        clock: c.clock,
        emit: (event) => c.bus.emit(event),
        ...(c.inspect ? { inspect: c.inspect } : {}),
      })
      return { api: store, start: () => store.attach({ router: c.router }) }
    },
  }
}

/**
 * The replication service over a storage service.
 * @example
 * const runtime = await createRuntime({ services: { replication: replication({ window: 4, defaultTimeoutMs: 5_000 }) } })
 * await runtime.replication.replicateToPeers('docs', 'readme', peers, { kind: 'quorum', k: 2 }, { capability })
 */
export function replication(init: ReplicationInit = {}): ServiceFactory<ReplicationCoordinator> {
  const { storage: storageService, ...options } = parseInit(replicationInitSchema, init, 'replication')
  return {
    kind: 'replication',
    dependsOn: [storageService],
    create: (c, deps) => {
      const coordinator = new ReplicationCoordinator({
        ...options,
        storage: deps[storageService] as StorageCoordinator,
        router: c.router,
        clock: c.clock,
        random: c.random,
        emit: (event) => c.bus.emit(event),
        ...(c.inspect ? { inspect: c.inspect } : {}),
      })
      return { api: coordinator, start: () => coordinator.attach() }
    },
  }
}
