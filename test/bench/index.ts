// Every benchmark `npm run bench` runs, in order.
import { sessionBench } from './session.bench.js'

export const benches = [sessionBench]
