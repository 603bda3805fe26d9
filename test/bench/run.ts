// `npm run bench`: runs every benchmark, prints one table, writes bench-results.json.
// `npm run bench -- session` runs only the benches whose name contains "session"
// (`-- anti-entropy`: the anti-entropy rounds and convergence alone).

import '../../effects/network/polyfill.js'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BenchReport } from './report.js'
import { benches } from './index.js'

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
const filter = process.argv[2]
const report = new BenchReport()
for (const bench of benches) {
  if (filter && !bench.name.includes(filter)) continue
  console.log(`running ${bench.name}…`)
  await bench.run(report)
}
console.log('')
report.print()
console.log(`\nwrote ${report.write(root)}`)
process.exit(0)
