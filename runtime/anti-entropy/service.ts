// The anti-entropy service (pattern 2): periodic digest rounds over one CRDT service's
// collection. It depends on that service ('crdt' unless init names another) and takes the
// anti-entropy machine's config (interval, peer selection, digest, retry) plus `periodic`.

import { z } from 'zod'
import { antiEntropyConfigSchema } from '../../machines/anti-entropy.js'
import type { ServiceFactory } from '../core/components.js'
import { parseInit } from '../core/service-init.js'
import type { CrdtCoordinator } from '../crdt/crdt-coordinator.js'
import { AntiEntropy } from './anti-entropy.js'

const antiEntropyInitSchema = antiEntropyConfigSchema.extend({
  /** the CRDT service whose collection this keeps in sync */
  crdt: z.string().min(1).default('crdt'),
  /** run rounds every syncInterval from the start (false: only runRound()) */
  periodic: z.boolean().default(true),
})
export type AntiEntropyInit = z.input<typeof antiEntropyInitSchema>

/**
 * The anti-entropy service over a CRDT service.
 * @example
 * const runtime = await createRuntime({
 *   services: { crdt: crdt({ namespace: 'notes' }), antiEntropy: antiEntropy({ syncInterval: 5_000, peerSelection: { kind: 'random', k: 2 } }) },
 * })
 * const summary = await runtime.services.antiEntropy.runRound()
 */
export function antiEntropy(init: AntiEntropyInit): ServiceFactory<AntiEntropy> {
  const { crdt, periodic, ...config } = parseInit(antiEntropyInitSchema, init, 'anti-entropy')
  return {
    kind: 'anti-entropy',
    dependsOn: [crdt],
    create: (components, deps) => new AntiEntropy(AntiEntropy.depsOf(components), deps[crdt] as CrdtCoordinator, config).service({ periodic }),
  }
}
