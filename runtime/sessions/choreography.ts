// A choreography is a multi-party protocol written once from the global point of view: an ordered
// list of role → role messages, each with a payload schema and a function that produces the
// payload on the sending peer. Every peer runs the same choreography; the session machine projects
// it onto its own role (send my steps, wait for the steps sent to me, skip the rest).
//
// The machine only ever sees the data part (label, from, to) so its snapshot stays serialisable;
// schemas and producers live here, looked up by choreography name when a session is restored.

import { z } from 'zod'
import { InvalidInput } from '../../effects/errors.js'

export interface StepContext {
  sessionId: string
  selfPeerId: string
  role: string
  /** peer id holding each role */
  roster: Record<string, string>
  /** payloads received so far: step label → sender role → payload */
  received: Record<string, Record<string, unknown>>
  /** signs with this peer's identity key (ed25519 signatures are deterministic, so a restarted
   * peer re-derives the same secrets from them) */
  sign(data: Uint8Array): Promise<Uint8Array>
  hash(data: Uint8Array): Uint8Array
}

export interface ChoreographyStepDefinition {
  label: string
  /** a role, or 'each' for one step per role (each sending to every other role, in role order) */
  from: string
  /** roles, or 'others' for every role but the sender */
  to: string[] | 'others'
  payload: z.ZodType
  produce: (context: StepContext) => unknown | Promise<unknown>
}

export interface ChoreographyDefinition {
  name: string
  roles: string[]
  steps: ChoreographyStepDefinition[]
}

/** One expanded step: exactly one sending role. */
export interface ChoreographyStep {
  label: string
  from: string
  to: string[]
  payload: z.ZodType
  produce: (context: StepContext) => unknown | Promise<unknown>
}

export interface Choreography {
  name: string
  roles: string[]
  steps: ChoreographyStep[]
  /** the serialisable projection handed to the session machine */
  wire: { name: string; steps: { label: string; from: string; to: string[] }[] }
}

const definitionSchema = z.object({
  name: z.string().regex(/^[A-Za-z0-9_.:-]{1,64}$/),
  roles: z.array(z.string().min(1).max(64)).min(2).max(64),
  steps: z
    .array(
      z.object({
        label: z.string().min(1).max(64),
        from: z.string().min(1),
        to: z.union([z.literal('others'), z.array(z.string().min(1)).min(1)]),
        payload: z.custom<z.ZodType>((v) => v instanceof z.ZodType, 'payload must be a zod schema'),
        produce: z.custom<ChoreographyStepDefinition['produce']>((v) => typeof v === 'function', 'produce must be a function'),
      }),
    )
    .min(1)
    .max(1024),
})

/**
 * @example
 * const greeting = defineChoreography({
 *   name: 'greeting',
 *   roles: ['client', 'server'],
 *   steps: [{ label: 'hello', from: 'client', to: ['server'], payload: z.object({ text: z.string() }), produce: () => ({ text: 'hi' }) }],
 * })
 */
export function defineChoreography(definition: ChoreographyDefinition): Choreography {
  const parsed = definitionSchema.safeParse(definition)
  if (!parsed.success) throw new InvalidInput('invalid choreography', { issues: parsed.error.issues })
  const { name, roles } = definition
  if (new Set(roles).size !== roles.length) throw new InvalidInput('choreography roles must be distinct', { roles })
  const known = (role: string) => {
    if (!roles.includes(role)) throw new InvalidInput(`unknown role ${role} in choreography ${name}`, { role })
    return role
  }
  const steps: ChoreographyStep[] = []
  for (const step of definition.steps) {
    const senders = step.from === 'each' ? roles : [known(step.from)]
    for (const from of senders) {
      const to = step.to === 'others' ? roles.filter((r) => r !== from) : step.to.map(known)
      if (to.includes(from)) throw new InvalidInput(`step ${step.label} sends from ${from} to itself`, { step: step.label })
      steps.push({ label: step.label, from, to, payload: step.payload, produce: step.produce })
    }
  }
  const labels = new Set<string>()
  for (const step of steps) {
    const key = `${step.label}\u0000${step.from}`
    if (labels.has(key)) throw new InvalidInput(`step ${step.label} from ${step.from} appears twice`, { step: step.label })
    labels.add(key)
  }
  return { name, roles: [...roles], steps, wire: { name, steps: steps.map(({ label, from, to }) => ({ label, from, to })) } }
}
