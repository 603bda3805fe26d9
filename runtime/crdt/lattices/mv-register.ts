// Multi-value register: a write replaces every value its writer had seen; writes nobody saw
// together survive side by side, and a reader sees all of them (sorted by canonical JSON so
// every replica lists them alike). The next write that has seen them resolves the conflict.
// State is small (one entry per concurrent write), so no tombstones: a peer that has not seen
// every dot gets the whole state.

import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
import type { CvType } from './kinds.js'
import { dotStore, dotStoreLattice, type DotStoreState } from './dot-store.js'
import { canonicalJson, jsonValueSchema, parseWire, type JsonValue } from './lattice-wire.js'

export type MVRegisterState = DotStoreState<JsonValue>

const KEY = ''

const store = dotStore<JsonValue>({
  tombstones: false,
  payload: {
    equals: (a, b) => canonicalJson(a) === canonicalJson(b),
    encode: (p) => p,
    decode: (w) => parseWire(jsonValueSchema as z.ZodType<JsonValue>, w, 'mv-register value'),
  },
})

export const mvRegister = {
  name: 'mv-register',
  ...dotStoreLattice(store),
  encode: store.encode,
  decode(wire) {
    const s = store.decode(wire, 'mv-register')
    if (store.keys(s).some((k) => k !== KEY)) throw new InvalidInput('mv-register holds a single value slot')
    return s
  },

  /** Delta-mutator: write `value`, replacing every value this replica has seen. */
  set: (s: MVRegisterState, replica: string, value: JsonValue): MVRegisterState => store.put(s, replica, KEY, value, true),

  /** The concurrent values, in canonical order (empty before the first write). */
  values(s: MVRegisterState): JsonValue[] {
    return store
      .payloads(s, KEY)
      .map((v) => [canonicalJson(v), v] as const)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([, v]) => v)
  },
} satisfies CvType<MVRegisterState> & Record<string, unknown>
