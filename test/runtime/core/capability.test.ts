import { beforeAll, describe, expect, it } from 'vitest'
import fc from 'fast-check'
import { Ed25519Crypto } from '../../../effects/crypto/ed25519.js'
import type { Crypto } from '../../../effects/crypto/index.js'
import type { Clock } from '../../../effects/time/index.js'
import { AuraError, InvalidInput, LimitExceeded, PermissionDenied } from '../../../effects/errors.js'
import {
  CapabilityVerifier,
  MAX_CHAIN_DEPTH,
  RIGHTS,
  RevocationList,
  authorize,
  capabilityDigest,
  delegate,
  issueRoot,
  verifyCapability,
  type CapabilityToken,
  type Right,
  type VerifyOptions,
} from '../../../runtime/core/capability.js'
import { canonicalRights, rightsMask, signingBytes, toHex } from '../../../runtime/core/capability-codec.js'

const T0 = 1_700_000_000_000
const HOUR = 3_600_000

// A clock the tests move by hand; only now() is read by verification.
function manualClock(start = T0): Clock & { set(t: number): void } {
  let t = start
  return {
    now: () => t,
    set: (next: number) => {
      t = next
    },
    setTimeout: () => undefined,
    clearTimeout: () => undefined,
    sleep: async () => undefined,
  }
}

const seedOf = (n: number): Uint8Array => new Uint8Array(32).fill(n)

let owner: Crypto
let alice: Crypto
let bob: Crypto
let carol: Crypto
let mallory: Crypto
let stranger: Crypto

beforeAll(async () => {
  ;[owner, alice, bob, carol, mallory, stranger] = await Promise.all([1, 2, 3, 4, 5, 6].map(async (n) => (await Ed25519Crypto.fromSeed(seedOf(n))) as Crypto))
})

const optionsAt = (now: number, extra: Partial<VerifyOptions> = {}): VerifyOptions => ({
  crypto: owner,
  clock: { now: () => now },
  trustedRoots: new Set([owner.peerId]),
  ...extra,
})

async function rejection(p: Promise<unknown>): Promise<AuraError> {
  try {
    await p
  } catch (err) {
    if (err instanceof AuraError) return err
    throw err
  }
  throw new Error('expected a rejection')
}

async function expectDenied(p: Promise<unknown>, reason?: string): Promise<AuraError> {
  const err = await rejection(p)
  expect(err).toBeInstanceOf(PermissionDenied)
  expect(err.code).toBe('PERMISSION_DENIED')
  if (reason !== undefined) expect(err.details.reason).toBe(reason)
  return err
}

const clone = <T>(v: T): T => JSON.parse(JSON.stringify(v)) as T

/** The link `depth` steps above the leaf (0 = the leaf itself). */
function linkAt(token: CapabilityToken, depth: number): CapabilityToken {
  let t = token
  for (let i = 0; i < depth; i++) t = t.parent!
  return t
}

/** owner → alice (read, write, delete on app/*) → bob (read, write on app/users/*) → carol (read on app/users/alice) */
async function sampleChain(): Promise<CapabilityToken> {
  const root = await issueRoot(owner, {
    id: 'root-1',
    audience: alice.peerId,
    namespace: 'app/*',
    rights: ['delete', 'read', 'write'],
    notBefore: T0 - HOUR,
    expiresAt: T0 + 10 * HOUR,
  })
  const mid = await delegate(alice, root, { id: 'mid-1', audience: bob.peerId, namespace: 'app/users/*', rights: ['read', 'write'], expiresAt: T0 + 5 * HOUR })
  return delegate(bob, mid, { id: 'leaf-1', audience: carol.peerId, namespace: 'app/users/alice', rights: ['read'] })
}

