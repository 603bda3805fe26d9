// The clock effect: its interface (clock.ts) and the handlers that implement it. Re-exports only.

export * from './clock.js'
export { SystemClock } from './system.js'
export { VirtualClock } from './virtual.js'
export { OffsetClock } from './offset.js'
export { CrashableClock } from './crashable.js'
