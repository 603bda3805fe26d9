import '../effects/network/polyfill.js'
import fc from 'fast-check'

// Property tests replay: one fixed seed unless FC_SEED picks another. fast-check prints the
// seed and path of any failure, so `FC_SEED=<seed>` reproduces it.
const seed = process.env.FC_SEED !== undefined ? Number(process.env.FC_SEED) : 20261124
fc.configureGlobal({ seed, numRuns: Number(process.env.FC_RUNS ?? 100) })
