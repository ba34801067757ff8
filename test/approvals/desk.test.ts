/**
 * The approvals store against a real PostgreSQL (fresh database, migrations applied) and a frozen
 * clock: binding, single use under a race, expiry of requests and approvals, denials that stick,
 * one notification per new request, and who may decide.
 */
import { createHash, randomBytes } from 'node:crypto';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { AuditLineage } from '../../src/audit/event.ts';
import type { Approval } from '../../src/approvals/approval.ts';
import type { ApprovalRequestInput } from '../../src/approvals/desk.ts';
import { createApprovalDesk, type ApprovalStore } from '../../src/approvals/store.ts';
import { BatonError } from '../../src/errors.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

const T0 = new Date('2026-12-04T10:00:00.000Z');
let clock = T0;
const advance = (seconds: number) => (clock = new Date(clock.getTime() + seconds * 1000));

let testDb: TestDatabase;
let desk: ApprovalStore;
let notified: Approval[];

const rid = () => randomBytes(64).toString('hex');
const sha = (s: string) => createHash('sha256').update(s).digest('hex');

const lineage = (root: string, last: string): AuditLineage => [
  { depth: 0, subject: 'alice', issuer: 'https://idp.example', agent: 'cli', constraints: {}, revocationId: root },
  { depth: 1, delegatedTo: 'helper-1', purpose: 'clean up', constraints: { requireApproval: ['delete'] }, revocationId: last },
];

function request(statement = 'DELETE FROM orders'): ApprovalRequestInput {
  const root = rid();
  const last = rid();
  return {
    binding: { revocationId: last, statementHash: sha(statement) },
    revocationIds: [root, last],
    upstream: 'appdb',
    statement,
    normalized: statement,
    accesses: [{ resource: 'pg:appdb/public.orders', operation: 'delete' }],
    rules: ['unqualified-delete'],
    lineage: lineage(root, last),
  };
}

const bob = { subject: 'bob', lineage: [{ depth: 0, subject: 'bob', agent: 'cli', constraints: {}, revocationId: rid() }] };

async function code(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e instanceof BatonError ? e.code : (e as Error).name;
  }
}

beforeAll(async () => {
  testDb = await createTestDatabase('approvals_desk');
});
afterAll(async () => testDb?.drop());
beforeEach(() => {
  clock = T0;
  notified = [];
  desk = createApprovalDesk({ pool: testDb.pool, policy: { ttl: 900, pending_ttl: 3600 }, publicUrl: 'https://baton.example/', now: () => clock, notify: (a) => notified.push(a) });
});

