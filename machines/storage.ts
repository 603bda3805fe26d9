// Storage coordination (pattern 3): the life of one storage operation, local or from a peer.
//
//   validating ──ok──▶ authorizing ──ok──▶ writing | reading ──ok──▶ done
//        │                  │ PERMISSION_DENIED ──▶ denied
//        └──error──▶ failed ◀┴── other error ◀──────────┘ error
//
// The capability is checked before anything is read or written: a request reaches `writing` or
// `reading` only through `authorizing`. The machine is pure; validation, authorization and the
// storage access are injected actors (the runtime binds them to zod, the CapabilityVerifier and
// the Storage effect), so the same chart runs on LMDB and on memory storage in tests.
import { assign, fromPromise, setup } from 'xstate'
import { errorInfo, type ErrorInfo } from './timeout.js'

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

export type StorageOpStatus = 'done' | 'denied' | 'failed'
export type StorageOpOutput = { status: StorageOpStatus; value?: unknown; error?: ErrorInfo }

type Context = StorageOpInput & { validated: unknown; value: unknown; error: ErrorInfo | null; status: StorageOpStatus | null }

const missing = <O, I>(name: string) =>
  fromPromise<O, I>(async () => {
    throw Object.assign(new Error(`storage actor '${name}' not provided`), { code: 'CONFIG_INVALID' })
  })

const validatedOf = (c: Context): ValidatedOp => ({ op: c.op, namespace: c.namespace, holder: c.holder, validated: c.validated })

export const storageOperationMachine = setup({
  types: {
    input: {} as StorageOpInput,
    context: {} as Context,
    output: {} as StorageOpOutput,
  },
  actors: {
    validate: missing<unknown, StorageOpInput>('validate'),
    authorize: missing<unknown, ValidatedOp>('authorize'),
    write: missing<unknown, ValidatedOp>('write'),
    read: missing<unknown, ValidatedOp>('read'),
  },
  actions: {
    fail: assign(({ event }) => ({ status: 'failed' as const, error: errorInfo((event as { error?: unknown }).error) })),
    deny: assign(({ event }) => ({ status: 'denied' as const, error: errorInfo((event as { error?: unknown }).error) })),
  },
  guards: {
    isRead: ({ context }) => isReadOperation(context.op),
    isDenial: ({ event }) => errorInfo((event as { error?: unknown }).error).code === 'PERMISSION_DENIED',
  },
}).createMachine({
  id: 'storageOperation',
  context: ({ input }) => ({ ...input, validated: undefined, value: undefined, error: null, status: null }),
  initial: 'validating',
  states: {
    validating: {
      invoke: {
        id: 'validate',
        src: 'validate',
        input: ({ context }) => ({ op: context.op, namespace: context.namespace, holder: context.holder, request: context.request }),
        onDone: { target: 'authorizing', actions: assign({ validated: ({ event }) => event.output }) },
        onError: { target: 'failed', actions: 'fail' },
      },
    },
    authorizing: {
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
        onDone: { target: 'done', actions: assign({ status: 'done', value: ({ event }) => event.output }) },
        onError: { target: 'failed', actions: 'fail' },
      },
    },
    reading: {
      invoke: {
        id: 'read',
        src: 'read',
        input: ({ context }) => validatedOf(context),
        onDone: { target: 'done', actions: assign({ status: 'done', value: ({ event }) => event.output }) },
        onError: { target: 'failed', actions: 'fail' },
      },
    },
    done: { type: 'final' },
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
