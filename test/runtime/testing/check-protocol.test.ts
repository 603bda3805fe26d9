// checkProtocol: a user's own choreography, property-tested in the simulator under fault
// schedules, against the session laws and the user's invariants.
import { describe, expect, it } from 'vitest'
import { checkProtocol, faultSchedule } from '../../../runtime/testing/check-protocol.js'
import { greeting } from '../../fixtures/greeting.js'

describe('checkProtocol', () => {
  it('the greeting keeps the session laws and its own invariant under drops, duplicates, reordering and partitions', async () => {
    const seen: string[] = []
    await checkProtocol(greeting, {
      runs: 25,
      seed: 7,
      invariants: [
        (run) => {
          seen.push(run.outcomes.client?.status ?? 'none')
          const outcome = run.outcomes.client?.outcome
          if (outcome?.kind === 'success' && JSON.stringify(outcome.results).indexOf('welcome, you said hello') < 0)
            return 'a completed client holds the welcome'
        },
      ],
    })
    expect(seen).toHaveLength(25)
    // the schedules reach both sides of the protocol: some runs complete, some do not
    expect(seen).toContain('completed')
    expect(seen.some((s) => s !== 'completed')).toBe(true)
  })

  it('an invariant that does not hold fails with the seed and the fault schedule that break it', async () => {
    const failing = checkProtocol(greeting, {
      runs: 25,
      seed: 7,
      faults: faultSchedule(2, { maxDropRate: 0.5 }),
      invariants: [(run) => (run.outcomes.server?.status === 'completed' ? undefined : 'the server always completes')],
    })
    await expect(failing).rejects.toThrow(/seed.*[\s\S]*the server always completes/)
  })
})
