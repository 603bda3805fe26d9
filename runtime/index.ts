// Public API of aura-orchestration.

import './polyfill.js'

export { createRuntime, type Runtime } from './runtime.js'
export { runtimeConfigSchema, parseRuntimeConfig, type RuntimeConfig, type RuntimeConfigInput } from './config.js'
export { defineChoreography, type Choreography, type ChoreographyDefinition, type ChoreographyStep, type StepContext } from './choreography.js'
export { thresholdCeremony, groupKeyOf } from './protocols/threshold-ceremony.js'
export { SessionManager, Session, type SessionResult, type SessionView, type SessionParticipant, type CreateSessionConfig, type Invitation } from './sessions.js'
export { TimeoutCoordinator, type TimeoutPolicy, type CoordinatedResult, type Operation, type NamedOperation, type OperationContext, type RemoteHandler } from './timeouts.js'
export { currentDeadline, currentSignal, enclosingDeadline, withEnclosingSignal, type TimeoutScope } from './timeout-context.js'
export {
  TransportCoordinator,
  type Channel,
  type ChannelConfig,
  type ChannelMessage,
  type ChannelSendOptions,
  type ContextManager,
  type TransportCoordinatorOptions,
} from './transport.js'
export { withRetry, DEFAULT_RETRY_POLICY, isTransient, type RetryOptions, type RetryPolicy } from './retry.js'
export { CrdtCoordinator, type CrdtMetrics, type SyncResult, type SyncStatus, type SyncStatusReport, type SyncRequest, type SyncResponse } from './crdt.js'
export { AntiEntropy, type RoundSummary, type AntiEntropyConfig, type AntiEntropyConfigInput, type AntiEntropyProgress } from './anti-entropy.js'
export { createInspector, type RuntimeInspector, type InspectorOptions } from './inspection.js'
export { startDashboard, type Dashboard, type DashboardOptions } from './dashboard.js'
export { StorageCoordinator, type StorageCoordinatorOptions } from './storage.js'
export { ReplicationCoordinator, type ReplicationCoordinatorOptions, type ReconcileOptions, type ReconcileOnOptions, type ReconcileResult } from './replication.js'
export { HybridLogicalClock } from './hybrid-clock.js'
export { Router, protocolFor, type PatternFamily, type InboundMessage, type OutboundMessage } from './router.js'
export { encodeEnvelope, decodeEnvelope, envelopeSchema, type Envelope } from './wire.js'
export { EventBus, type RuntimeEvent } from './events.js'
export { Metrics, type MetricsSnapshot, type LatencySummary } from './metrics.js'
export { Simulation, type SimulationOptions, type TraceEvent } from './simulation.js'

export * from '../effects/errors.js'
export * from '../effects/network/index.js'
export * from '../effects/storage/index.js'
export * from '../effects/time/index.js'
export * from '../effects/random/index.js'
export * from '../effects/crypto/index.js'
export { sessionMachine } from '../machines/session.js'
export { retryMachine, backoffDelay } from '../machines/retry.js'
export { transportMachine } from '../machines/transport.js'
export { crdtSyncMachine } from '../machines/crdt-sync.js'
export { createStorageOperationMachine, storageOperationMachine, type StorageSteps } from '../machines/storage.js'
export { replicationMachine } from '../machines/replication.js'
export { antiEntropyMachine, antiEntropyConfigSchema } from '../machines/anti-entropy.js'
export * as semilattice from '../effects/semilattice/index.js'
export * as capabilities from '../effects/crypto/capability.js'
export { timeoutMachine, coordinatedTimeoutMachine, childBudget, type Budget } from '../machines/timeout.js'
