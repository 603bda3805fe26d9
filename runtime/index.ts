// Public API of aura-orchestration: what a service embedding the runtime uses. Simulation and
// property-testing live in 'aura-orchestration/testing'; the dashboard, the inspector and the
// statecharts for the visualizer in 'aura-orchestration/dev'.

import '../effects/network/polyfill.js'

// the runtime and its configuration
export { createRuntime, type Runtime, type DefaultServices } from './core/runtime.js'
// one factory per pattern's service: `createRuntime({ services: { notes: crdt(), sync: antiEntropy({...}) } })`
export type { Components, Service, ServiceFactory } from './core/components.js'
export { sessions } from './sessions/service.js'
export { timeouts } from './timeouts/service.js'
export { transport } from './transport/service.js'
export { storage, replication } from './storage/service.js'
export { crdt } from './crdt/service.js'
export { antiEntropy } from './anti-entropy/service.js'
export { parseRuntimeConfig, type RuntimeConfig, type RuntimeConfigInput } from './core/config.js'
export type { RuntimeEvent } from './core/events.js'
export type { MetricsSnapshot, LatencySummary } from './core/metrics.js'

// sessions (pattern 4) and timeouts (pattern 6)
export { defineChoreography, type Choreography, type ChoreographyDefinition, type ChoreographyStep, type StepContext } from './sessions/choreography.js'
export { thresholdCeremony, groupKeyOf } from './sessions/protocols/threshold-ceremony.js'
export type { SessionManager, Session, SessionResult, SessionView, SessionParticipant, CreateSessionConfig, Invitation } from './sessions/session-manager.js'
export type {
  TimeoutCoordinator,
  TimeoutPolicy,
  CoordinatedResult,
  Operation,
  NamedOperation,
  OperationContext,
  RemoteHandler,
} from './timeouts/timeout-coordinator.js'
export { currentDeadline, currentSignal, type TimeoutScope } from './timeouts/timeout-context.js'
export { withRetry, type RetryPolicy } from './timeouts/with-retry.js'

// transport (pattern 5)
export type { TransportCoordinator, Channel, ChannelConfig, ChannelMessage, ChannelSendOptions, ContextManager } from './transport/transport-coordinator.js'

// storage and replication (pattern 3)
export type { StorageCoordinator, StorageCoordinatorOptions, StoreReceipt } from './storage/storage-coordinator.js'
export type { ReplicationCoordinator, ReconcileOptions, ReconcileOnOptions, ReconcileResult } from './storage/replication-coordinator.js'
export * as capabilities from './core/capability.js'

// CRDT coordination (pattern 1) and anti-entropy (pattern 2)
export { CrdtCoordinator, type CrdtMetrics, type SyncResult, type SyncStatus, type SyncStatusReport } from './crdt/crdt-coordinator.js'
export { AntiEntropy, type RoundSummary, type AntiEntropyConfigInput, type AntiEntropyProgress } from './anti-entropy/anti-entropy.js'
export * as semilattice from './crdt/lattices/index.js'

// effects a service may inject (interfaces, and the real handlers createRuntime uses by default)
export { Libp2pNetwork, type Network } from '../effects/network/index.js'
export { LmdbStorage, type Storage, type StorageKey } from '../effects/storage/index.js'
export { SystemClock, type Clock } from '../effects/time/index.js'
export { CryptoRandom, type Random } from '../effects/random/index.js'
export { Ed25519Crypto, type Crypto } from '../effects/crypto/index.js'

// typed errors: every class is also a type (`if (e instanceof DeadlineExceeded)`)
export {
  AuraError,
  ERROR_CODES,
  errorOf,
  isAuraError,
  isRetryable,
  type AuraErrorCode,
  InvalidInput,
  ConfigInvalid,
  PermissionDenied,
  NotFound,
  FrameTooLarge,
  MalformedFrame,
  UnknownSession,
  UnknownRole,
  UnknownProtocol,
  InvalidTransition,
  LimitExceeded,
  DeadlineExceeded,
  AttemptBudgetExhausted,
  Cancelled,
  NetworkError,
  PeerUnreachable,
  BudgetExhausted,
  EpochRegression,
  ChannelClosed,
  StorageError,
  Conflict,
  DecodeError,
  ClockDrift,
} from '../effects/errors.js'
