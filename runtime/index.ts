// Public API of aura-orchestration: what a service embedding the runtime uses. Simulation and
// property-testing live in 'aura-orchestration/testing'; the dashboard, the inspector and the
// statecharts for the visualizer in 'aura-orchestration/dev'.

import './polyfill.js'

// the runtime and its configuration
export { createRuntime, type Runtime } from './runtime.js'
export { parseRuntimeConfig, type RuntimeConfig, type RuntimeConfigInput } from './config.js'
export type { RuntimeEvent } from './events.js'
export type { MetricsSnapshot, LatencySummary } from './metrics.js'

// sessions (pattern 4) and timeouts (pattern 6)
export { defineChoreography, type Choreography, type ChoreographyDefinition, type ChoreographyStep, type StepContext } from './choreography.js'
export { thresholdCeremony, groupKeyOf } from './protocols/threshold-ceremony.js'
export type { SessionManager, Session, SessionResult, SessionView, SessionParticipant, CreateSessionConfig, Invitation } from './sessions.js'
export type { TimeoutCoordinator, TimeoutPolicy, CoordinatedResult, Operation, NamedOperation, OperationContext, RemoteHandler } from './timeouts.js'
export { currentDeadline, currentSignal, type TimeoutScope } from './timeout-context.js'
export { withRetry, type RetryPolicy } from './retry.js'

// transport (pattern 5)
export type { TransportCoordinator, Channel, ChannelConfig, ChannelMessage, ChannelSendOptions, ContextManager } from './transport.js'

// storage and replication (pattern 3)
export type { StorageCoordinator, StorageCoordinatorOptions, StoreReceipt } from './storage.js'
export type { ReplicationCoordinator, ReconcileOptions, ReconcileOnOptions, ReconcileResult } from './replication.js'
export * as capabilities from '../effects/crypto/capability.js'

// CRDT coordination (pattern 1) and anti-entropy (pattern 2)
export { CrdtCoordinator, type CrdtMetrics, type SyncResult, type SyncStatus, type SyncStatusReport } from './crdt.js'
export { AntiEntropy, type RoundSummary, type AntiEntropyConfigInput, type AntiEntropyProgress } from './anti-entropy.js'
export * as semilattice from '../effects/semilattice/index.js'

// effects a service may inject (interfaces, and the real handlers createRuntime uses by default)
export { Libp2pNetwork, type Network } from '../effects/network/index.js'
export { LmdbStorage, type Storage, type StorageKey } from '../effects/storage/index.js'
export { SystemClock, type Clock } from '../effects/time/index.js'
export { CryptoRandom, type Random } from '../effects/random/index.js'
export { Ed25519Crypto, type Crypto } from '../effects/crypto/index.js'

// typed errors: every class is also a type (`if (e instanceof DeadlineExceeded)`)
export * from '../effects/errors.js'
