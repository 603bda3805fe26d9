// 'aura-orchestration/testing': run the production runtime on simulated effects and check what
// it did. Simulation (seeded network faults, virtual clock), the in-memory effects, trace
// checkers, and checkProtocol for property-testing your own choreographies.

import '../../effects/network/polyfill.js'

export { Simulation, type SimulationOptions, type TraceEvent } from './simulation.js'
export { checkProtocol, faultSchedule, type CheckProtocolOptions, type FaultSchedule, type ProtocolInvariant, type ProtocolRun } from './check-protocol.js'
export { finalEntries, lifecycleViolations, topLevelTransitions } from './trace-check.js'
export { SimulatedNetworkHub, type FaultConfig } from '../../effects/network/index.js'
export { MemoryStorage } from '../../effects/storage/index.js'
export { VirtualClock, OffsetClock } from '../../effects/time/index.js'
export { SeededRandom } from '../../effects/random/index.js'
export { sessionMachine } from '../../machines/session.js'
// the router and effects behind a runtime, for wire-level tests
export { componentsOf, type Components } from '../core/components.js'
