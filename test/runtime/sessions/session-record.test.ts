// A session's stored record: its snapshot packed into bytes, read back as it was written.
import { describe, expect, it } from 'vitest'
import { decodeSessionRecord, encodeSessionRecord } from '../../../runtime/sessions/session-record.js'

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
