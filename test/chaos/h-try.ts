import { hostileRun } from './hostile.js'
const r = await hostileRun({ frames: Number(process.argv[2] ?? 5000), streams: Number(process.argv[3] ?? 100) })
console.log(JSON.stringify(r, null, 1))
process.exit(0)