describe('issuing and delegating', () => {
  it('a root token verifies and grants its rights to its audience only', async () => {
    const root = await issueRoot(owner, { audience: alice.peerId, namespace: 'app/*', rights: ['write', 'read'], notBefore: T0, expiresAt: T0 + HOUR })
    expect(root.issuer).toBe(owner.peerId)
    expect(root.rights).toEqual(['read', 'write'])
    expect(root.signature).toMatch(/^[0-9a-f]{128}$/)
    expect(JSON.parse(JSON.stringify(root))).toEqual(root)

    const { effective } = await verifyCapability(root, optionsAt(T0))
    expect(effective).toMatchObject({
      audience: alice.peerId,
      namespace: 'app/*',
      rights: ['read', 'write'],
      notBefore: T0,
      expiresAt: T0 + HOUR,
      root: owner.peerId,
      chain: [root.id],
    })

    const ok = await authorize(root, { holder: alice.peerId, namespace: 'app/x', right: 'write', ...optionsAt(T0) })
    expect(ok.ok).toBe(true)
    await expectDenied(authorize(root, { holder: bob.peerId, namespace: 'app/x', right: 'read', ...optionsAt(T0) }), 'audience-mismatch')
    await expectDenied(authorize(root, { holder: alice.peerId, namespace: 'app/x', right: 'delete', ...optionsAt(T0) }), 'right-not-granted')
    await expectDenied(authorize(root, { holder: alice.peerId, namespace: 'other', right: 'read', ...optionsAt(T0) }), 'namespace-not-covered')
    // 'app/*' covers names starting with 'app/', not 'app' itself
    await expectDenied(authorize(root, { holder: alice.peerId, namespace: 'app', right: 'read', ...optionsAt(T0) }), 'namespace-not-covered')
  })

  it('admin implies every right and * covers every namespace', async () => {
    const root = await issueRoot(owner, { audience: alice.peerId, namespace: '*', rights: ['admin'], notBefore: T0, expiresAt: T0 + HOUR })
    for (const right of RIGHTS) {
      const { effective } = await authorize(root, { holder: alice.peerId, namespace: `ns-${right}`, right, ...optionsAt(T0) })
      expect(effective.rights).toEqual(['admin'])
    }
    // a holder of admin may delegate any narrower right
    const child = await delegate(alice, root, { audience: bob.peerId, namespace: 'logs', rights: ['replicate'] })
    await authorize(child, { holder: bob.peerId, namespace: 'logs', right: 'replicate', ...optionsAt(T0) })
    await expectDenied(authorize(child, { holder: bob.peerId, namespace: 'logs', right: 'read', ...optionsAt(T0) }), 'right-not-granted')
  })

  it('a three-link chain verifies to its leaf, narrowed at every step', async () => {
    const leaf = await sampleChain()
    const { effective } = await authorize(leaf, { holder: carol.peerId, namespace: 'app/users/alice', right: 'read', ...optionsAt(T0) })
    expect(effective).toMatchObject({
      audience: carol.peerId,
      namespace: 'app/users/alice',
      rights: ['read'],
      notBefore: T0 - HOUR,
      expiresAt: T0 + 5 * HOUR,
      chain: ['root-1', 'mid-1', 'leaf-1'],
    })
    await expectDenied(authorize(leaf, { holder: carol.peerId, namespace: 'app/users/alice', right: 'write', ...optionsAt(T0) }), 'right-not-granted')
    await expectDenied(authorize(leaf, { holder: carol.peerId, namespace: 'app/users/bob', right: 'read', ...optionsAt(T0) }), 'namespace-not-covered')
  })

  it('omitted delegation fields inherit the parent, so a plain hand-over keeps the same grant', async () => {
    const root = await issueRoot(owner, { audience: alice.peerId, namespace: 'docs/*', rights: ['read', 'replicate'], notBefore: T0, expiresAt: T0 + HOUR })
    const child = await delegate(alice, root, { audience: bob.peerId })
    expect(child).toMatchObject({
      issuer: alice.peerId,
      audience: bob.peerId,
      namespace: 'docs/*',
      rights: ['read', 'replicate'],
      notBefore: T0,
      expiresAt: T0 + HOUR,
    })
    expect(child.parent).toEqual(root)
  })

  it('only the audience of a parent may delegate it', async () => {
    const root = await issueRoot(owner, { audience: alice.peerId, namespace: 'app/*', rights: ['read'], notBefore: T0, expiresAt: T0 + HOUR })
    await expectDenied(delegate(mallory, root, { audience: mallory.peerId }), 'not-audience')
    await expectDenied(delegate(owner, root, { audience: bob.peerId }), 'not-audience')
  })

  it('a request wider than the parent is refused, not narrowed', async () => {
    const root = await issueRoot(owner, { audience: alice.peerId, namespace: 'app/*', rights: ['read', 'write'], notBefore: T0, expiresAt: T0 + HOUR })
    const wider: Array<[Parameters<typeof delegate>[2], string]> = [
      [{ audience: bob.peerId, rights: ['read', 'delete'] }, 'rights'],
      [{ audience: bob.peerId, rights: ['admin'] }, 'rights'],
      [{ audience: bob.peerId, namespace: '*' }, 'namespace'],
      [{ audience: bob.peerId, namespace: 'ap*' }, 'namespace'],
      [{ audience: bob.peerId, namespace: 'app' }, 'namespace'],
      [{ audience: bob.peerId, namespace: 'other/x' }, 'namespace'],
      [{ audience: bob.peerId, notBefore: T0 - 1 }, 'notBefore'],
      [{ audience: bob.peerId, expiresAt: T0 + HOUR + 1 }, 'expiresAt'],
    ]
    for (const [request, field] of wider) {
      const err = await expectDenied(delegate(alice, root, request), 'wider-than-parent')
      expect(err.details.field).toBe(field)
    }
    const narrow = await delegate(alice, root, { audience: bob.peerId, namespace: 'app/a*', rights: ['write'], notBefore: T0 + 1, expiresAt: T0 + 2 })
    expect(narrow).toMatchObject({ namespace: 'app/a*', rights: ['write'], notBefore: T0 + 1, expiresAt: T0 + 2 })
  })

  it('bad options are InvalidInput; delegating past the depth limit is LimitExceeded', async () => {
    const base = { audience: alice.peerId, namespace: 'app/*', rights: ['read'] as Right[], notBefore: T0, expiresAt: T0 + HOUR }
    for (const bad of [
      { ...base, rights: [] },
      { ...base, rights: ['fly' as Right] },
      { ...base, namespace: 'a*b' },
      { ...base, namespace: '' },
      { ...base, namespace: 'has space' },
      { ...base, expiresAt: T0 },
      { ...base, notBefore: 1.5 },
      { ...base, audience: 'not a peer id!' },
      { ...base, id: 'x'.repeat(200) },
    ]) {
      expect(await rejection(issueRoot(owner, bad))).toBeInstanceOf(InvalidInput)
    }
    const root = await issueRoot(owner, base)
    expect(await rejection(delegate(alice, root, { audience: bob.peerId, notBefore: T0 + 10, expiresAt: T0 + 10 }))).toBeInstanceOf(InvalidInput)

    const peers = [alice, bob, carol, mallory]
    let token = root
    for (let depth = 1; depth < MAX_CHAIN_DEPTH; depth++) {
      token = await delegate(peers[(depth - 1) % 4]!, token, { audience: peers[depth % 4]!.peerId })
    }
    const holder = peers[(MAX_CHAIN_DEPTH - 1) % 4]!
    const { effective } = await authorize(token, { holder: holder.peerId, namespace: 'app/x', right: 'read', ...optionsAt(T0) })
    expect(effective.chain).toHaveLength(MAX_CHAIN_DEPTH)
    expect(await rejection(delegate(holder, token, { audience: owner.peerId }))).toBeInstanceOf(LimitExceeded)
  })
})

