// `npm run bench`: runs every benchmark, prints one table, writes bench-results.json.
// `npm run bench -- session` runs only the benches whose name contains "session"
// (`-- anti-entropy`: the anti-entropy rounds and convergence alone; `-- session,transport`: those
// two in their usual order, to see what one bench leaves behind for the next).

import '../../effects/network/polyfill.js'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BenchReport } from './report.js'
import { benches } from './index.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const filters = process.argv[2]?.split(',').filter((f) => f.length > 0) ?? []
const report = new BenchReport()
for (const bench of benches) {
  if (filters.length > 0 && !filters.some((f) => bench.name.includes(f))) continue
  console.log(`running ${bench.name}… (heap ${Math.round(process.memoryUsage().heapUsed / 2 ** 20)} MiB)`)
  await bench.run(report)
}
console.log('')
report.print()
console.log(`\nwrote ${report.write(root)}`)
process.exit(0)
