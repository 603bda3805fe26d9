// One way configs are validated: zod, and a ConfigInvalid naming the config and each bad field.
// Service factories check their init when called (before any runtime starts); createRuntime its config.

import type { z } from 'zod'
import { ConfigInvalid } from '../../effects/errors.js'

/** Parses `input` (absent: {}) with `schema`, or throws ConfigInvalid naming `what` and each bad field. */
export function parseConfig<S extends z.ZodType>(schema: S, input: unknown, what: string, details: Record<string, unknown> = {}): z.output<S> {
  const parsed = schema.safeParse(input ?? {})
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new ConfigInvalid(`invalid ${what}: ${fields}`, { ...details, issues: parsed.error.issues })
  }
  return parsed.data
}

export function parseInit<S extends z.ZodType>(schema: S, init: unknown, service: string): z.output<S> {
  return parseConfig(schema, init, `${service} service config`, { service })
}
