// The network effect: its interface (network.ts) and the handlers that implement it. Re-exports only.

export * from './network.js'
export { Libp2pNetwork, type Libp2pNetworkOptions } from './libp2p.js'
export { SimulatedNetwork, SimulatedNetworkHub, type FaultConfig, type NetTraceEvent, type SimulatedNetworkHubOptions } from './simulated.js'
