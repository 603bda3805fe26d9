// Path coverage: @xstate/graph walks each pattern machine (shortest paths to every reachable
// state) under a list of events that includes the done/error/timer events its invoked actors
// would send (traversal does not run actors). Every path is then replayed on a real actor with
// inert test actors, the test delivering those events itself; the replay must end in the state
// the graph predicted. Coverage = states entered and transitions taken during the replays,
// measured against the machine's own definition (statechart-export's model), printed per machine.
// Anything short of 100%, or a machine in machines/ without a spec here, fails the test.
import { getShortestPaths, getSimplePaths } from '@xstate/graph'
import { afterAll, describe, expect, it } from 'vitest'
import { createActor, fromCallback, fromPromise, type AnyStateMachine, type AnyEventObject } from 'xstate'
import { join } from 'node:path'
import { allTransitions, chartOf, discoverMachines, walkStates } from '../../tools/statecharts/export.js'
import { sessionMachine } from '../../machines/session.js'
import { retryMachine } from '../../machines/retry.js'
import { timeoutMachine, coordinatedTimeoutMachine } from '../../machines/timeout.js'
import { transportMachine } from '../../machines/transport.js'
import { antiEntropyMachine } from '../../machines/anti-entropy.js'
import { crdtSyncMachine } from '../../machines/crdt-sync.js'
import { replicationMachine } from '../../machines/replication.js'
import { createStorageOperationMachine, type StorageSteps } from '../../machines/storage.js'

type StorageScript = { validate?: 'invalid'; verdict?: 'cached' | 'verify' | 'denied' | 'broken'; read?: 'broken' }
const scriptOf = (request: unknown) => request as StorageScript
const scriptedStorageSteps: StorageSteps = {
  validate: ({ request }) => {
    if (scriptOf(request).validate === 'invalid') throw Object.assign(new Error('bad'), { code: 'INVALID_INPUT' })
    return request
  },
  authorizeCached: ({ validated }) => {
    const verdict = scriptOf(validated).verdict
    if (verdict === 'denied') throw Object.assign(new Error('no'), { code: 'PERMISSION_DENIED' })
    if (verdict === 'broken') throw Object.assign(new Error('bad request'), { code: 'INVALID_INPUT' })
    return verdict === 'cached'
  },
  read: ({ validated }) => {
    if (scriptOf(validated).read === 'broken') throw Object.assign(new Error('disk'), { code: 'STORAGE' })
    return 'v'
  },
}

interface PathSpec {
  machine: AnyStateMachine
  /** one traversal per input (e.g. both policies) */
  inputs: unknown[]
  events: AnyEventObject[]
  /** simple paths too (every acyclic route), for machines small enough */
  simple?: boolean
  /** what tells two states apart in the traversal (default: value plus coarse context) */
  serialize?: (snapshot: { value: unknown; context: unknown }) => string
}

const NON_RETRYABLE = { code: 'INVALID_INPUT', message: 'bad' }
const done = (id: string, output: unknown = null) => ({ type: `xstate.done.actor.${id}`, output, actorId: id })
const error = (id: string, err: unknown = { code: 'NETWORK', message: 'down' }) => ({ type: `xstate.error.actor.${id}`, error: err, actorId: id })

const policy = { maxAttempts: 2, initialDelayMs: 10, maxDelayMs: 100, multiplier: 2, jitter: 'none' as const }
const roster = [
  { peerId: 'A', role: 'a' },
  { peerId: 'B', role: 'b' },
  { peerId: 'C', role: 'c' },
]
// a → b (A sends), c → b (not A's: skipped), b → a (A waits for it), a → b again (A's last act:
// under leader B it carries A's done report)
const protocol = {
  name: 'p',
  steps: [
    { label: 'one', from: 'a', to: ['b'] },
    { label: 'two', from: 'c', to: ['b'] },
    { label: 'three', from: 'b', to: ['a'] },
    { label: 'four', from: 'a', to: ['b'] },
  ],
}

