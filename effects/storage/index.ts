// The storage effect: its interface (storage.ts) and the handlers that implement it. Re-exports only.

export * from './store.js'
export { LmdbStorage } from './lmdb.js'
export { MemoryStorage, compareKeys } from './memory.js'
export { CrashableStorage } from './crashable.js'
