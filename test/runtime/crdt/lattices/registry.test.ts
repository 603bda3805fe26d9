import { describe, expect, it } from 'vitest'
import {
  CV_TYPE_NAMES,
  cmType,
  cvType,
  decodeTagged,
  encodeTagged,
  gCounter,
  meetType,
  orMapType,
  orSet,
  pnCounter,
} from '../../../../runtime/crdt/lattices/index.js'

describe('CRDT type registry', () => {
  it('resolves every shipped name', () => {
    for (const name of CV_TYPE_NAMES) expect(cvType(name).bottom()).toBeDefined()
    expect(cvType('or-map').name).toBe('or-map<lww-register>')
    expect(cvType('or-map<or-map<g-counter>>').name).toBe('or-map<or-map<g-counter>>')
    expect(cmType('op-or-set').name).toBe('op-or-set')
    expect(meetType('capability-set').name).toBe('capability-set')
  })

  it('unknown types are InvalidInput', () => {
    for (const name of ['nope', 'or-map<nope>', '__proto__', 'toString', 'or-map<'.repeat(20) + 'g-counter' + '>'.repeat(20)]) {
      expect(() => cvType(name)).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    }
    expect(() => cmType('g-counter')).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => meetType('or-set')).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })

  it('a tagged state names its type and decodes back through the registry', () => {
    let s = orSet.bottom()
    s = orSet.join(s, orSet.add(s, 'a', 'x'))
    const back = decodeTagged(JSON.parse(JSON.stringify(encodeTagged(orSet, s))))
    expect(back.type).toBe(orSet)
    expect(orSet.values(back.state as typeof s)).toEqual(['x'])

    const counters = orMapType(pnCounter)
    let m = counters.bottom()
    m = counters.join(
      m,
      counters.update(m, 'a', 'k', (v) => pnCounter.increment(v, 'a', 2)),
    )
    const mb = decodeTagged(JSON.parse(JSON.stringify(encodeTagged(counters, m))))
    expect(mb.type.name).toBe('or-map<pn-counter>')
    expect(counters.equals(mb.state as typeof m, m)).toBe(true)
  })

  it('a tagged state of an unknown type or with a bad body is InvalidInput', () => {
    expect(() => decodeTagged({ type: 'mystery', state: {} })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => decodeTagged({ type: 'g-counter', state: { a: -3 } })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
    expect(() => decodeTagged({ type: 'g-counter' })).toThrow(expect.objectContaining({ code: 'INVALID_INPUT' }))
  })

  it('g-counter encodes as its version vector', () => {
    expect(gCounter.encode(gCounter.increment(gCounter.bottom(), 'a', 3))).toEqual({ a: 3 })
  })
})