const specs: PathSpec[] = [
  {
    machine: sessionMachine,
    // A leads, then A is a participant under B: each side has transitions of its own
    inputs: ['A', 'B'].map((leaderPeerId) => ({
      sessionId: 's',
      sessionType: 't',
      selfPeerId: 'A',
      participants: roster,
      leaderPeerId,
      createdAt: 0,
      deadlineAt: 100,
      verdictGraceMs: 50,
      limits: { maxParticipants: 8, maxMessageBytes: 1024 },
    })),
    events: [
      { type: 'JOIN', peerId: 'B', role: 'b' },
      { type: 'JOIN', peerId: 'C', role: 'c' },
      { type: 'LEAVE', peerId: 'B' },
      { type: 'EXECUTE', protocol },
      { type: 'RECEIVE', step: 2, from: 'B', payload: 'x' },
      { type: 'CANCEL', reason: 'test' },
      { type: 'FAIL', reason: 'test' },
      { type: 'DEADLINE' },
      { type: 'GRACE_OVER' },
      // the runner's answers to sendStep (A sends steps 0 and 3) and to release
      { type: 'STEP_SENT', step: 0, verdict: null },
      { type: 'STEP_SENT', step: 3, verdict: null },
      { type: 'STEP_SENT', step: 3, verdict: { kind: 'success' } },
      { type: 'STEP_FAILED', step: 0, error: { code: 'NETWORK', message: 'down' } },
      { type: 'STEP_FAILED', step: 3, error: { code: 'DEADLINE_EXCEEDED', message: 'late' } },
      { type: 'RELEASED' },
      { type: 'REPORT', from: 'B', kind: 'done' },
      { type: 'REPORT', from: 'C', kind: 'done' },
      { type: 'REPORT', from: 'C', kind: 'failure', reason: 'test' },
      { type: 'REPORT', from: 'C', kind: 'cancelled', reason: 'test' },
      { type: 'VERDICT', kind: 'success' },
      { type: 'VERDICT', kind: 'cancelled' },
      done('reportToLeader', null),
      done('reportToLeader', { kind: 'failure', reason: 'test' }),
      error('reportToLeader'),
      done('askLeader', { kind: 'timeout' }),
    ],
  },
  {
    machine: retryMachine,
    inputs: [{ policy }, { policy, deadlineAt: 50 }],
    events: [
      done('attempt', 'ok'),
      error('attempt'),
      error('attempt', { code: 'INVALID_INPUT', message: 'no' }),
      { type: 'RETRY' },
      { type: 'DEADLINE' },
      { type: 'CANCEL' },
    ],
    simple: true,
  },
  {
    machine: timeoutMachine,
    inputs: [{ deadlineAt: 10 }],
    events: [done('operation', 1), error('operation'), { type: 'DEADLINE' }, { type: 'CANCEL' }],
    simple: true,
  },
  {
    machine: coordinatedTimeoutMachine,
    inputs: [
      { deadlineAt: 10, policy: 'fail-fast', opIds: ['x', 'y'] },
      { deadlineAt: 10, policy: 'best-effort', opIds: ['x', 'y'] },
    ],
    events: [done('op:x', 1), done('op:y', 2), error('op:x'), error('op:y'), { type: 'DEADLINE' }, { type: 'CANCEL' }],
    simple: true,
  },
  {
    machine: transportMachine,
    inputs: [
      {
        channelId: 'c',
        peerId: 'p',
        contextId: 'x',
        epoch: 3,
        addresses: ['/a', '/b'],
        reconnect: policy,
        drainTimeoutMs: 5,
      },
    ],
    events: [
      { type: 'CONNECT' },
      { type: 'CONNECTED' },
      { type: 'CONNECT_FAILED', error: { code: 'NETWORK', message: 'x' } },
      { type: 'CONNECT_FAILED', error: { code: 'PERMISSION_DENIED', message: 'x' }, retryable: false },
      { type: 'RETRY' },
      { type: 'DRAINED' },
      { type: 'BUDGET_SPENT' },
      { type: 'EPOCH_BUMP', epoch: 4 },
      { type: 'EPOCH_BUMP', epoch: 1 },
      { type: 'CLOSE' },
      { type: 'STALE' },
      { type: 'REMOTE_CLOSED' },
      { type: 'DRAIN_TIMEOUT' },
    ],
  },
  {
    machine: antiEntropyMachine,
    // maxRounds bounds the walk (and reaches `done`); two peers let nextPeer go both ways.
    inputs: [{ syncInterval: 10, retry: policy, maxRounds: 2 }],
    events: [
      { type: 'TICK' },
      { type: 'RUN_NOW' },
      { type: 'STOP' },
      done('selectPeers', ['B', 'C']),
      done('selectPeers', []),
      error('selectPeers'),
      done('exchangeDigest', { status: 'diverged', differing: ['d1'], bytes: 10 }),
      error('exchangeDigest'),
      error('exchangeDigest', NON_RETRYABLE),
      done('reconcile', { pulled: 1, pushed: 1, bytes: 5 }),
      error('reconcile'),
      { type: 'RETRY' },
      { type: 'DEADLINE' },
    ],
  },
  {
    machine: crdtSyncMachine,
    inputs: [{ peerId: 'B' }],
    // Only what the guards read: the counters and outcomes would multiply the states for nothing.
    serialize: (snapshot) => {
      const c = snapshot.context as { queued: boolean; queuedPolicy: unknown; policy: unknown; attempt: number }
      return JSON.stringify([snapshot.value, c.queued, c.queuedPolicy !== null, c.policy !== null, c.attempt])
    },
    events: [
      { type: 'SYNC' },
      { type: 'SYNC', policy },
      // The sync worker's answers to each step (the machine sends it PULL / PUSH).
      { type: 'DONE' },
      { type: 'DONE', push: true },
      { type: 'ERROR', error: { code: 'NETWORK', message: 'down' } },
      { type: 'ERROR', error: NON_RETRYABLE },
      { type: 'ERROR', error: { code: 'DECODE', message: 'bad update' }, rejected: true },
      { type: 'RETRY' },
      { type: 'DEADLINE' },
    ],
  },
  {
    machine: replicationMachine,
    // all-ack, quorum and async: required n, k and 0 of three peers
    inputs: [3, 2, 0].map((required) => ({ peers: ['A', 'B', 'C'], required, deadlineAt: 10 })),
    events: [
      ...['A', 'B', 'C'].flatMap((peer) => [
        { type: 'PEER_ACKED', peer, attempts: 1 },
        { type: 'PEER_FAILED', peer, attempts: 2, error: { code: 'NETWORK', message: 'down' } },
      ]),
      { type: 'PEER_FAILED', peer: 'A', attempts: 2, error: { code: 'DEADLINE_EXCEEDED', message: 'late' } },
      { type: 'DEADLINE' },
      { type: 'CANCEL', reason: 'test' },
    ],
  },
  {
    // Immediate steps (validate, cached verdict, read) follow a script in the request, so each
    // input takes one branch; the waiting ones (verifying, writing) are driven by events.
    machine: createStorageOperationMachine(scriptedStorageSteps),
    inputs: [
      ...[{ validate: 'invalid' }, { verdict: 'denied' }, { verdict: 'broken' }, { verdict: 'cached' }, { verdict: 'verify' }].map((script) => ({
        op: 'store',
        script,
      })),
      ...[{ verdict: 'cached' }, { verdict: 'cached', read: 'broken' }, { verdict: 'verify' }, { verdict: 'verify', read: 'broken' }].map((script) => ({
        op: 'retrieve',
        script,
      })),
    ].map(({ op, script }) => ({ op, namespace: 'ns', holder: 'A', request: script })),
    events: [
      done('authorize'),
      error('authorize', { code: 'PERMISSION_DENIED', message: 'no' }),
      error('authorize'),
      done('write', true),
      error('write', { code: 'STORAGE', message: 'disk' }),
    ],
    simple: true,
  },
]

