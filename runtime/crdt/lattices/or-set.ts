// Observed-remove set, add-wins: `remove(x)` removes only the adds of x its replica has seen,
// so an add concurrent with a remove survives, and a removed add never returns (its dot stays
// in the causal context). Removals are recorded as tombstones so `missingFor` can tell a peer
// about a removal of something it already has. Elements are strings (keys, ids, names).

import type { CvType } from './kinds.js'
import { dotStore, dotStoreLattice, type DotStoreState } from './dot-store.js'
import { InvalidInput } from '../../../effects/errors.js'

export type ORSetState = DotStoreState<null>

const store = dotStore<null>({
  tombstones: true,
  payload: {
    equals: () => true,
    encode: () => null,
    decode: (w) => {
      if (w !== null) throw new InvalidInput('or-set entries carry no payload', { got: typeof w })
      return null
    },
  },
})

export const orSet = {
  name: 'or-set',
  ...dotStoreLattice(store),
  encode: store.encode,
  decode: (wire) => store.decode(wire, 'or-set'),

  /** Delta-mutator: add `element` (a fresh dot, superseding the adds this replica has seen). */
  add: (s: ORSetState, replica: string, element: string): ORSetState => store.put(s, replica, element, null, true),

  /** Delta-mutator: remove the adds of `element` this replica has seen (bottom if absent). */
  remove: (s: ORSetState, replica: string, element: string): ORSetState => store.remove(s, replica, element),

  has: (s: ORSetState, element: string): boolean => s.live.has(element),

  /** Elements, sorted. */
  values: (s: ORSetState): string[] => store.keys(s).sort(),
} satisfies CvType<ORSetState> & Record<string, unknown>
