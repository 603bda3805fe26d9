// 'aura-orchestration/dev': seeing the machines while they run. The live dashboard, the Stately
// inspector relay, and every pattern's statechart (to open in the visualizer or export).

import '../effects/network/polyfill.js'

export { startDashboard, type Dashboard, type DashboardOptions } from './dashboard/dashboard.js'
export { createInspector, type RuntimeInspector, type InspectorOptions } from '../runtime/core/inspection.js'
export { sessionMachine } from '../machines/session.js'
export { retryMachine } from '../machines/retry.js'
export { transportMachine } from '../machines/transport.js'
export { crdtSyncMachine } from '../machines/crdt-sync.js'
export { storageOperationMachine } from '../machines/storage.js'
export { replicationMachine } from '../machines/replication.js'
export { antiEntropyMachine } from '../machines/anti-entropy.js'
export { timeoutMachine, coordinatedTimeoutMachine } from '../machines/timeout.js'
