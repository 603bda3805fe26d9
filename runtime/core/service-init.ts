// One way every service factory validates its init: zod, and a ConfigInvalid naming the service
// and each bad field, thrown when the factory is called (before any runtime starts).

import type { z } from 'zod'
import { ConfigInvalid } from '../../effects/errors.js'

export function parseInit<S extends z.ZodType>(schema: S, init: unknown, service: string): z.output<S> {
  const parsed = schema.safeParse(init ?? {})
  if (!parsed.success) {
    const fields = parsed.error.issues.map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')
    throw new ConfigInvalid(`invalid ${service} service config: ${fields}`, { service, issues: parsed.error.issues })
  }
  return parsed.data
}
