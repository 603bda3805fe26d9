// One fixture per shipped state-based type: its mutations, over few replicas and few keys,
// values and timestamps so that ties (equal LWW timestamps from different replicas),
// add/remove races on the same element and concurrent map updates are common.

import fc from 'fast-check'
import * as Y from 'yjs'
import { gCounter, lwwRegister, mvRegister, orMapType, orSet, pnCounter, yjsDoc, type JsonValue } from '../../../../runtime/crdt/lattices/index.js'
import type { Fixture, Mutation } from './histories.js'

const replicas = ['a', 'b', 'c']
const small = fc.integer({ min: 1, max: 3 })
const value: fc.Arbitrary<JsonValue> = fc.constantFrom<JsonValue>(1, 2, 'x', null, { k: [1, 'y'] }, true)
const element = fc.constantFrom('x', 'y', 'z')

const gCounterFixture: Fixture<ReturnType<typeof gCounter.bottom>> = {
  type: gCounter,
  replicas,
  mutation: small.map((by) => (s, r) => gCounter.increment(s, r, by)),
}

const pnMutation = fc.tuple(fc.boolean(), small).map(
  ([up, by]): Mutation<ReturnType<typeof pnCounter.bottom>> =>
    (s, r) =>
      up ? pnCounter.increment(s, r, by) : pnCounter.decrement(s, r, by),
)

const pnCounterFixture: Fixture<ReturnType<typeof pnCounter.bottom>> = { type: pnCounter, replicas, mutation: pnMutation }

const lwwFixture: Fixture<ReturnType<typeof lwwRegister.bottom>> = {
  type: lwwRegister,
  replicas,
  // Wall times from {0..2}: most writes tie on wall time and many on (wall, logical).
  mutation: fc.tuple(value, fc.nat(2)).map(
    ([v, now]) =>
      (s, r) =>
        lwwRegister.set(s, r, v, now),
  ),
}

const mvFixture: Fixture<ReturnType<typeof mvRegister.bottom>> = {
  type: mvRegister,
  replicas,
  mutation: value.map((v) => (s, r) => mvRegister.set(s, r, v)),
}

const orSetFixture: Fixture<ReturnType<typeof orSet.bottom>> = {
  type: orSet,
  replicas,
  mutation: fc.tuple(fc.boolean(), element).map(
    ([add, e]) =>
      (s, r) =>
        add ? orSet.add(s, r, e) : orSet.remove(s, r, e),
  ),
}

const counterMap = orMapType(pnCounter)
const orMapFixture: Fixture<ReturnType<typeof counterMap.bottom>> = {
  type: counterMap,
  replicas,
  mutation: fc.tuple(fc.nat(3), element, pnMutation).map(
    ([op, key, m]) =>
      (s, r) =>
        op === 0 ? counterMap.remove(s, r, key) : counterMap.update(s, r, key, (v) => m(v, r)),
  ),
}

const setMap = orMapType(orSet)
const nestedMapFixture: Fixture<ReturnType<typeof setMap.bottom>> = {
  type: setMap,
  replicas,
  mutation: fc.tuple(fc.nat(4), element, element).map(
    ([op, key, e]) =>
      (s, r) =>
        op === 0 ? setMap.remove(s, r, key) : setMap.update(s, r, key, (v) => (op === 1 ? orSet.remove(v, r, e) : orSet.add(v, r, e))),
  ),
}

/** Runs a Yjs edit on a doc rebuilt from the state, as client `replica`; returns its update. */
export function yjsEdit(s: Uint8Array, replica: string, edit: (doc: Y.Doc) => void): Uint8Array {
  const doc = new Y.Doc()
  doc.clientID = Number(replica)
  Y.applyUpdate(doc, s)
  const updates: Uint8Array[] = []
  doc.on('update', (u: Uint8Array) => updates.push(u))
  doc.transact(() => edit(doc))
  doc.destroy()
  return updates.length === 0 ? yjsDoc.bottom() : Y.mergeUpdates(updates)
}

const yjsMutation = fc.tuple(fc.nat(2), fc.nat(5), fc.constantFrom('a', 'b')).map(
  ([op, pos, ch]): Mutation<Uint8Array> =>
    (s, r) =>
      yjsEdit(s, r, (doc) => {
        const text = doc.getText('t')
        if (op === 0) text.insert(pos % (text.length + 1), ch)
        else if (op === 1 && text.length > 0) text.delete(pos % text.length, 1)
        else doc.getMap('m').set(ch, pos)
      }),
)

const yjsFixture: Fixture<Uint8Array> = { type: yjsDoc, replicas: ['1', '2', '3'], mutation: yjsMutation }

export const fixtures: Fixture<any>[] = [gCounterFixture, pnCounterFixture, lwwFixture, mvFixture, orSetFixture, orMapFixture, nestedMapFixture, yjsFixture]
