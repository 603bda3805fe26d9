// CRDT types by name, so a sync message can say what it carries. Maps are parameterised by
// their value type: 'or-map<pn-counter>', nested as 'or-map<or-map<g-counter>>'; plain
// 'or-map' means a map of LWW registers. Unknown names are InvalidInput.

import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
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
import { parseWire, type WireValue } from './lattice-wire.js'
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

const builtinCm: Record<string, CmType<any, any>> = { 'op-counter': opCounter, 'op-or-set': opOrSet }
const builtinMeet: Record<string, MeetType<any>> = { 'capability-set': capabilitySet }

export type TypeKind = 'cv' | 'cm' | 'meet'

/** Thrown for a type name nobody registered; `details.reason` is 'unknown-type'. */
const unknownType = (what: string, name: string) => new InvalidInput(`unknown ${what} type`, { reason: 'unknown-type', type: name.slice(0, 300) })

/**
 * CRDT types by name: the built-in ones, plus those an application registers. Each coordinator
 * has its own (so two runtimes in one process can differ); the built-ins are shared. Maps of
 * registered types ('or-map<my-type>') resolve through the same registry.
 */
export class TypeRegistry {
  private readonly cv = new Map<string, AnyCvType>()
  private readonly cm = new Map<string, CmType<any, any>>()
  private readonly meet = new Map<string, MeetType<any>>()
  private readonly maps = new Map<string, AnyCvType>()

  /** Adds an application type under its own `name`; a different type under a taken name is InvalidInput. */
  register(kind: TypeKind, type: { name: string }): void {
    if (typeof type?.name !== 'string' || !TYPE_NAME.test(type.name) || type.name.startsWith('or-map')) {
      throw new InvalidInput('a CRDT type needs a name of 1-128 characters [A-Za-z0-9._:-], not starting with or-map', {
        name: String(type?.name).slice(0, 300),
      })
    }
    const existing = this.lookup(kind, type.name)
    if (existing === type) return
    if (existing !== undefined) throw new InvalidInput(`a different ${kind} type is registered as ${type.name}`, { type: type.name })
    const table = kind === 'cv' ? this.cv : kind === 'cm' ? this.cm : this.meet
    table.set(type.name, type as never)
  }

  /** True when `name` resolves (cv names include maps of known value types). */
  has(kind: TypeKind, name: string): boolean {
    if (kind !== 'cv') return this.lookup(kind, name) !== undefined
    try {
      this.cvType(name)
      return true
    } catch {
      return false
    }
  }

  cvType(name: string): AnyCvType {
    return this.resolve(name, 0)
  }

  cmType(name: string): CmType<any, any> {
    const type = this.lookup('cm', name)
    if (type === undefined) throw unknownType('CmRDT', name)
    return type as CmType<any, any>
  }

  meetType(name: string): MeetType<any> {
    const type = this.lookup('meet', name)
    if (type === undefined) throw unknownType('meet', name)
    return type as MeetType<any>
  }

  private lookup(kind: TypeKind, name: string): { name: string } | undefined {
    switch (kind) {
      case 'cv':
        return Object.hasOwn(base, name) ? base[name] : this.cv.get(name)
      case 'cm':
        return Object.hasOwn(builtinCm, name) ? builtinCm[name] : this.cm.get(name)
      case 'meet':
        return Object.hasOwn(builtinMeet, name) ? builtinMeet[name] : this.meet.get(name)
    }
  }

  private resolve(name: string, depth: number): AnyCvType {
    const plain = this.lookup('cv', name)
    if (plain !== undefined) return plain as AnyCvType
    if (name === 'or-map') return this.resolve('or-map<lww-register>', depth)
    const m = /^or-map<(.+)>$/.exec(name)
    if (m !== null && depth < MAX_NESTING) {
      const cached = this.maps.get(name)
      if (cached !== undefined) return cached
      const made = orMapType(this.resolve(m[1]!, depth + 1))
      this.maps.set(name, made)
      return made
    }
    throw unknownType('CRDT', name)
  }
}

const TYPE_NAME = /^[A-Za-z0-9._:-]{1,128}$/

/** The built-in types only: what storage resolvers and tagged states name. */
export const builtinTypes = new TypeRegistry()

/** The state-based type called `name`; throws InvalidInput for an unknown name. */
export const cvType = (name: string): AnyCvType => builtinTypes.cvType(name)
export const cmType = (name: string): CmType<any, any> => builtinTypes.cmType(name)
export const meetType = (name: string): MeetType<any> => builtinTypes.meetType(name)

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
