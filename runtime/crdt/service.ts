// The CRDT service (pattern 1): one collection of documents (state-, op- and delta-based, Yjs)
// in a storage namespace, synced with peers on the 'crdt' family behind the collection gate.
// It depends on a storage service ('storage' unless init names another) for capability checks
// and for the capability it issues itself.

import { z } from 'zod'
import { capabilityTokenSchema, type CapabilityToken } from '../core/capability.js'
import type { ServiceFactory } from '../core/components.js'
import { parseInit } from '../core/service-init.js'
import type { StorageCoordinator } from '../storage/storage-coordinator.js'
import { CrdtCoordinator } from './crdt-coordinator.js'

const crdtInitSchema = z
  .object({
    /** storage namespace of the collection, and the name peers address it by */
    namespace: z.string().min(1).max(64).default('crdt.default'),
    /** capabilities this peer presents to others for the collection */
    capabilities: z.array(capabilityTokenSchema).default([]),
    /** reply timeout for sync requests */
    requestTimeoutMs: z.number().int().positive().max(600_000).default(5_000),
    /** create documents a peer sends that we do not have (the collection replicates) */
    acceptNewDocuments: z.boolean().default(true),
    /** delta documents compact their buffers at this many groups */
    deltaThreshold: z.number().int().positive().default(64),
    /** count sync bytes and latency for metrics() */
    metrics: z.boolean().default(false),
    /** the storage service that authorizes peers and issues this peer's capability */
    storage: z.string().min(1).default('storage'),
  })
  .strict()
export type CrdtInit = z.input<typeof crdtInitSchema>

/**
 * The CRDT service: add documents on its API, sync with `syncWithPeer` or an antiEntropy service.
 * @example
 * const runtime = await createRuntime({ services: { notes: crdt({ namespace: 'notes' }) } })
 * const notes = runtime.services.notes
 * notes.withCvHandler(semilattice.createCvHandler(semilattice.gCounter), 'visits')
 */
export function crdt(init: CrdtInit = {}): ServiceFactory<CrdtCoordinator> {
  const { storage, namespace, capabilities, requestTimeoutMs, acceptNewDocuments, deltaThreshold, metrics } = parseInit(crdtInitSchema, init, 'crdt')
  return {
    kind: 'crdt',
    dependsOn: [storage],
    create: (components, deps) =>
      new CrdtCoordinator(components.peerId, { requestTimeoutMs, acceptNewDocuments })
        .withDeltaThreshold(deltaThreshold)
        .withMetricsEnabled(metrics)
        .serviceOn(components, deps[storage] as StorageCoordinator, { namespace, capabilities: capabilities as CapabilityToken[] }),
  }
}
