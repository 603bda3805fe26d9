// The replication coordinator's durable record of what each peer still has to receive.
//
//   aura.replication.repair   [peer, namespace, JSON(key)] → 1
//
// An entry is written for every (target peer, key) BEFORE a replication sends anything, and
// removed when that peer acknowledges. So whatever a peer has not acknowledged — the replication
// failed, timed out, was cut short by a failed quorum, or the origin died before it settled — is
// on disk, and repair() delivers it later (after a restart too).
//
// Two replications may cover the same (peer, key) at once; one's ack must not erase the entry the
// other still needs if it fails. Each entry therefore counts the replications in flight over it
// (in memory: after a restart nothing is in flight) and is removed only by an ack that leaves none.
// The Storage effect commits writes in the order they are issued, so a removal issued before an
// intent is re-written can never land after it.

import type { Storage, StorageKey } from '../../effects/storage/index.js'

const REPAIR = 'aura.replication.repair'

export interface RepairEntry {
  peer: string
  namespace: string
  key: StorageKey
}

/** One replication's claim on the entries it wrote; settle each peer exactly once. */
export interface RepairIntent {
  /** `peer` acknowledged every key: removes the entries no other replication still covers. */
  acked(peer: string): Promise<void>
  /** `peer` did not acknowledge: its entries stay for repair(). */
  missed(peer: string): void
}

export class RepairIntents {
  readonly #storage: Storage
  readonly #inFlight = new Map<string, number>()

  constructor(storage: Storage) {
    this.#storage = storage
  }

  /** Persists an entry per (peer, key); resolves once they are durable, before anything is sent. */
  async record(namespace: string, keys: readonly StorageKey[], peers: readonly string[]): Promise<RepairIntent> {
    const entryKeys = (peer: string) => keys.map((key) => entryKey(peer, namespace, key))
    const settled = new Set<string>()
    // Claimed before the write is awaited, so a concurrent ack cannot remove what this one needs.
    for (const peer of peers) for (const k of entryKeys(peer)) this.#claim(k, 1)
    const release = (peer: string): Array<string[]> => {
      if (settled.has(peer) || !peers.includes(peer)) return []
      settled.add(peer)
      return entryKeys(peer).filter((k) => this.#claim(k, -1) === 0)
    }
    try {
      await this.#storage.batch(peers.flatMap((peer) => entryKeys(peer).map((key) => ({ type: 'put' as const, namespace: REPAIR, key, value: 1 }))))
    } catch (error) {
      for (const peer of peers) release(peer)
      throw error
    }
    return {
      acked: async (peer) => {
        const free = release(peer)
        if (free.length > 0) await this.#storage.batch(free.map((key) => ({ type: 'delete' as const, namespace: REPAIR, key })))
      },
      missed: (peer) => void release(peer),
    }
  }

  /** Every entry on disk: what peers have not acknowledged yet. */
  pending(): RepairEntry[] {
    const out: RepairEntry[] = []
    for (const { key } of this.#storage.namespace(REPAIR).range()) {
      const [peer, namespace, encoded] = key as [string, string, string]
      out.push({ peer, namespace, key: JSON.parse(encoded) as StorageKey })
    }
    return out
  }

  /** Entries no replication is working on now: what repair() should take up. */
  idle(): RepairEntry[] {
    return this.pending().filter((e) => !this.#inFlight.has(idOf(entryKey(e.peer, e.namespace, e.key))))
  }

  /** Adjusts the in-flight count of an entry; returns what is left. */
  #claim(key: string[], delta: number): number {
    const id = idOf(key)
    const left = (this.#inFlight.get(id) ?? 0) + delta
    if (left <= 0) this.#inFlight.delete(id)
    else this.#inFlight.set(id, left)
    return left
  }
}

const entryKey = (peer: string, namespace: string, key: StorageKey): string[] => [peer, namespace, JSON.stringify(key)]
const idOf = (entry: readonly string[]): string => entry.join('\u0000')
