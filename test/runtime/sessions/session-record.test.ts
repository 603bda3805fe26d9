// A session's stored record: its snapshot packed into bytes, read back as it was written.
import { describe, expect, it } from 'vitest'
import { createActor, fromCallback, fromPromise } from 'xstate'
import { sessionMachine, type ReportInput, type SessionInput, type Verdict } from '../../../machines/session.js'
import { plainMessagePack } from '../../../runtime/core/wire.js'
import { decodeSessionRecord, encodeSessionRecord, persistedSnapshotOf } from '../../../runtime/sessions/session-record.js'

describe('session record', () => {
  it('reads back the snapshot, the protocol and the finish time, binary payloads included', () => {
    const snapshot = {
      status: 'active',
      value: { active: 'running' },
      context: { received: { 0: { peer: { bytes: new Uint8Array([1, 2, 3]) } } }, outcome: null },
    }
    const stored = encodeSessionRecord({ snapshot, protocol: 'ping-pong', finishedAt: 42 })
    // a flat array of bytes and primitives: storage sizes and encodes it without walking the snapshot
    expect(stored.every((part) => part === null || typeof part !== 'object' || part instanceof Uint8Array)).toBe(true)
    const record = decodeSessionRecord(stored)!
    expect(record).toEqual({ snapshot, protocol: 'ping-pong', finishedAt: 42 })
    expect((record.snapshot as typeof snapshot).context.received[0].peer.bytes).toBeInstanceOf(Uint8Array)
  })

  it('leaves out what was not recorded', () => {
    expect(decodeSessionRecord(encodeSessionRecord({ snapshot: { status: 'active', context: {} } }))).toEqual({ snapshot: { status: 'active', context: {} } })
  })

  it('refuses what is not a record instead of throwing', () => {
    for (const value of [null, 'x', { snapshot: {} }, [new Uint8Array([0xc1])], [new Uint8Array([0x93, 1, 2, 3])], [7, null, null]])
      expect(decodeSessionRecord(value)).toBeUndefined()
  })
})

describe('persistedSnapshotOf', () => {
  const participants = [
    { peerId: 'peer-a', role: 'leader' },
    { peerId: 'peer-b', role: 'member' },
  ]
  const input: SessionInput = {
    sessionId: 's-1',
    sessionType: 'test',
    selfPeerId: 'peer-b',
    participants,
    leaderPeerId: 'peer-a',
    createdAt: 0,
    deadlineAt: 1_000,
    verdictGraceMs: 500,
    limits: { maxParticipants: 4, maxMessageBytes: 1024 },
  }
  // a participant whose report never gets an answer, and whose timers are in the test's hands
  const machine = sessionMachine.provide({
    actors: {
      deadlineTimer: fromCallback(() => undefined),
      reportToLeader: fromPromise<Verdict | null, ReportInput>(() => new Promise(() => undefined)),
    },
  })

  it("packs to the same bytes as XState's getPersistedSnapshot, with one child, with three, and done", () => {
    const actor = createActor(machine, { input }).start()
    const same = () => expect(plainMessagePack.pack(persistedSnapshotOf(actor))).toEqual(plainMessagePack.pack(actor.getPersistedSnapshot()))
    same() // created: the deadline timer
    actor.send({ type: 'RECEIVE', step: 0, from: 'peer-a', payload: { bytes: new Uint8Array([1, 2]) } })
    actor.send({ type: 'EXECUTE', protocol: { name: 'p', steps: [{ label: 'hello', from: 'leader', to: ['member'] }] } })
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'reporting' })
    same() // reporting to the leader: its report's actor too
    actor.send({ type: 'DEADLINE' })
    expect(actor.getSnapshot().value).toEqual({ agreeing: 'askingLeader' })
    expect(Object.keys(actor.getSnapshot().children).sort()).toEqual(['askLeader', 'deadline', 'grace'])
    same()
    actor.send({ type: 'GRACE_OVER' })
    expect(actor.getSnapshot().status).toBe('done')
    same() // done: an output, stopped children
  })
})
