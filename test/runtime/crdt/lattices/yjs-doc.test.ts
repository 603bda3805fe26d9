import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import * as Y from 'yjs'
import { VectorClock, yjsDoc, YjsDocHandler } from '../../../../runtime/crdt/lattices/index.js'

function replica(client: number): YjsDocHandler {
  const doc = new Y.Doc()
  doc.clientID = client
  return new YjsDocHandler(doc)
}

/** One sync round a → b: b advertises its version, a answers with what b lacks. */
function pull(into: YjsDocHandler, from: YjsDocHandler): number {
  const missing = from.missing(into.version())
  into.join(missing)
  return missing.byteLength
}

const edit = fc.tuple(fc.nat(2), fc.nat(20), fc.string({ maxLength: 3 }))

function apply(h: YjsDocHandler, [op, pos, s]: [number, number, string]): void {
  h.edit((doc) => {
    const t = doc.getText('t')
    if (op === 0 || t.length === 0) t.insert(pos % (t.length + 1), s || 'q')
    else if (op === 1) t.delete(pos % t.length, 1)
    else doc.getMap('m').set(s, pos)
  })
}

describe('Yjs document as a CRDT kind', () => {
  it('two docs with concurrent edits converge via missingFor/join', () => {
    fc.assert(
      fc.property(fc.array(edit, { maxLength: 8 }), fc.array(edit, { maxLength: 8 }), (ea, eb) => {
        const a = replica(1)
        const b = replica(2)
        for (const e of ea) apply(a, e)
        for (const e of eb) apply(b, e)
        pull(a, b)
        pull(b, a)
        expect(a.doc.getText('t').toString()).toBe(b.doc.getText('t').toString())
        expect(a.doc.getMap('m').toJSON()).toEqual(b.doc.getMap('m').toJSON())
        expect(a.version().equals(b.version())).toBe(true)
        expect(yjsDoc.equals(a.state(), b.state())).toBe(true)
      }),
    )
  })

  it('missing() sends only what the peer lacks', () => {
    const a = replica(1)
    const b = replica(2)
    a.edit((doc) => doc.getText('t').insert(0, 'x'.repeat(10_000)))
    pull(b, a)
    a.edit((doc) => doc.getText('t').insert(0, 'y'))
    expect(pull(b, a)).toBeLessThan(100)
    expect(b.doc.getText('t').toString()).toBe(a.doc.getText('t').toString())
  })

  it('version is the state vector as a vector clock keyed by client id', () => {
    const a = replica(7)
    a.edit((doc) => doc.getText('t').insert(0, 'abc'))
    expect(a.version().encode()).toEqual({ '7': 3 })
    expect(yjsDoc.version(a.state()).equals(a.version())).toBe(true)
    expect(() => a.missing(VectorClock.of({ alice: 1 }))).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })

  it('version, read off the struct store, is the state vector Yjs encodes: many clients, deletions, gc, unintegrated updates', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.integer({ min: 1, max: 4 }), fc.nat(20), fc.boolean(), fc.boolean()), { maxLength: 30 }), (steps) => {
        const target = replica(9)
        const sources = new Map<number, YjsDocHandler>()
        for (const [client, at, remove, lost] of steps) {
          let source = sources.get(client)
          if (!source) sources.set(client, (source = replica(client)))
          const text = source.doc.getText('t')
          const update = source.edit(() => (remove && text.length > 0 ? text.delete(at % text.length, 1) : text.insert(Math.min(at, text.length), 'ab')))
          // A lost update leaves that client's later ones pending (not integrated, not in the version).
          if (!lost) target.join(update)
        }
        const expected = Y.decodeStateVector(Y.encodeStateVector(target.doc))
        expect(target.version().encode()).toEqual(Object.fromEntries([...expected].map(([c, n]) => [String(c), n])))
      }),
    )
  })

  it('an update that fails to decode is DecodeError and the doc is untouched', () => {
    fc.assert(
      fc.property(fc.uint8Array({ minLength: 1, maxLength: 40 }), (garbage) => {
        const a = replica(1)
        a.edit((doc) => doc.getText('t').insert(0, 'hello'))
        const before = a.state()
        let code: string | undefined
        try {
          a.join(garbage)
        } catch (e) {
          code = (e as { code?: string }).code
        }
        // Random bytes can happen to be a well-formed (e.g. empty) update; those may apply.
        if (code !== undefined) {
          expect(code).toBe('DECODE')
          expect(Buffer.from(a.state()).equals(Buffer.from(before))).toBe(true)
          expect(a.doc.getText('t').toString()).toBe('hello')
        }
      }),
    )
  })

  it('a truncated real update is rejected by decode and by join', () => {
    const a = replica(1)
    const update = a.edit((doc) => doc.getText('t').insert(0, 'hello world'))
    const cut = update.slice(0, update.length - 4)
    expect(() => yjsDoc.decode(cut)).toThrow(expect.objectContaining({ code: 'DECODE' }))
    const b = replica(2)
    expect(() => b.join(cut)).toThrow(expect.objectContaining({ code: 'DECODE' }))
    expect(b.doc.getText('t').toString()).toBe('')
    expect(() => yjsDoc.decode('not bytes')).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })

  it('join reports whether the document changed', () => {
    const a = replica(1)
    const b = replica(2)
    const u = a.edit((doc) => doc.getText('t').insert(0, 'hi'))
    expect(b.join(u)).toBe(true)
    expect(b.join(u)).toBe(false)
  })
})
