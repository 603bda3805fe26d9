// Yjs documents as a state-based CRDT kind. A state is a Yjs update (v1 encoding); its
// version is the document's state vector (client id → structs seen) read as a vector clock
// with decimal client ids as replica ids. Everything here is Yjs's own update algebra:
// join = mergeUpdates, missingFor = diffUpdate against the peer's state vector (exactly
// y-protocols' sync step 2: the missing structs plus the delete set, which Yjs does not
// version and so always sends).
//
// `YjsDocHandler` is the live form: it wraps a Y.Doc that the application edits, and every
// update it accepts is decoded in full first, so a malformed one is a DecodeError and the
// document is left untouched.

import * as Y from 'yjs'
import { DecodeError, InvalidInput } from '../../../effects/errors.js'
import type { CvHandler, CvType } from './kinds.js'
import { VectorClock } from './vector-clock.js'
import { bytesSchema, parseWire } from './lattice-wire.js'

const CLIENT_ID = /^(0|[1-9]\d{0,15})$/

export function stateVectorToClock(sv: Map<number, number>): VectorClock {
  return VectorClock.of([...sv].map(([client, clock]) => [String(client), clock] as const))
}

export function clockToStateVector(clock: VectorClock): Map<number, number> {
  const sv = new Map<number, number>()
  for (const [replica, n] of clock.entries()) {
    if (!CLIENT_ID.test(replica) || !Number.isSafeInteger(Number(replica))) {
      throw new InvalidInput('yjs version entries must be keyed by numeric client ids', { replica })
    }
    sv.set(Number(replica), n)
  }
  return sv
}

/** Full parse of an update; throws DecodeError if any part of it is malformed. */
export function checkYjsUpdate(update: Uint8Array): void {
  try {
    Y.decodeUpdate(update)
  } catch (cause) {
    throw new DecodeError('yjs update failed to decode', { bytes: update.byteLength }, { cause })
  }
}

const emptyUpdate = Y.encodeStateAsUpdate(new Y.Doc())

function docOf(update: Uint8Array): Y.Doc {
  const doc = new Y.Doc()
  Y.applyUpdate(doc, update)
  return doc
}

export const yjsDoc = {
  name: 'yjs',
  bottom: () => emptyUpdate,
  join: (a, b) => Y.mergeUpdates([a, b]),
  equals(a, b) {
    const x = docOf(a)
    const y = docOf(b)
    try {
      return Y.equalSnapshots(Y.snapshot(x), Y.snapshot(y))
    } finally {
      x.destroy()
      y.destroy()
    }
  },
  version: (s) => stateVectorToClock(Y.decodeStateVector(Y.encodeStateVectorFromUpdate(s))),
  missingFor: (s, remote) => Y.diffUpdate(s, Y.encodeStateVector(clockToStateVector(remote))),
  isBottom(s) {
    const { structs, ds } = Y.decodeUpdate(s)
    return structs.length === 0 && ds.clients.size === 0
  },
  encode: (s) => s,
  decode(wire) {
    // the schema's own test, without building a parse result for every update
    const bytes = wire instanceof Uint8Array ? wire : parseWire(bytesSchema, wire, 'yjs update')
    checkYjsUpdate(bytes)
    return bytes
  },
} satisfies CvType<Uint8Array>

/** Origin passed to Y.applyUpdate, so observers can tell synced changes from local edits. */
export const SYNC_ORIGIN = Symbol('aura-sync')

export class YjsDocHandler implements CvHandler<Uint8Array> {
  readonly type = yjsDoc
  /** Set by the update a join emits (Yjs emits one only when something was new). */
  private joined = false
  /** One listener for every join, not a closure per join. */
  private readonly onJoined = (): void => {
    this.joined = true
  }

  constructor(readonly doc: Y.Doc = new Y.Doc()) {}

  state(): Uint8Array {
    return Y.encodeStateAsUpdate(this.doc)
  }

  /** The state vector read off the struct store (what Y.encodeStateVector writes), with no encode and decode. */
  version(): VectorClock {
    const entries: Array<[string, number]> = []
    for (const [client, structs] of this.doc.store.clients) {
      const last = structs[structs.length - 1]
      if (last !== undefined) entries.push([String(client), last.id.clock + last.length])
    }
    return VectorClock.of(entries)
  }

  missing(since: VectorClock): Uint8Array {
    return Y.encodeStateAsUpdate(this.doc, Y.encodeStateVector(clockToStateVector(since)))
  }

  /** Run a local edit; returns the update it produced (the delta to send). */
  edit(change: (doc: Y.Doc) => void): Uint8Array {
    const updates: Uint8Array[] = []
    const onUpdate = (u: Uint8Array) => updates.push(u)
    this.doc.on('update', onUpdate)
    try {
      this.doc.transact(() => change(this.doc))
    } finally {
      this.doc.off('update', onUpdate)
    }
    return updates.length === 0 ? emptyUpdate : Y.mergeUpdates(updates)
  }

  mutate(mutator: (s: Uint8Array) => Uint8Array): Uint8Array {
    const delta = mutator(this.state())
    this.join(delta)
    return delta
  }

  /** Apply a remote update; DecodeError (document untouched) if it is malformed. */
  join(update: Uint8Array): boolean {
    checkYjsUpdate(update)
    return this.joinChecked(update)
  }

  /**
   * join() for an update that already passed checkYjsUpdate (yjsDoc.decode runs it on every
   * update from the wire): decoding it a second time cost as much as applying it.
   */
  joinChecked(update: Uint8Array): boolean {
    this.joined = false
    this.doc.on('update', this.onJoined)
    try {
      Y.applyUpdate(this.doc, update, SYNC_ORIGIN)
    } catch (cause) {
      throw new DecodeError('yjs update failed to apply', { bytes: update.byteLength }, { cause })
    } finally {
      this.doc.off('update', this.onJoined)
    }
    return this.joined
  }
}
