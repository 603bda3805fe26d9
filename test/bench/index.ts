// Every benchmark `npm run bench` runs, in order.
import { sessionBench } from './session.bench.js'
import { timeoutBench } from './timeout.bench.js'
import { transportBench } from './transport.bench.js'

export const benches = [sessionBench, timeoutBench, transportBench]