describe('canonical encoding', () => {
  it('is independent of how rights were listed and binds every field', async () => {
    expect(canonicalRights(['admin', 'read', 'read', 'write'])).toEqual(['read', 'write', 'admin'])
    expect(rightsMask(['read', 'replicate'])).toBe(0x09)
    const fields = { v: 1 as const, id: 'i', issuer: 'P', audience: 'Q', namespace: 'n*', rights: ['read', 'admin'] as Right[], notBefore: 1, expiresAt: 258 }
    const bytes = signingBytes(fields, undefined)
    expect(new TextDecoder().decode(bytes.subarray(0, 8))).toBe('AURACAP1')
    // magic, v, four u16-prefixed one/two-byte strings, mask, two u64, hasParent
    expect(Array.from(bytes.subarray(8))).toEqual([1, 0, 1, 105, 0, 1, 80, 0, 1, 81, 0, 2, 110, 42, 0x11, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 1, 2, 0])
    expect(signingBytes({ ...fields, rights: ['admin', 'read'] }, undefined)).toEqual(bytes)
    const withParent = signingBytes(fields, new Uint8Array(32).fill(7))
    expect(withParent.length).toBe(bytes.length + 32)
    expect(withParent[bytes.length - 1]).toBe(1)
  })
})

describe('verification', () => {
  it('honours the validity window of the clock at both edges', async () => {
    const root = await issueRoot(owner, { audience: alice.peerId, namespace: 'app/*', rights: ['read'], notBefore: T0, expiresAt: T0 + HOUR })
    const clock = manualClock(T0 - 1)
    const opts = { crypto: owner, clock, trustedRoots: new Set([owner.peerId]) }
    await expectDenied(verifyCapability(root, opts), 'not-yet-valid')
    clock.set(T0)
    await verifyCapability(root, opts)
    clock.set(T0 + HOUR - 1)
    await verifyCapability(root, opts)
    clock.set(T0 + HOUR)
    await expectDenied(verifyCapability(root, opts), 'expired')
    // an explicit `now` overrides the clock
    await verifyCapability(root, { ...opts, now: T0 + 5 })
  })

  it('a child inside its window is still refused once an ancestor has expired', async () => {
    const leaf = await sampleChain()
    // the middle link expires at T0 + 5h, the root at T0 + 10h; the leaf inherits the middle's window
    await verifyCapability(leaf, optionsAt(T0 + 5 * HOUR - 1))
    await expectDenied(verifyCapability(leaf, optionsAt(T0 + 5 * HOUR)), 'expired')
  })

  it('revoking any link revokes everything below it', async () => {
    const leaf = await sampleChain()
    for (const id of ['root-1', 'mid-1', 'leaf-1']) {
      const revoked = new RevocationList([id])
      const err = await expectDenied(verifyCapability(leaf, optionsAt(T0, { revoked })), 'revoked')
      expect(err.details.id).toBe(id)
    }
    const list = new RevocationList()
    list.add('unrelated')
    expect(list.has('unrelated')).toBe(true)
    expect(list.size).toBe(1)
    await verifyCapability(leaf, optionsAt(T0, { revoked: list }))
  })

  it('roots are only accepted from trusted issuers', async () => {
    const selfIssued = await issueRoot(mallory, { audience: mallory.peerId, namespace: '*', rights: ['admin'], notBefore: T0, expiresAt: T0 + HOUR })
    await expectDenied(verifyCapability(selfIssued, optionsAt(T0)), 'untrusted-root')
    await verifyCapability(selfIssued, optionsAt(T0, { trustedRoots: new Set([mallory.peerId]) }))
  })

  it('a malformed token is PermissionDenied (malformed); a bad request is InvalidInput', async () => {
    const leaf = await sampleChain()
    const missing = clone(leaf) as Partial<CapabilityToken>
    delete missing.audience
    const extra = { ...clone(leaf), note: 'hi' }
    const unsorted = clone(leaf)
    unsorted.parent!.rights = ['write', 'read']
    const duplicated = clone(leaf)
    duplicated.rights = ['read', 'read']
    const upperSig = clone(leaf)
    upperSig.signature = upperSig.signature.toUpperCase()
    const emptyWindow = clone(leaf)
    emptyWindow.expiresAt = emptyWindow.notBefore
    const deep: Record<string, unknown> = { ...clone(leaf) }
    let cursor = deep
    for (let i = 0; i < 20; i++) {
      const next = { ...clone(leaf) } as Record<string, unknown>
      cursor.parent = next
      cursor = next
    }
    for (const bad of [null, 'token', 42, [], {}, missing, extra, unsorted, duplicated, upperSig, emptyWindow, deep, { ...clone(leaf), v: 2 }]) {
      await expectDenied(verifyCapability(bad, optionsAt(T0)), 'malformed')
    }

    const request = { holder: carol.peerId, right: 'read' as Right, ...optionsAt(T0) }
    expect(await rejection(authorize(leaf, { ...request, namespace: 'app/*' }))).toBeInstanceOf(InvalidInput)
    expect(await rejection(authorize(leaf, { ...request, namespace: '' }))).toBeInstanceOf(InvalidInput)
    expect(await rejection(authorize(leaf, { ...request, namespace: 'app/users/alice', right: 'fly' as Right }))).toBeInstanceOf(InvalidInput)
  })

  it('splicing, re-parenting, dropping a link and re-signing with the wrong key are rejected', async () => {
    const leaf = await sampleChain()
    const opts = optionsAt(T0, { trustedRoots: new Set([owner.peerId, stranger.peerId]) })

    // a root with the same grant from another trusted issuer: the middle link signed the original's digest
    const otherRoot = await issueRoot(stranger, {
      id: 'root-1',
      audience: alice.peerId,
      namespace: 'app/*',
      rights: ['read', 'write', 'delete'],
      notBefore: T0 - HOUR,
      expiresAt: T0 + 10 * HOUR,
    })
    const spliced = clone(leaf)
    spliced.parent!.parent = otherRoot
    await expectDenied(verifyCapability(spliced, opts), 'bad-signature')

    // a second, wider root from the same owner to the same audience
    const sibling = await issueRoot(owner, {
      id: 'root-2',
      audience: alice.peerId,
      namespace: '*',
      rights: ['admin'],
      notBefore: T0 - 2 * HOUR,
      expiresAt: T0 + 20 * HOUR,
    })
    const reparented = clone(leaf)
    reparented.parent!.parent = sibling
    await expectDenied(verifyCapability(reparented, opts), 'bad-signature')

    // drop the middle link: carol's token now hangs off alice's root directly
    const shortcut = clone(leaf)
    shortcut.parent = shortcut.parent!.parent
    await expectDenied(verifyCapability(shortcut, opts), 'broken-chain')

    // mallory signs a link that claims bob as its issuer
    const forgedLeaf = await forge(mallory, { ...linkFields(leaf), rights: ['read', 'write'] }, leaf.parent)
    await expectDenied(verifyCapability(forgedLeaf, opts), 'bad-signature')

    // mallory signs honestly as herself under a token she does not hold: the chain breaks at her link
    const stolen = await forge(
      mallory,
      {
        v: 1,
        id: 'stolen',
        issuer: mallory.peerId,
        audience: mallory.peerId,
        namespace: leaf.namespace,
        rights: leaf.rights,
        notBefore: leaf.notBefore,
        expiresAt: leaf.expiresAt,
      },
      leaf,
    )
    await expectDenied(verifyCapability(stolen, opts), 'broken-chain')

    // a root whose issuer is not an ed25519 peer id cannot be checked at all
    const opaque = await forge(owner, {
      v: 1,
      id: 'r',
      issuer: 'abc',
      audience: alice.peerId,
      namespace: '*',
      rights: ['read'],
      notBefore: T0,
      expiresAt: T0 + HOUR,
    })
    await expectDenied(verifyCapability(opaque, optionsAt(T0, { trustedRoots: new Set(['abc']) })), 'malformed')
  })
})