// States are told apart by value and a coarse view of the context (small numbers kept, long
// lists cut), so the traversal stays finite while guards that read the context still branch.
const coarse = (snapshot: { value: unknown; context: unknown }) =>
  JSON.stringify({ value: snapshot.value, context: snapshot.context }, (_key, v) =>
    typeof v === 'number' ? Math.max(-1, Math.min(v, 4)) : Array.isArray(v) ? v.slice(0, 4) : typeof v === 'function' ? undefined : v,
  )

// Test effects: every invoked actor is inert, so only the events the test delivers move the machine.
function inert(machine: AnyStateMachine): AnyStateMachine {
  const actors: Record<string, unknown> = {}
  for (const state of walkStates(chartOf(machine).root)) for (const inv of state.invoke) actors[inv.src] = fromCallback(() => undefined)
  // Spawned (not invoked) children too, e.g. replication's peer senders.
  for (const src of Object.keys(machine.implementations.actors)) actors[src] = fromCallback(() => undefined)
  // The coordinated timeout's operations are promises that never settle.
  actors.operation = fromPromise(() => new Promise(() => undefined))
  return machine.provide({ actors } as never)
}

type TransitionLike = { source: { id: string; always?: unknown[]; transitions: Map<string, unknown[]> }; eventType: string }
function transitionKey(t: TransitionLike): string {
  const always = t.source.always?.indexOf(t) ?? -1
  if (always >= 0) return `${t.source.id}|always|${always}`
  return `${t.source.id}|${t.eventType}|${t.source.transitions.get(t.eventType)?.indexOf(t) ?? -1}`
}

