import { describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { createActor, fromPromise, toPromise } from 'xstate'
import { InvalidInput, PermissionDenied, StorageError } from '../../effects/errors.js'
import { STORAGE_OPERATIONS, isReadOperation, storageOperationMachine, type StorageOperation, type StorageOpInput } from '../../machines/storage.js'

type Step = 'ok' | 'invalid' | 'denied' | 'broken'

const failure = (step: Step): Error => (step === 'invalid' ? new InvalidInput('bad') : step === 'denied' ? new PermissionDenied('no') : new StorageError('disk'))

function run(op: StorageOperation, steps: { validate: Step; authorize: Step; access: Step }) {
  const calls: string[] = []
  const states: string[] = []
  const act = (name: string, step: Step, value: unknown) =>
    fromPromise<unknown, unknown>(async () => {
      calls.push(name)
      if (step !== 'ok') throw failure(step)
      return value
    })
  const machine = storageOperationMachine.provide({
    actors: {
      validate: act('validate', steps.validate, { checked: true }) as never,
      authorize: act('authorize', steps.authorize, undefined) as never,
      write: act('write', steps.access, 'written') as never,
      read: act('read', steps.access, 'value') as never,
    },
  })
  const actor = createActor(machine, { input: { op, namespace: 'docs', holder: 'peer', request: { key: 'k' } } satisfies StorageOpInput })
  actor.subscribe((s) => states.push(String(s.value)))
  actor.start()
  return toPromise(actor).then((output) => ({ output, calls, states }))
}

describe('storage operation chart', () => {
  it('a write goes validating → authorizing → writing → done and returns the write result', async () => {
    const { output, calls, states } = await run('store', { validate: 'ok', authorize: 'ok', access: 'ok' })
    expect(output).toEqual({ status: 'done', value: 'written' })
    expect(calls).toEqual(['validate', 'authorize', 'write'])
    expect(states).toEqual(['validating', 'authorizing', 'writing', 'done'])
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
    expect(output.error?.message).toMatch(/not provided/)
  })

  it('law: storage is accessed iff validation and authorization both succeeded', async () => {
    const step = fc.constantFrom<Step>('ok', 'invalid', 'denied', 'broken')
    await fc.assert(
      fc.asyncProperty(fc.constantFrom(...STORAGE_OPERATIONS), step, step, step, async (op, validate, authorize, access) => {
        const { output, calls } = await run(op, { validate, authorize, access })
        const accessed = calls.includes('write') || calls.includes('read')
        expect(accessed).toBe(validate === 'ok' && authorize === 'ok')
        if (accessed) expect(calls.at(-1)).toBe(isReadOperation(op) ? 'read' : 'write')
        // a denial at validation is not an authorization verdict: only the authorize step can deny
        const expected = validate !== 'ok' ? 'failed' : authorize === 'denied' ? 'denied' : authorize !== 'ok' ? 'failed' : access === 'ok' ? 'done' : 'failed'
        expect(output.status).toBe(expected)
      }),
      { numRuns: 100 },
    )
  })
})