type LinkFields = Omit<CapabilityToken, 'signature' | 'parent'>

/** A link signed by `signer` whatever issuer the fields claim: the attacker's toolkit. */
async function forge(signer: Crypto, fields: LinkFields, parent?: CapabilityToken): Promise<CapabilityToken> {
  const digest = parent ? capabilityDigest(parent, signer.hash) : undefined
  const signature = toHex(await signer.sign(signingBytes(fields, digest)))
  return parent ? { ...fields, parent, signature } : { ...fields, signature }
}

function linkFields(t: CapabilityToken): LinkFields {
  return { v: t.v, id: t.id, issuer: t.issuer, audience: t.audience, namespace: t.namespace, rights: t.rights, notBefore: t.notBefore, expiresAt: t.expiresAt }
}

describe('laws', () => {
  // Small alphabets so generated requests often collide with, nest in, or escape their parent.
  const NAMES = ['a', 'b', 'aa', 'ab', 'ba', 'bb', 'aab', 'aba', 'abb', 'bab']
  const PATTERNS = ['*', 'a*', 'b*', 'aa*', 'ab*', 'ba*']
  const namespaceArb = fc.constantFrom(...NAMES, ...PATTERNS)
  const rightsArb = fc.subarray([...RIGHTS], { minLength: 1 })
  // Every string over {a, b} up to length 4: enough to tell any two generated namespaces apart.
  const UNIVERSE = [''].concat(...[1, 2, 3, 4].map((n) => allStrings(n))).filter((s) => s.length > 0)
  const covers = (pattern: string, name: string): boolean => (pattern.endsWith('*') ? name.startsWith(pattern.slice(0, -1)) : name === pattern)
  const coveredBy = (child: string, parent: string): boolean => UNIVERSE.every((n) => !covers(child, n) || covers(parent, n))
  const implied = (rs: readonly Right[]): Set<Right> => new Set(rs.includes('admin') ? RIGHTS : rs)
  const rightsCovered = (child: readonly Right[], parent: readonly Right[]): boolean => child.every((r) => implied(parent).has(r))

  it('no sequence of delegations yields a capability wider than its root', async () => {
    const peers = () => [alice, bob, carol, mallory, stranger]
    const stepArb = fc.record({
      to: fc.nat(4),
      namespace: fc.option(namespaceArb, { nil: undefined }),
      rights: fc.option(rightsArb, { nil: undefined }),
      notBefore: fc.option(
        fc.integer({ min: -5, max: 5 }).map((k) => T0 + k * 60_000),
        { nil: undefined },
      ),
      expiresAt: fc.option(
        fc.integer({ min: -5, max: 5 }).map((k) => T0 + HOUR + k * 60_000),
        { nil: undefined },
      ),
    })
    await fc.assert(
      fc.asyncProperty(namespaceArb, rightsArb, fc.array(stepArb, { minLength: 1, maxLength: 5 }), async (rootNs, rootRights, steps) => {
        const root = await issueRoot(owner, { audience: alice.peerId, namespace: rootNs, rights: rootRights, notBefore: T0, expiresAt: T0 + HOUR })
        let token = root
        let holder = alice
        for (const step of steps) {
          const to = peers()[step.to]!
          const request = { audience: to.peerId, namespace: step.namespace, rights: step.rights, notBefore: step.notBefore, expiresAt: step.expiresAt }
          const wanted = {
            namespace: step.namespace ?? token.namespace,
            rights: step.rights ?? token.rights,
            notBefore: step.notBefore ?? token.notBefore,
            expiresAt: step.expiresAt ?? token.expiresAt,
          }
          const wider =
            !coveredBy(wanted.namespace, token.namespace) ||
            !rightsCovered(wanted.rights, token.rights) ||
            wanted.notBefore < token.notBefore ||
            wanted.expiresAt > token.expiresAt
          const attempt = delegate(holder, token, request)
          if (wider) {
            await expectDenied(attempt, 'wider-than-parent')
          } else if (wanted.notBefore >= wanted.expiresAt) {
            expect(await rejection(attempt)).toBeInstanceOf(InvalidInput)
          } else {
            token = await attempt
            // the refusal policy: an accepted request is granted exactly, never narrowed behind its back
            expect(token).toMatchObject({
              namespace: wanted.namespace,
              rights: canonicalRights(wanted.rights),
              notBefore: wanted.notBefore,
              expiresAt: wanted.expiresAt,
            })
            holder = to
          }
        }
        const { effective } = await verifyCapability(token, optionsAt(token.notBefore))
        expect(coveredBy(effective.namespace, root.namespace)).toBe(true)
        expect(rightsCovered(effective.rights, root.rights)).toBe(true)
        expect(effective.notBefore).toBeGreaterThanOrEqual(root.notBefore)
        expect(effective.expiresAt).toBeLessThanOrEqual(root.expiresAt)
        expect(effective.audience).toBe(holder.peerId)
      }),
    )
  })

  type Tamper = (link: Record<string, unknown>) => void
  /** Edits of one field of a link (or dropping its parent), leaving its signature as it was. */
  const fieldTampers = (peerIds: string[]): fc.Arbitrary<Tamper>[] => {
    const set =
      (field: string) =>
      (value: unknown): Tamper =>
      (link) => {
        link[field] = value
      }
    const shift =
      (field: string) =>
      (delta: number): Tamper =>
      (link) => {
        link[field] = (link[field] as number) + delta
      }
    const delta = fc.integer({ min: -3 * HOUR, max: 3 * HOUR }).filter((d) => d !== 0)
    return [
      fc.constantFrom(0, 2, '1').map(set('v')),
      fc.stringMatching(/^[a-z0-9-]{1,12}$/).map(set('id')),
      fc.constantFrom(...peerIds).map(set('issuer')),
      fc.constantFrom(...peerIds).map(set('audience')),
      fc.constantFrom('*', 'app/*', 'app/users/*', 'app/users/alice', 'app/users/bob', 'app', 'app/users/al*').map(set('namespace')),
      rightsArb.map(set('rights')),
      delta.map(shift('notBefore')),
      delta.map(shift('expiresAt')),
      fc.constant<Tamper>((link) => {
        delete link.parent
      }),
    ]
  }

  it('every forged or tampered token is rejected', async () => {
    const leaf = await sampleChain()
    const everyone = [owner, alice, bob, carol, mallory, stranger]
    const opts = optionsAt(T0, { trustedRoots: new Set(everyone.map((p) => p.peerId)) })
    const verifier = new CapabilityVerifier({ crypto: owner, clock: { now: () => T0 }, trustedRoots: opts.trustedRoots })
    await verifier.verify(leaf) // the genuine token is cached: a tamper must not ride on its cache entry

    const hexFlip = fc.record({ at: fc.nat(127), by: fc.integer({ min: 1, max: 15 }) }).map(({ at, by }): Tamper => (link) => {
      const sig = link.signature as string
      const digit = ((parseInt(sig[at]!, 16) + by) % 16).toString(16)
      link.signature = sig.slice(0, at) + digit + sig.slice(at + 1)
    })
    const tamperArb: fc.Arbitrary<Tamper> = fc.oneof(...fieldTampers(everyone.map((p) => p.peerId)), hexFlip)
    await fc.assert(
      fc.asyncProperty(fc.nat(2), tamperArb, async (depth, tamper) => {
        const tampered = clone(leaf)
        tamper(linkAt(tampered, depth) as unknown as Record<string, unknown>)
        fc.pre(JSON.stringify(tampered) !== JSON.stringify(leaf))
        await expectDenied(verifyCapability(tampered, opts))
        await expectDenied(verifier.verify(tampered))
      }),
    )
    // and the genuine token is still accepted from the cache afterwards
    const before = verifier.stats.hits
    await verifier.verify(leaf)
    expect(verifier.stats.hits).toBe(before + 1)
  })

  it('a chain signed by its claimed issuers verifies exactly when it is trusted, connected, attenuated and current', async () => {
    // Tampers re-signed with the right keys: what a peer could build by hand without delegate(),
    // so only the semantic checks stand between it and acceptance.
    const leaf = await sampleChain()
    const everyone = [owner, alice, bob, carol, mallory, stranger]
    const keyOf = new Map(everyone.map((p) => [p.peerId, p]))
    const trusted = new Set([owner.peerId])
    const within = (child: string, parent: string): boolean =>
      parent.endsWith('*') ? child.replace(/\*$/, '').startsWith(parent.slice(0, -1)) : child === parent
    const acceptable = (links: CapabilityToken[], now: number): boolean =>
      trusted.has(links[0]!.issuer) &&
      links.every((l) => l.v === 1 && l.notBefore < l.expiresAt && l.notBefore <= now && now < l.expiresAt) &&
      links.every((l, i) => {
        const p = links[i - 1]
        return (
          p === undefined ||
          (l.issuer === p.audience &&
            within(l.namespace, p.namespace) &&
            rightsCovered(l.rights, p.rights) &&
            l.notBefore >= p.notBefore &&
            l.expiresAt <= p.expiresAt)
        )
      })
    let accepted = 0
    await fc.assert(
      fc.asyncProperty(fc.nat(2), fc.oneof(...fieldTampers([...keyOf.keys()])), async (depth, tamper) => {
        const tampered = clone(leaf)
        tamper(linkAt(tampered, depth) as unknown as Record<string, unknown>)
        const links: CapabilityToken[] = []
        for (let t: CapabilityToken | undefined = tampered; t; t = t.parent) links.unshift(t)
        let resigned: CapabilityToken | undefined
        for (const link of links) resigned = await forge(keyOf.get(link.issuer)!, linkFields(link), resigned)
        const chain: CapabilityToken[] = []
        for (let t: CapabilityToken | undefined = resigned; t; t = t.parent) chain.unshift(t)
        if (acceptable(chain, T0)) {
          accepted++
          const { effective } = await verifyCapability(resigned, optionsAt(T0))
          expect(effective.audience).toBe(resigned!.audience)
        } else {
          await expectDenied(verifyCapability(resigned, optionsAt(T0)))
        }
      }),
    )
    // both outcomes were exercised
    expect(accepted).toBeGreaterThan(0)
  })

  it('every link re-signed with a wrong key is rejected, even under honestly re-signed descendants', async () => {
    const leaf = await sampleChain()
    const everyone = [owner, alice, bob, carol, mallory, stranger]
    const keyOf = new Map(everyone.map((p) => [p.peerId, p]))
    const links = [leaf.parent!.parent!, leaf.parent!, leaf]
    await fc.assert(
      fc.asyncProperty(fc.nat(2), fc.constantFrom(...everyone), async (at, signer) => {
        fc.pre(signer.peerId !== links[at]!.issuer)
        let parent: CapabilityToken | undefined
        for (let i = 0; i < links.length; i++) {
          const fields = linkFields(links[i]!)
          parent = await forge(i === at ? signer : keyOf.get(fields.issuer)!, fields, parent)
        }
        const err = await expectDenied(verifyCapability(parent, optionsAt(T0)), 'bad-signature')
        expect(err.details.link).toBe(at)
      }),
    )
  })
})

