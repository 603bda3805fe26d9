import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { createActor, fromPromise, toPromise } from 'xstate'
import { InvalidInput, PermissionDenied, StorageError } from '../../effects/errors.js'
import {
  STORAGE_OPERATIONS,
  createStorageOperationMachine,
  isReadOperation,
  storageOperationMachine,
  type StorageOperation,
  type StorageOpInput,
} from '../../machines/storage.js'

type Step = 'ok' | 'invalid' | 'denied' | 'broken'
/** whether the verifier already holds a verdict (decided at once) or the signatures need verifying */
type Verdict = 'cached' | 'verify'

const failure = (step: Step): Error =>
  step === 'invalid' ? new InvalidInput('bad') : step === 'denied' ? new PermissionDenied('no') : new StorageError('disk')

function run(op: StorageOperation, steps: { validate: Step; authorize: Step; access: Step; verdict?: Verdict }) {
  const calls: string[] = []
  const states: string[] = []
  const verdict = steps.verdict ?? 'cached'
  const outcome = (name: string, step: Step, value: unknown) => () => {
    calls.push(name)
    if (step !== 'ok') throw failure(step)
    return value
  }
  const machine = createStorageOperationMachine({
    validate: outcome('validate', steps.validate, { checked: true }),
    authorizeCached: verdict === 'cached' ? (outcome('authorize', steps.authorize, true) as () => boolean) : () => false,
    read: outcome('read', steps.access, 'value'),
  }).provide({
    actors: {
      authorize: fromPromise(async () => outcome('authorize', steps.authorize, undefined)()),
      write: fromPromise(async () => outcome('write', steps.access, 'written')()),
    },
  })
  const actor = createActor(machine, { input: { op, namespace: 'docs', holder: 'peer', request: { key: 'k' } } satisfies StorageOpInput })
  actor.subscribe((s) => states.push(String(s.value)))
  actor.start()
  return toPromise(actor).then((output) => ({ output, calls, states }))
}

describe('storage operation chart', () => {
  it('a write with a cached verdict goes validating → authorizing → writing → done in one step, then waits only for the write', async () => {
    const { output, calls, states } = await run('store', { validate: 'ok', authorize: 'ok', access: 'ok' })
    expect(output).toEqual({ status: 'done', value: 'written' })
    expect(calls).toEqual(['validate', 'authorize', 'write'])
    // validating and authorizing are transient: the first snapshot is already writing
    expect(states).toEqual(['writing', 'done'])
  })

  it('a capability with no verdict yet is verified (verifying) before anything is touched', async () => {
    const { output, calls, states } = await run('store', { validate: 'ok', authorize: 'ok', access: 'ok', verdict: 'verify' })
    expect(output).toEqual({ status: 'done', value: 'written' })
    expect(calls).toEqual(['validate', 'authorize', 'write'])
    expect(states).toEqual(['verifying', 'writing', 'done'])
  })

  it('a read with a cached verdict finishes at once, without a single invoked actor', () => {
    const machine = createStorageOperationMachine({ validate: () => ({}), authorizeCached: () => true, read: () => 'value' })
    const actor = createActor(machine, { input: { op: 'retrieve', namespace: 'docs', holder: 'peer', request: {} } })
    actor.start()
    expect(actor.getSnapshot().status).toBe('done')
    expect(actor.getSnapshot().output).toEqual({ status: 'done', value: 'value' })
  })

  it('a read goes through reading, never writing', async () => {
    const { output, calls } = await run('retrieve', { validate: 'ok', authorize: 'ok', access: 'ok' })
    expect(output).toEqual({ status: 'done', value: 'value' })
    expect(calls).toEqual(['validate', 'authorize', 'read'])
  })

  it('a permission denial ends in denied with the typed error and touches no storage', async () => {
    const { output, calls } = await run('delete', { validate: 'ok', authorize: 'denied', access: 'ok' })
    expect(output.status).toBe('denied')
    expect(output.error?.code).toBe('PERMISSION_DENIED')
    expect(calls).toEqual(['validate', 'authorize'])
  })

  it('invalid input fails before the capability is even looked at', async () => {
    const { output, calls } = await run('store', { validate: 'invalid', authorize: 'ok', access: 'ok' })
    expect(output.status).toBe('failed')
    expect(output.error?.code).toBe('INVALID_INPUT')
    expect(calls).toEqual(['validate'])
  })

  it('a storage failure ends in failed, keeping its code', async () => {
    const { output } = await run('storeMany', { validate: 'ok', authorize: 'ok', access: 'broken' })
    expect(output).toMatchObject({ status: 'failed', error: { code: 'STORAGE' } })
  })

  it('unprovided actors fail loudly instead of pretending to store', async () => {
    const actor = createActor(storageOperationMachine, { input: { op: 'store', namespace: 'n', holder: 'p', request: {} } })
    actor.start()
    const output = await toPromise(actor)
    expect(output.status).toBe('failed')
    expect(output.error?.code).toBe('CONFIG_INVALID')
    expect(output.error?.message).toMatch(/not provided/)
  })

  it('law: storage is accessed iff validation and authorization both succeeded', async () => {
    const step = fc.constantFrom<Step>('ok', 'invalid', 'denied', 'broken')
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...STORAGE_OPERATIONS),
        step,
        step,
        step,
        fc.constantFrom<Verdict>('cached', 'verify'),
        async (op, validate, authorize, access, verdict) => {
          const { output, calls } = await run(op, { validate, authorize, access, verdict })
          const accessed = calls.includes('write') || calls.includes('read')
          expect(accessed).toBe(validate === 'ok' && authorize === 'ok')
          if (accessed) expect(calls.at(-1)).toBe(isReadOperation(op) ? 'read' : 'write')
          // a denial at validation is not an authorization verdict: only the authorize step can deny
          const expected =
            validate !== 'ok' ? 'failed' : authorize === 'denied' ? 'denied' : authorize !== 'ok' ? 'failed' : access === 'ok' ? 'done' : 'failed'
          expect(output.status).toBe(expected)
        },
      ),
      { numRuns: 200 },
    )
  })
})