function definedTransitions(machine: AnyStateMachine): Set<string> {
  const out = new Set<string>()
  const chart = chartOf(machine)
  const perList = new Map<string, number>()
  for (const t of allTransitions(chart)) {
    const list = t.kind === 'always' ? 'always' : t.event
    const key = `${t.source}|${list}`
    const index = perList.get(key) ?? 0
    perList.set(key, index + 1)
    out.add(`${key}|${index}`)
  }
  return out
}

const report: string[] = []
afterAll(() => {
  console.log(`path coverage\n${report.join('\n')}`)
})

describe('path coverage (@xstate/graph)', () => {
  // A machine added to machines/ without a spec here fails this test, so none goes uncovered.
  it('every machine in machines/ has a path spec', async () => {
    const specified = new Set(specs.map((s) => s.machine.id))
    const discovered = (await discoverMachines(join(process.cwd(), 'machines'))).map((m) => m.machine.id)
    const unspecified = discovered.filter((id) => !specified.has(id))
    if (unspecified.length > 0) report.push(`  no path spec yet: ${unspecified.join(', ')}`)
    expect(discovered.length).toBeGreaterThanOrEqual(specs.length)
    expect(unspecified, 'machines without a path spec').toEqual([])
  })

  for (const spec of specs) {
    it(`${spec.machine.id}: replaying the generated paths covers every state and transition`, () => {
      const machine = inert(spec.machine)
      const states = new Set<string>()
      const taken = new Set<string>()
      let pathCount = 0
      for (const input of spec.inputs) {
        const options = {
          input,
          // The traversal would step out of a final state; a real actor ignores events there.
          events: (snapshot: { status: string }) => (snapshot.status === 'active' ? spec.events : []),
          serializeState: spec.serialize ?? coarse,
          // counts (state, event) pairs tried, not states: the session spec tries every one of its events in each
          limit: 50_000,
        } as never
        const paths = [...getShortestPaths(spec.machine, options), ...(spec.simple ? getSimplePaths(spec.machine, options) : [])]
        expect(paths.length).toBeGreaterThan(0)
        const replay = (events: AnyEventObject[]) => {
          const actor = createActor(machine, {
            input: input as never,
            inspect: (event) => {
              // Only machine actors take microsteps here; the test effects are callbacks and promises.
              if (event.type !== '@xstate.microstep') return
              for (const t of (event as unknown as { _transitions: TransitionLike[] })._transitions) {
                taken.add(transitionKey(t))
                // a transient initial state shows up only as the source of the step leaving it
                states.add(t.source.id)
              }
              // Transient states (left by an eventless transition at once) only show up here.
              for (const node of (event.snapshot as unknown as { _nodes: Array<{ id: string }> })._nodes) states.add(node.id)
            },
          })
          actor.subscribe({ error: () => undefined })
          actor.start()
          for (const event of events) actor.send(event)
          const snapshot = actor.getSnapshot()
          for (const node of snapshot._nodes) states.add(node.id)
          actor.stop()
          return snapshot
        }
        for (const path of paths) {
          pathCount++
          const events = path.steps.map((step) => step.event).filter((event) => event.type !== 'xstate.init')
          const snapshot = replay(events)
          expect(snapshot.status, JSON.stringify(events.map((e) => e.type))).not.toBe('error')
          expect(snapshot.value, JSON.stringify(events.map((e) => e.type))).toEqual(path.state.value)
          // One more step with every event: covers the transitions out of each reached state that
          // lead back to an already-known one (a shortest path never takes those).
          if (snapshot.status === 'active') for (const event of spec.events) replay([...events, event])
        }
      }
      const chart = chartOf(spec.machine)
      const allStates = [...walkStates(chart.root)].map((s) => s.id)
      const defined = definedTransitions(spec.machine)
      const missedStates = allStates.filter((s) => !states.has(s))
      const missedTransitions = [...defined].filter((t) => !taken.has(t))
      report.push(
        `  ${spec.machine.id.padEnd(20)} paths ${String(pathCount).padStart(5)}  states ${allStates.length - missedStates.length}/${allStates.length}  transitions ${defined.size - missedTransitions.length}/${defined.size}`,
      )
      expect(missedStates, 'states never entered').toEqual([])
      expect(missedTransitions, `transitions never taken: ${missedTransitions.join(', ')}`).toEqual([])
    })
  }
})