describe('admit', () => {
  it('creates one pending request per binding, notifies once, and reuses it', async () => {
    const input = request();
    const first = await desk.admit(input);
    expect(first).toMatchObject({ state: 'pending' });
    if (first.state !== 'pending') throw new Error('unreachable');
    expect(first.id).toMatch(/^apr_[A-Za-z0-9_-]{22}$/);
    expect(first.url).toBe(`https://baton.example/v1/approvals/${first.id}`);
    expect(await desk.admit(input)).toEqual(first);
    // two sessions asking at once share it too
    const racing = await Promise.all([desk.admit(input), desk.admit(input)]);
    expect(racing).toEqual([first, first]);
    expect(notified.map((a) => a.id)).toEqual([first.id]);
    expect(notified[0]).toMatchObject({ state: 'pending', upstream: 'appdb', statement: 'DELETE FROM orders', rules: ['unqualified-delete'], expiresAt: '2026-12-04T11:00:00.000Z' });
  });

  it('concurrent identical requests create a single row', async () => {
    const input = request('DELETE FROM order_items');
    const results = await Promise.all(Array.from({ length: 6 }, () => desk.admit(input)));
    expect(new Set(results.map((r) => r.id)).size).toBe(1);
    expect(notified).toHaveLength(1);
  });

  it('an approval is used exactly once, by exactly one of two racing sessions', async () => {
    const input = request();
    const pending = await desk.admit(input);
    const approved = await desk.approve(pending.id, bob, 'looks right');
    expect(approved).toMatchObject({ state: 'approved', decidedBy: 'bob', reason: 'looks right', approvedUntil: '2026-12-04T10:15:00.000Z' });

    const [a, b] = await Promise.all([desk.admit(input), desk.admit(input)]);
    const winners = [a, b].filter((r) => r.state === 'approved');
    expect(winners).toEqual([{ state: 'approved', id: pending.id, approver: 'bob' }]);
    const loser = [a, b].find((r) => r.state !== 'approved')!;
    // the loser (and everyone after) needs a new approval: a new pending request
    expect(loser).toMatchObject({ state: 'pending' });
    expect(loser.id).not.toBe(pending.id);
    expect(await desk.get(pending.id)).toMatchObject({ state: 'used', usedAt: T0.toISOString() });
    expect(await desk.admit(input)).toEqual(loser);
  });

  it('an approval fits only its exact binding: another statement or another block does not consume it', async () => {
    const input = request();
    const pending = await desk.admit(input);
    await desk.approve(pending.id, bob);
    const otherStatement = { ...input, binding: { ...input.binding, statementHash: sha('DELETE FROM orders;') }, statement: 'DELETE FROM orders;' };
    expect(await desk.admit(otherStatement)).toMatchObject({ state: 'pending' });
    // a child of the requesting token (one more block: another last revocation id)
    const child = rid();
    const childInput = { ...input, binding: { ...input.binding, revocationId: child }, revocationIds: [...input.revocationIds, child] };
    expect(await desk.admit(childInput)).toMatchObject({ state: 'pending' });
    // the parent (its last block is the root)
    const parentInput = { ...input, binding: { ...input.binding, revocationId: input.revocationIds[0]! }, revocationIds: [input.revocationIds[0]!] };
    expect(await desk.admit(parentInput)).toMatchObject({ state: 'pending' });
    expect(await desk.get(pending.id)).toMatchObject({ state: 'approved' });
    expect(await desk.admit(input)).toEqual({ state: 'approved', id: pending.id, approver: 'bob' });
  });

  it('an approval not used within the ttl expires; a new request follows', async () => {
    const input = request();
    const pending = await desk.admit(input);
    await desk.approve(pending.id, bob);
    advance(900);
    expect(await desk.get(pending.id)).toMatchObject({ state: 'expired' });
    const next = await desk.admit(input);
    expect(next).toMatchObject({ state: 'pending' });
    expect(next.id).not.toBe(pending.id);
    expect((await desk.list('expired')).map((a) => a.id)).toContain(pending.id);
    expect((await desk.list('approved')).map((a) => a.id)).not.toContain(pending.id);
  });

  it('a pending request expires after pending_ttl: it can no longer be decided, and a new one is made', async () => {
    const input = request();
    const pending = await desk.admit(input);
    advance(3599);
    expect(await desk.get(pending.id)).toMatchObject({ state: 'pending' });
    advance(1);
    expect(await desk.get(pending.id)).toMatchObject({ state: 'expired' });
    expect(await code(desk.approve(pending.id, bob))).toBe('BATON_ERR_APPROVAL_CONFLICT');
    const next = await desk.admit(input);
    expect(next.state).toBe('pending');
    expect(next.id).not.toBe(pending.id);
    expect(notified).toHaveLength(2);
    const pendingIds = (await desk.list('pending')).map((a) => a.id);
    expect(pendingIds).toContain(next.id);
    expect(pendingIds).not.toContain(pending.id);
  });

  it('a pending request nobody looked at still expires: the next admit makes a new one', async () => {
    const input = request();
    const first = await desk.admit(input);
    advance(3600);
    const next = await desk.admit(input);
    expect(next.state).toBe('pending');
    expect(next.id).not.toBe(first.id);
  });

  it('a denial sticks for its binding until the request would have expired', async () => {
    const input = request();
    const pending = await desk.admit(input);
    advance(60);
    await desk.deny(pending.id, bob, 'not during business hours');
    expect(await desk.admit(input)).toEqual({ state: 'denied', id: pending.id, reason: 'not during business hours' });
    advance(3540);
    const next = await desk.admit(input);
    expect(next.state).toBe('pending');
    expect((await desk.list('denied')).map((a) => a.id)).toContain(pending.id);
  });

  it('refuses malformed requests as caller misuse', async () => {
    const input = request();
    expect(await code(desk.admit({ ...input, binding: { ...input.binding, statementHash: 'nope' } }))).toBe('TypeError');
    expect(await code(desk.admit({ ...input, statement: 'x'.repeat(100_001) }))).toBe('TypeError');
  });

  it('fails closed when the store is unreachable', async () => {
    const db = await createTestDatabase('approvals_gone');
    const gone = createApprovalDesk({ pool: db.pool, policy: { ttl: 900, pending_ttl: 3600 }, publicUrl: 'http://x' });
    await db.drop();
    await expect(gone.admit(request())).rejects.toThrow();
  });
});

