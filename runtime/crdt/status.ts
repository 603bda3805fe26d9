// "Am I in sync with that peer?" What we last learnt of a peer's versions (from its requests,
// its answers and its acknowledgements of our pushes), compared with our versions now. The
// report says which versions were compared and when we learnt the peer's, so a caller can
// tell a fresh "in-sync" from a stale one.

import { VectorClock, type VectorClockWire } from './lattices/index.js'

export type SyncStatus = 'in-sync' | 'behind' | 'ahead' | 'diverged' | 'unknown'

export interface DocumentView {
  version: VectorClock
  mark: string
}

export interface DocumentStatus {
  status: Exclude<SyncStatus, 'unknown'>
  local: VectorClockWire
  remote: VectorClockWire
}

export interface SyncStatusReport {
  peerId: string
  status: SyncStatus
  /** when the comparison was made (our clock) */
  comparedAt: number
  /** when we last learnt the peer's versions; undefined if never */
  knownAt: number | undefined
  docs: Record<string, DocumentStatus>
}

export class PeerViews {
  private readonly views = new Map<string, { docs: Map<string, DocumentView>; at: number }>()

  /** Records what `peerId` holds (a later report of a document replaces an earlier one). */
  learn(peerId: string, docs: Iterable<[string, DocumentView]>, at: number): void {
    let view = this.views.get(peerId)
    if (view === undefined) this.views.set(peerId, (view = { docs: new Map(), at }))
    for (const [name, doc] of docs) view.docs.set(name, doc)
    view.at = at
  }

  get(peerId: string, name: string): DocumentView | undefined {
    return this.views.get(peerId)?.docs.get(name)
  }

  /** Every peer we hold a view of. */
  peers(): string[] {
    return [...this.views.keys()]
  }

  forget(peerId: string): void {
    this.views.delete(peerId)
  }

  report(peerId: string, local: ReadonlyMap<string, DocumentView>, now: number): SyncStatusReport {
    const view = this.views.get(peerId)
    if (view === undefined) return { peerId, status: 'unknown', comparedAt: now, knownAt: undefined, docs: {} }
    const docs: Record<string, DocumentStatus> = {}
    let behind = false
    let ahead = false
    for (const name of new Set([...local.keys(), ...view.docs.keys()])) {
      const mine = local.get(name) ?? { version: VectorClock.empty, mark: '' }
      const theirs = view.docs.get(name) ?? { version: VectorClock.empty, mark: '' }
      let status: DocumentStatus['status']
      switch (mine.version.compare(theirs.version)) {
        case 'equal':
          status = mine.mark === theirs.mark ? 'in-sync' : 'diverged'
          break
        case 'before':
          status = 'behind'
          break
        case 'after':
          status = 'ahead'
          break
        default:
          status = 'diverged'
      }
      if (status === 'behind' || status === 'diverged') behind = true
      if (status === 'ahead' || status === 'diverged') ahead = true
      docs[name] = { status, local: mine.version.encode(), remote: theirs.version.encode() }
    }
    const status: SyncStatus = behind && ahead ? 'diverged' : behind ? 'behind' : ahead ? 'ahead' : 'in-sync'
    return { peerId, status, comparedAt: now, knownAt: view.at, docs }
  }
}
