// Short form of the simulated campaign (`npm run chaos -- --only simulated` runs 1,000 seeds): a
// few seeded 5-peer runs under loss, duplication, reordering, partitions and crashes, each
// checked against its history. A failure names the seed; `npm run chaos -- --seed N --runs 1`
// replays it.
import { describe, expect, it } from 'vitest'
import { simulatedRun } from './simulated.js'

const SEEDS = [1, 2, 3, 4, 5, 6, 7, 8]

describe('simulated chaos', () => {
  it.each(SEEDS)(
    'law: seed %i — acknowledged writes kept, replicas equal, increments exact, sessions agree',
    async (seed) => {
      const report = await simulatedRun(seed)
      expect(report.acknowledged).toBeGreaterThan(0)
      expect(report.violations).toEqual([])
    },
    60_000,
  )
})