describe('CapabilityVerifier', () => {
  const setup = async (cacheSize?: number) => {
    const clock = manualClock(T0)
    const revoked = new RevocationList()
    const trustedRoots = new Set([owner.peerId])
    const verifier = new CapabilityVerifier({ crypto: owner, clock, trustedRoots, revoked, cacheSize })
    const leaf = await sampleChain()
    const request = { holder: carol.peerId, namespace: 'app/users/alice', right: 'read' as Right }
    return { clock, revoked, trustedRoots, verifier, leaf, request }
  }

  it('a repeated check is a cache hit with the same verdict', async () => {
    const { verifier, leaf, request } = await setup()
    const first = await verifier.authorize(leaf, request)
    const second = await verifier.authorize(clone(leaf), request)
    expect(second).toBe(first)
    expect(verifier.stats).toEqual({ hits: 1, misses: 1, size: 1 })
    // the grant is still checked per request on a hit
    await expectDenied(verifier.authorize(leaf, { ...request, right: 'write' }), 'right-not-granted')
    await expectDenied(verifier.authorize(leaf, { ...request, holder: bob.peerId }), 'audience-mismatch')
    await expectDenied(verifier.authorize(leaf, { ...request, namespace: 'app/users/bob' }), 'namespace-not-covered')
    expect(verifier.stats.misses).toBe(1)
  })

  it('a cache hit still honours later expiry', async () => {
    const { clock, verifier, leaf, request } = await setup()
    await verifier.authorize(leaf, request)
    clock.set(T0 + 5 * HOUR)
    await expectDenied(verifier.authorize(leaf, request), 'expired')
    expect(verifier.stats.size).toBe(0)
    // a check at an explicit earlier time is not fooled by the cache either way
    await expectDenied(verifier.authorize(leaf, { ...request, now: T0 - 2 * HOUR }), 'not-yet-valid')
  })

  it('a cache hit still honours later revocation of any link and loss of trust in the root', async () => {
    const { revoked, verifier, leaf, request } = await setup()
    await verifier.authorize(leaf, request)
    revoked.add('mid-1')
    await expectDenied(verifier.authorize(leaf, request), 'revoked')

    const fresh = await setup()
    await fresh.verifier.authorize(fresh.leaf, fresh.request)
    fresh.trustedRoots.delete(owner.peerId)
    await expectDenied(fresh.verifier.authorize(fresh.leaf, fresh.request), 'untrusted-root')
    fresh.trustedRoots.add(owner.peerId)
    await fresh.verifier.authorize(fresh.leaf, fresh.request)
    expect(fresh.verifier.stats.misses).toBe(1)
  })

  it('a tampered token carrying a cached genuine signature misses the cache and is rejected', async () => {
    const { verifier, leaf, request } = await setup()
    await verifier.authorize(leaf, request)
    const widened = clone(leaf)
    widened.rights = ['read', 'write']
    await expectDenied(verifier.authorize(widened, { ...request, right: 'write' }), 'bad-signature')
    const padded = { ...clone(leaf), extra: 1 }
    await expectDenied(verifier.authorize(padded, request), 'malformed')
    expect(verifier.stats).toMatchObject({ hits: 0, misses: 3 })
    await verifier.authorize(leaf, request)
    expect(verifier.stats.hits).toBe(1)
  })

  it('the cache is bounded and evicts the least recently used token', async () => {
    const { verifier, request } = await setup(2)
    const tokens = await Promise.all(
      ['r1', 'r2', 'r3'].map((id) =>
        issueRoot(owner, { id, audience: carol.peerId, namespace: 'app/users/alice', rights: ['read'], notBefore: T0, expiresAt: T0 + HOUR }),
      ),
    )
    await verifier.authorize(tokens[0], request)
    await verifier.authorize(tokens[1], request)
    await verifier.authorize(tokens[0], request) // r1 is now the most recently used
    await verifier.authorize(tokens[2], request) // evicts r2
    expect(verifier.stats).toEqual({ hits: 1, misses: 3, size: 2 })
    await verifier.authorize(tokens[0], request)
    expect(verifier.stats.hits).toBe(2)
    await verifier.authorize(tokens[1], request)
    expect(verifier.stats.misses).toBe(4)
  })
})

function allStrings(n: number): string[] {
  return n === 0 ? [''] : allStrings(n - 1).flatMap((s) => [s + 'a', s + 'b'])
}
