// Every benchmark `npm run bench` runs, in order.
import { sessionBench } from './session.bench.js'
import { timeoutBench } from './timeout.bench.js'
import { transportBench } from './transport.bench.js'
import { crdtBench } from './crdt.bench.js'
import { antiEntropyBench } from './anti-entropy.bench.js'
import { storageBench } from './storage.bench.js'

export const benches = [sessionBench, timeoutBench, transportBench, crdtBench, antiEntropyBench, storageBench]
