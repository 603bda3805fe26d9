// The durable repair intents of replication: written before sending, cleared by acknowledgement,
// and never erased by one replication while another one covering the same key may still fail.
import { describe, expect, it } from 'vitest'
import { MemoryStorage } from '../../../effects/storage/index.js'
import { RepairIntents } from '../../../runtime/storage/repair-intents.js'

describe('RepairIntents', () => {
  it('an entry exists from before the send until its peer acks; a missed peer keeps it', async () => {
    const intents = new RepairIntents(new MemoryStorage())
    const intent = await intents.record('docs', ['a', ['b', 1]], ['p', 'q'])
    expect(intents.pending()).toHaveLength(4)
    expect(intents.idle()).toEqual([])
    await intent.acked('p')
    intent.missed('q')
    expect(intents.pending()).toEqual([
      { peer: 'q', namespace: 'docs', key: 'a' },
      { peer: 'q', namespace: 'docs', key: ['b', 1] },
    ])
    expect(intents.idle()).toEqual(intents.pending())
  })

  it("one replication's ack does not erase an entry another in-flight replication of the same key still needs", async () => {
    const intents = new RepairIntents(new MemoryStorage())
    const first = await intents.record('docs', ['k'], ['p'])
    const second = await intents.record('docs', ['k'], ['p'])
    await first.acked('p')
    expect(intents.pending()).toEqual([{ peer: 'p', namespace: 'docs', key: 'k' }])
    second.missed('p')
    expect(intents.pending()).toEqual([{ peer: 'p', namespace: 'docs', key: 'k' }])
    // a later replication that gets through clears it
    const third = await intents.record('docs', ['k'], ['p'])
    await third.acked('p')
    await third.acked('p') // settling a peer twice changes nothing
    expect(intents.pending()).toEqual([])
  })
})
