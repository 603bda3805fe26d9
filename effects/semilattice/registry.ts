// CRDT types by name, so a sync message can say what it carries. Maps are parameterised by
// their value type: 'or-map<pn-counter>', nested as 'or-map<or-map<g-counter>>'; plain
// 'or-map' means a map of LWW registers. Unknown names are InvalidInput.

import { z } from 'zod'
import { InvalidInput } from '../errors.js'
import { capabilitySet } from './capability-set.js'
import { gCounter } from './g-counter.js'
import type { CmType, CvType, MeetType } from './kinds.js'
import { lwwRegister } from './lww-register.js'
import { mvRegister } from './mv-register.js'
import { opCounter } from './op-counter.js'
import { opOrSet } from './op-or-set.js'
import { orMapType } from './or-map.js'
import { orSet } from './or-set.js'
import { pnCounter } from './pn-counter.js'
import { parseWire, type WireValue } from './wire.js'
import { yjsDoc } from './yjs-doc.js'

export const CV_TYPE_NAMES = ['g-counter', 'pn-counter', 'lww-register', 'mv-register', 'or-set', 'or-map', 'yjs'] as const
export type CvTypeName = (typeof CV_TYPE_NAMES)[number]

// Types are stateless objects of functions; `any` is the erasure a by-name lookup needs.
export type AnyCvType = CvType<any>

const base: Record<string, AnyCvType> = {
  'g-counter': gCounter,
  'pn-counter': pnCounter,
  'lww-register': lwwRegister,
  'mv-register': mvRegister,
  'or-set': orSet,
  yjs: yjsDoc,
}

const MAX_NESTING = 8
const maps = new Map<string, AnyCvType>()

/** The state-based type called `name`; throws InvalidInput for an unknown name. */
export function cvType(name: string): AnyCvType {
  return resolve(name, 0)
}

function resolve(name: string, depth: number): AnyCvType {
  if (Object.hasOwn(base, name)) return base[name]!
  if (name === 'or-map') return resolve('or-map<lww-register>', depth)
  const m = /^or-map<(.+)>$/.exec(name)
  if (m !== null && depth < MAX_NESTING) {
    const cached = maps.get(name)
    if (cached !== undefined) return cached
    const made = orMapType(resolve(m[1]!, depth + 1))
    maps.set(name, made)
    return made
  }
  throw new InvalidInput('unknown CRDT type', { type: name.slice(0, 300) })
}

const cmTypes: Record<string, CmType<any, any>> = { 'op-counter': opCounter, 'op-or-set': opOrSet }
const meetTypes: Record<string, MeetType<any>> = { 'capability-set': capabilitySet }

export function cmType(name: string): CmType<any, any> {
  if (!Object.hasOwn(cmTypes, name)) throw new InvalidInput('unknown CmRDT type', { type: name.slice(0, 300) })
  return cmTypes[name]!
}

export function meetType(name: string): MeetType<any> {
  if (!Object.hasOwn(meetTypes, name)) throw new InvalidInput('unknown meet type', { type: name.slice(0, 300) })
  return meetTypes[name]!
}

/** A state tagged with its type name: { type, state }. */
export interface TaggedState {
  readonly type: AnyCvType
  readonly state: unknown
}

const taggedSchema = z.object({ type: z.string().min(1).max(300), state: z.unknown() }).strict()

export function encodeTagged<S>(type: CvType<S>, state: S): WireValue {
  return { type: type.name, state: type.encode(state) }
}

export function decodeTagged(wire: unknown): TaggedState {
  const parsed = parseWire(taggedSchema, wire, 'tagged CRDT state')
  const type = cvType(parsed.type)
  return { type, state: type.decode(parsed.state) }
}
