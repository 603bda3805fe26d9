// A small threshold ceremony: every party commits to a secret, reveals it, then confirms the
// group key derived from all revealed secrets. A reveal that does not match its commitment makes
// the confirm step throw, so the session fails instead of agreeing on a tampered key.
//
// Secrets are derived from a signature over the session id: ed25519 is deterministic, so a peer
// restarted mid-ceremony reveals exactly what it committed to without storing the secret.

import { z } from 'zod'
import { InvalidInput } from '../../../effects/errors.js'
import { defineChoreography, type Choreography, type StepContext } from '../choreography.js'

const hex = (bytes: Uint8Array) => Buffer.from(bytes).toString('hex')
const fromHex = (text: string) => new Uint8Array(Buffer.from(text, 'hex'))
const digestHex = z.string().regex(/^[0-9a-f]{64}$/)

async function secretOf(context: StepContext): Promise<Uint8Array> {
  const signature = await context.sign(new TextEncoder().encode(`aura/threshold-ceremony/${context.sessionId}`))
  return context.hash(signature)
}

/**
 * @example
 * const result = await session.executeProtocol(thresholdCeremony(3))
 * console.log(result.outcome.kind === 'success' && result.outcome.results.groupKey)
 * // inside a step: produce: (ctx) => ({ key: groupKeyOf(ctx) })
 */
export function groupKeyOf(context: StepContext): string {
  const reveals = context.received['reveal'] ?? {}
  const parts = Object.entries(reveals)
    .map(([role, payload]) => [role, (payload as { secret: string }).secret] as const)
    .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
  return hex(context.hash(new TextEncoder().encode(parts.map(([role, secret]) => `${role}=${secret}`).join(';'))))
}

export const thresholdRoles = (parties: number): string[] => Array.from({ length: parties }, (_, i) => `p${i + 1}`)

/**
 * @example
 * const ceremony = thresholdCeremony(3)
 * const runtime = await createRuntime({ protocols: [ceremony], sessions: { autoJoin: true } })
 */
export function thresholdCeremony(parties = 3): Choreography {
  if (!Number.isInteger(parties) || parties < 2 || parties > 64) throw new InvalidInput('a ceremony needs 2 to 64 parties', { parties })
  return defineChoreography({
    name: `threshold-ceremony-${parties}`,
    roles: thresholdRoles(parties),
    steps: [
      {
        label: 'commit',
        from: 'each',
        to: 'others',
        payload: z.object({ commitment: digestHex }).strict(),
        produce: async (context) => ({ commitment: hex(context.hash(await secretOf(context))) }),
      },
      {
        label: 'reveal',
        from: 'each',
        to: 'others',
        payload: z.object({ secret: digestHex }).strict(),
        produce: async (context) => ({ secret: hex(await secretOf(context)) }),
      },
      {
        label: 'confirm',
        from: 'each',
        to: 'others',
        payload: z.object({ groupKey: digestHex }).strict(),
        produce: async (context) => {
          const commits = context.received['commit'] ?? {}
          const reveals = context.received['reveal'] ?? {}
          for (const [role, reveal] of Object.entries(reveals)) {
            const expected = (commits[role] as { commitment?: string } | undefined)?.commitment
            if (hex(context.hash(fromHex((reveal as { secret: string }).secret))) !== expected) {
              throw new InvalidInput(`reveal of ${role} does not match its commitment`, { role })
            }
          }
          // Include our own secret so every party hashes the same full set.
          const own = { ...reveals, [context.role]: { secret: hex(await secretOf(context)) } }
          return { groupKey: groupKeyOf({ ...context, received: { ...context.received, reveal: own } }) }
        },
      },
    ],
  })
}
