// Delta-state handler: local changes are kept as deltas (small states) in a buffer numbered by
// a local sequence, so a peer that acknowledged seq n gets only the join of later deltas.
// When the buffer holds `threshold` groups they are joined into one group (compaction): the
// buffer stays bounded and the joined delta still covers every change it replaced.

import { InvalidInput } from '../../../effects/errors.js'
import type { CvType, DeltaGroup, DeltaHandler } from './kinds.js'
import { ownedState } from './owned-state.js'
import type { VectorClock } from './vector-clock.js'

export interface DeltaHandlerOptions<S> {
  /** Number of buffered groups that triggers compaction (≥ 1). */
  readonly threshold: number
  readonly initial?: S
}

export function createDeltaHandler<S>(type: CvType<S>, options: DeltaHandlerOptions<S>): DeltaHandler<S> {
  const { threshold } = options
  if (!Number.isSafeInteger(threshold) || threshold < 1) throw new InvalidInput('delta threshold must be a positive integer', { threshold })
  const owned = ownedState(type, options.initial ?? type.bottom())
  let groups: DeltaGroup<S>[] = []
  let lastSeq = 0

  // The compacted group's delta, when the handler owns it and may extend it in place: the
  // buffer then costs O(new deltas) per compaction rather than O(everything buffered).
  let ownedDelta: S | undefined

  const compact = (): void => {
    if (groups.length <= 1) return
    const first = groups[0]!
    let delta: S
    if (type.own !== undefined && type.absorb !== undefined) {
      delta = first.delta === ownedDelta ? first.delta : type.own(first.delta)
      for (let i = 1; i < groups.length; i++) delta = type.absorb(delta, groups[i]!.delta)
      ownedDelta = delta
    } else {
      delta = groups.reduce((acc, g) => type.join(acc, g.delta), type.bottom())
    }
    groups = [{ from: first.from, to: groups[groups.length - 1]!.to, delta }]
  }

  // Never hand out the owned delta itself: a later compaction would change it.
  const exported = (g: DeltaGroup<S>): DeltaGroup<S> => (g.delta === ownedDelta ? { ...g, delta: type.join(type.bottom(), g.delta) } : g)

  return {
    type,
    threshold,
    state: owned.get,
    version: () => type.version(owned.peek()),
    seq: () => lastSeq,
    mutate(mutator) {
      const delta = mutator(owned.peek())
      owned.join(delta)
      lastSeq += 1
      groups.push({ from: lastSeq, to: lastSeq, delta })
      if (groups.length >= threshold) compact()
      return delta
    },
    receive: (delta) => owned.join(delta),
    collect: (stable) => owned.collect(stable),
    buffered: () => groups.map(exported),
    deltaSince(after) {
      // A group that straddles `after` is sent whole: re-sending joined changes is harmless.
      const wanted = groups.filter((g) => g.to > after)
      if (wanted.length === 0) return null
      return wanted.reduce((acc, g) => type.join(acc, g.delta), type.bottom())
    },
    compact,
    acknowledge(upTo) {
      groups = groups.filter((g) => g.to > upTo)
    },
    missing: (since: VectorClock) => type.missingFor(owned.peek(), since),
  }
}
