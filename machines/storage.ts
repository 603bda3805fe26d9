// Storage coordination (pattern 3): the life of one storage operation, local or from a peer.
//
//   validating ──ok──▶ authorizing ──cached verdict──▶ writing | reading ──ok──▶ done
//        │               │      └──no verdict yet──▶ verifying ──ok──┘
//        │               │ PERMISSION_DENIED ───────────┴──────────────▶ denied
//        └──error──▶ failed ◀── any other error (any step) ◀──────────────┘
//
// The capability is checked before anything is read or written: a request reaches `writing` or
// `reading` only through `authorizing`. The machine is pure; its steps are injected. Steps that
// finish at once (validation, a capability verdict already in the verifier's cache, a read) are
// entry actions left by eventless transitions; steps that wait (verifying signatures, a durable
// write) are invoked actors. An invoke costs a child actor and an event round trip, about 40 µs
// each on our machines, which the common operation (cached capability) no longer pays.
import { assign, fromPromise, setup } from 'xstate'
import { errorInfo, type ErrorInfo } from './kernel.js'

export const STORAGE_OPERATIONS = ['store', 'storeMany', 'delete', 'merge', 'retrieve', 'retrieveMany', 'list', 'declare'] as const
export type StorageOperation = (typeof STORAGE_OPERATIONS)[number]

const READS: ReadonlySet<StorageOperation> = new Set(['retrieve', 'retrieveMany', 'list'])
export const isReadOperation = (op: StorageOperation): boolean => READS.has(op)

export interface StorageOpInput {
  op: StorageOperation
  /** user namespace the operation touches */
  namespace: string
  /** peer exercising the capability: this peer for local calls, the authenticated sender for remote ones */
  holder: string
  /** the raw request; only `validate` looks inside */
  request: unknown
}

/** What every step after validation receives. */
export interface ValidatedOp {
  op: StorageOperation
  namespace: string
  holder: string
  /** the request as `validate` returned it */
  validated: unknown
}

/** The steps that finish at once; each may throw a typed error. */
export interface StorageSteps {
  /** the request checked and normalized */
  validate(input: StorageOpInput): unknown
  /** true: authorized by a verdict already at hand; false: the signatures need verifying (the `authorize` actor) */
  authorizeCached(op: ValidatedOp): boolean
  read(op: ValidatedOp): unknown
}

export type StorageOpStatus = 'done' | 'denied' | 'failed'
export type StorageOpOutput = { status: StorageOpStatus; value?: unknown; error?: ErrorInfo }

type Context = StorageOpInput & { validated: unknown; granted: boolean; value: unknown; error: ErrorInfo | null; status: StorageOpStatus | null }

const notProvided = (name: string) => () => {
  throw Object.assign(new Error(`storage step '${name}' not provided`), { code: 'CONFIG_INVALID' })
}

const missing = <O, I>(name: string) => fromPromise<O, I>(async () => notProvided(name)())

const validatedOf = (c: Context): ValidatedOp => ({ op: c.op, namespace: c.namespace, holder: c.holder, validated: c.validated })

/** A step's result merged into the context, or its error; only authorization may deny. */
function attempt(mayDeny: boolean, step: () => Partial<Context>): Partial<Context> {
  try {
    return step()
  } catch (error) {
    const info = errorInfo(error)
    return { status: mayDeny && info.code === 'PERMISSION_DENIED' ? 'denied' : 'failed', error: info }
  }
}

/**
 * The chart with its immediate steps bound to `steps`; the waiting ones (`authorize`, `write`)
 * come through `provide({ actors })` as usual. (Steps are bound here rather than provided as
 * actions, so their assigns are typed against this chart's own setup.)
 */
export function createStorageOperationMachine(steps: StorageSteps) {
  return setup({
    types: {
      input: {} as StorageOpInput,
      context: {} as Context,
      output: {} as StorageOpOutput,
    },
    actors: {
      authorize: missing<unknown, ValidatedOp>('authorize'),
      write: missing<unknown, ValidatedOp>('write'),
    },
    actions: {
      validate: assign(({ context }) =>
        attempt(false, () => ({
          validated: steps.validate({ op: context.op, namespace: context.namespace, holder: context.holder, request: context.request }),
        })),
      ),
      authorizeCached: assign(({ context }) => attempt(true, () => ({ granted: steps.authorizeCached(validatedOf(context)) }))),
      read: assign(({ context }) => attempt(false, () => ({ value: steps.read(validatedOf(context)) }))),
      fail: assign(({ event }) => ({ status: 'failed' as const, error: errorInfo((event as { error?: unknown }).error) })),
      deny: assign(({ event }) => ({ status: 'denied' as const, error: errorInfo((event as { error?: unknown }).error) })),
    },
    guards: {
      isRead: ({ context }) => isReadOperation(context.op),
      isDenial: ({ event }) => errorInfo((event as { error?: unknown }).error).code === 'PERMISSION_DENIED',
      stepFailed: ({ context }) => context.status === 'failed',
      stepDenied: ({ context }) => context.status === 'denied',
      needsVerifying: ({ context }) => !context.granted,
    },
  }).createMachine({
    id: 'storageOperation',
    context: ({ input }) => ({ ...input, validated: undefined, granted: false, value: undefined, error: null, status: null }),
    initial: 'validating',
    states: {
      validating: {
        entry: 'validate',
        always: [{ guard: 'stepFailed', target: 'failed' }, { target: 'authorizing' }],
      },
      authorizing: {
        entry: 'authorizeCached',
        always: [
          { guard: 'stepDenied', target: 'denied' },
          { guard: 'stepFailed', target: 'failed' },
          { guard: 'needsVerifying', target: 'verifying' },
          { guard: 'isRead', target: 'reading' },
          { target: 'writing' },
        ],
      },
      verifying: {
        invoke: {
          id: 'authorize',
          src: 'authorize',
          input: ({ context }) => validatedOf(context),
          onDone: [{ guard: 'isRead', target: 'reading' }, { target: 'writing' }],
          onError: [
            { guard: 'isDenial', target: 'denied', actions: 'deny' },
            { target: 'failed', actions: 'fail' },
          ],
        },
      },
      writing: {
        invoke: {
          id: 'write',
          src: 'write',
          input: ({ context }) => validatedOf(context),
          onDone: { target: 'done', actions: assign({ value: ({ event }) => event.output }) },
          onError: { target: 'failed', actions: 'fail' },
        },
      },
      reading: {
        entry: 'read',
        always: [{ guard: 'stepFailed', target: 'failed' }, { target: 'done' }],
      },
      done: { type: 'final', entry: assign({ status: 'done' as const }) },
      denied: { type: 'final' },
      failed: { type: 'final' },
    },
    output: ({ context }) => {
      const out: StorageOpOutput = { status: context.status ?? 'failed' }
      if (context.status === 'done') out.value = context.value
      if (context.error) out.error = context.error
      return out
    },
  })
}

/** The chart with no steps bound (each fails with CONFIG_INVALID): for the visualizer and tests. */
export const storageOperationMachine = createStorageOperationMachine({
  validate: notProvided('validate'),
  authorizeCached: notProvided('authorizeCached'),
  read: notProvided('read'),
})