describe('decisions', () => {
  it('nobody in the requesting lineage may decide: the requester, the agent, a delegate', async () => {
    const pending = await desk.admit(request());
    const as = (subject: string) => ({ subject, lineage: [{ depth: 0, subject, constraints: {}, revocationId: rid() }] });
    for (const [who, why] of [
      ['alice', /the requester/],
      ['ALICE ', /the requester/],
      ['cli', /requesting agent/],
      ['helper-1', /a delegate in the requesting chain \(link 1\)/],
    ] as const) {
      const err = await desk.approve(pending.id, as(who)).catch((e: BatonError) => e);
      expect(err).toBeInstanceOf(BatonError);
      expect((err as BatonError).code).toBe('BATON_ERR_FORBIDDEN');
      expect((err as BatonError).message).toMatch(why);
    }
    expect(await desk.get(pending.id)).toMatchObject({ state: 'pending' });
  });

  it('a request is decided once; denial needs a reason; unknown ids are 404', async () => {
    const pending = await desk.admit(request());
    expect(await code(desk.deny(pending.id, bob, '  '))).toBe('BATON_ERR_INVALID_REQUEST');
    await desk.deny(pending.id, bob, 'no');
    expect(await code(desk.approve(pending.id, bob))).toBe('BATON_ERR_APPROVAL_CONFLICT');
    expect(await code(desk.deny(pending.id, bob, 'again'))).toBe('BATON_ERR_APPROVAL_CONFLICT');
    expect(await code(desk.approve('apr_AAAAAAAAAAAAAAAAAAAAAA', bob))).toBe('BATON_ERR_NOT_FOUND');
    expect(await code(desk.approve('nope', bob))).toBe('BATON_ERR_NOT_FOUND');
  });

  it('two approvers at once: one decides, the other gets a conflict', async () => {
    const pending = await desk.admit(request());
    const carol = { subject: 'carol', lineage: [{ depth: 0, subject: 'carol', constraints: {}, revocationId: rid() }] };
    const results = await Promise.allSettled([desk.approve(pending.id, bob), desk.deny(pending.id, carol, 'no')]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const rejected = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect((rejected.reason as BatonError).code).toBe('BATON_ERR_APPROVAL_CONFLICT');
  });

  it('a revoked requesting chain voids the request: approve is refused, deny is allowed', async () => {
    const input = request();
    const pending = await desk.admit(input);
    const revocations = { firstRevoked: (ids: readonly string[]) => ids.find((i) => i === input.revocationIds[0]) };
    const err = (await desk.approve(pending.id, bob, undefined, { revocations }).catch((e: BatonError) => e)) as BatonError;
    expect(err.code).toBe('BATON_ERR_APPROVAL_CONFLICT');
    expect(err.message).toMatch(/requesting token was revoked/);
    await desk.deny(pending.id, bob, 'revoked anyway', { revocations });
  });

  it('a failing record (the audit) rolls the decision back', async () => {
    const pending = await desk.admit(request());
    const record = async () => {
      throw new BatonError('BATON_ERR_AUDIT_UNAVAILABLE', 'audit down');
    };
    expect(await code(desk.approve(pending.id, bob, undefined, { record }))).toBe('BATON_ERR_AUDIT_UNAVAILABLE');
    expect(await desk.get(pending.id)).toMatchObject({ state: 'pending' });
  });

  it('lists newest first, filtered by state as of now', async () => {
    const a = await desk.admit(request('DELETE FROM a'));
    const b = await desk.admit(request('DELETE FROM b'));
    const listed = (await desk.list(undefined, 500)).map((x) => x.id);
    expect(listed.indexOf(b.id)).toBeLessThan(listed.indexOf(a.id));
    expect((await desk.list('pending', 1)).map((x) => x.id)).toEqual([b.id]);
    await expect(desk.list(undefined, 0)).rejects.toThrow(TypeError);
  });
});
