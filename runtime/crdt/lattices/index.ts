// Semilattice effect: CRDT kinds, shipped types, version vectors and digests. Pure data: no
// I/O, no clocks (timestamps are arguments), no randomness.

export type { JsonValue, WireValue } from './lattice-wire.js'
export { canonicalJson, parseWire, WIRE_LIMITS } from './lattice-wire.js'
export { VectorClock, vectorClockPairsSchema, vectorClockSchema, type ClockOrder, type VectorClockPairs, type VectorClockWire } from './vector-clock.js'
export { CausalContext, causalContextSchema, dotKey, dotSchema, type CausalContextWire, type Dot } from './causal-context.js'
export type {
  CausalOp,
  CmHandler,
  CmReceipt,
  CmSnapshot,
  CmType,
  CvHandler,
  CvType,
  DeltaGroup,
  DeltaHandler,
  MeetMessage,
  MeetType,
  MvHandler,
} from './kinds.js'
export { createCvHandler } from './cv-handler.js'
export { ownedState, type OwnedState } from './owned-state.js'
export { createDeltaHandler, type DeltaHandlerOptions } from './delta-handler.js'
export { createCmHandler, type CmHandlerOptions } from './cm-handler.js'
export { createMvHandler } from './mv-handler.js'
export { checkCausalOp, decodeCausalOp, encodeCausalOp, opIdOf } from './causal-op.js'
export { gCounter, type GCounterState } from './g-counter.js'
export { pnCounter, type PNCounterState } from './pn-counter.js'
export { compareEntries, lwwRegister, type HybridTimestamp, type LWWEntry, type LWWRegisterState } from './lww-register.js'
export { mvRegister, type MVRegisterState } from './mv-register.js'
export { orSet, type ORSetState } from './or-set.js'
export { orMapType, type ORMapState, type ORMapType } from './or-map.js'
export { dotStore, type DotPut, type DotStore, type DotStoreState, type Removal } from './dot-store.js'
export { checkYjsUpdate, clockToStateVector, stateVectorToClock, SYNC_ORIGIN, yjsDoc, YjsDocHandler } from './yjs-doc.js'
export { capabilitySet, type CapabilitySetState } from './capability-set.js'
export { opCounter, type CounterOp } from './op-counter.js'
export { opOrSet, type OpORSetState, type ORSetOp } from './op-or-set.js'
export {
  CV_TYPE_NAMES,
  TypeRegistry,
  builtinTypes,
  cmType,
  cvType,
  decodeTagged,
  encodeTagged,
  meetType,
  type AnyCvType,
  type TypeKind,
  type CvTypeName,
  type TaggedState,
} from './registry.js'
export { murmur3 } from './hash.js'
export { BLOOM_MAX_BYTES, BloomFilter, bloomParameters, type BloomSizing } from './bloom.js'
export {
  diffBuckets,
  MERKLE_HASH_BYTES,
  MERKLE_MAX_DEPTH,
  merkleDepthFor,
  MerkleTree,
  prefixOf,
  versionHash,
  type BucketDiff,
  type MerkleEntry,
} from './merkle.js'
export {
  compareChildren,
  decodeBucketEntries,
  decodeNodeList,
  encodeChildren,
  encodeNodeList,
  MERKLE_MAX_NODES,
  reconcile,
  type MerkleReconciliation,
} from './merkle-wire.js'
