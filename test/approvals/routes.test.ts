/**
 * `/v1/approvals` through a real dev-mode broker (PostgreSQL, Redis, the seeded dev policy: admins
 * hold roles admin + approver). Requests are held through the broker's own ApprovalDesk with the
 * lineage of real exchanged tokens, as the proxy would hold them.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AuditRecord } from '../../src/audit/event.ts';
import type { Approval } from '../../src/approvals/approval.ts';
import { attenuate } from '../../src/token/attenuate.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { brokerToken, heldStatement } from './held.ts';

let broker: TestBroker;

const token = (sub: string, groups: string[]) => brokerToken(broker, sub, groups);
const held = (tok: string, statement?: string) => heldStatement(broker, tok, statement);

async function call(method: 'GET' | 'POST', path: string, bearer: string | undefined, body?: string, contentType = 'application/json') {
  const headers: Record<string, string> = {};
  if (bearer) headers.authorization = `Bearer ${bearer}`;
  if (body !== undefined) headers['content-type'] = contentType;
  const res = await fetch(`${broker.url}${path}`, { method, headers, ...(body !== undefined ? { body } : {}) });
  return { status: res.status, type: res.headers.get('content-type') ?? '', body: (await res.json()) as Record<string, unknown> };
}

let requester: string; // alice, engineers
let child: string; // alice → helper-1
let approver: string; // root-admin, admins
let pendingId: string;

beforeAll(async () => {
  broker = await startTestBroker('approvals_routes');
  requester = await token('alice', ['engineers']);
  child = attenuate(requester, { delegateTo: 'helper-1', operations: ['read', 'delete'], purpose: 'tidy orders' });
  approver = await token('root-admin', ['admins']);
});
afterAll(async () => broker?.stop());

describe('/v1/approvals', () => {
  it('an approver lists, reads and approves; the approval is used once; the audit has the decision', async () => {
    const input = held(child);
    const admitted = await broker.approvals.admit(input);
    expect(admitted.state).toBe('pending');
    pendingId = admitted.id;

    const list = await call('GET', '/v1/approvals?state=pending', approver);
    expect(list.status).toBe(200);
    const listed = (list.body.approvals as Approval[]).find((a) => a.id === pendingId)!;
    expect(listed).toMatchObject({ state: 'pending', upstream: 'appdb', statement: input.statement, requesterRevoked: false, url: `${broker.url}/v1/approvals/${pendingId}` });
    expect(listed.lineage.map((l) => l.delegatedTo ?? l.subject)).toEqual(['alice', 'helper-1']);

    expect((await call('GET', `/v1/approvals/${pendingId}`, approver)).body).toMatchObject({ id: pendingId, state: 'pending' });
    // the requesting token may poll its own request
    expect((await call('GET', `/v1/approvals/${pendingId}`, child)).body).toMatchObject({ id: pendingId, state: 'pending' });

    const decided = await call('POST', `/v1/approvals/${pendingId}/approve`, approver, JSON.stringify({ reason: 'acceptance' }));
    expect(decided.status).toBe(200);
    expect(decided.body).toMatchObject({ id: pendingId, state: 'approved', decidedBy: 'root-admin', reason: 'acceptance' });

    // durable before the 2xx: the entry is there at once
    const audit = await call('GET', '/v1/audit?limit=20', approver);
    const entry = (audit.body.events as AuditRecord[]).find((e) => e.approvalId === pendingId);
    expect(entry).toMatchObject({ source: 'broker', action: 'approval.approve', decision: 'allow', reason: 'acceptance', resource: 'pg:appdb/public.orders' });
    expect(entry!.lineage.map((l) => l.subject)).toEqual(['root-admin']);

    expect(await broker.approvals.admit(input)).toEqual({ state: 'approved', id: pendingId, approver: 'root-admin' });
    expect((await call('GET', `/v1/approvals/${pendingId}`, approver)).body).toMatchObject({ state: 'used' });
  });

  it('a request is decided once: 409 problem+json', async () => {
    const again = await call('POST', `/v1/approvals/${pendingId}/approve`, approver, '{}');
    expect(again).toMatchObject({ status: 409, type: expect.stringContaining('application/problem+json') });
    expect(again.body).toMatchObject({ code: 'BATON_ERR_APPROVAL_CONFLICT', status: 409 });
    expect(String(again.body.title)).toMatch(/used, not pending/);
  });

  it('the requester, and any token without the approver role, gets 403', async () => {
    const { id } = await broker.approvals.admit(held(child));
    for (const who of [requester, child, await token('ann', ['analysts'])]) {
      expect((await call('GET', '/v1/approvals', who)).status).toBe(403);
      const res = await call('POST', `/v1/approvals/${id}/approve`, who, '{}');
      expect(res).toMatchObject({ status: 403, body: { code: 'BATON_ERR_FORBIDDEN' } });
    }
    // only the requesting token (or one derived from it) reads its own request; not even its parent
    expect((await call('GET', `/v1/approvals/${id}`, child)).status).toBe(200);
    expect((await call('GET', `/v1/approvals/${id}`, requester)).status).toBe(403);
    expect((await call('GET', `/v1/approvals/${id}`, await token('ann', ['analysts']))).status).toBe(403);
    expect((await call('GET', '/v1/approvals', undefined)).status).toBe(401);
  });

  it('roles do not pass through attenuation: a delegated child of an approver token gets 403', async () => {
    const { id } = await broker.approvals.admit(held(child));
    const delegated = attenuate(approver, { delegateTo: 'review-bot' });
    const res = await call('POST', `/v1/approvals/${id}/approve`, delegated, '{}');
    expect(res).toMatchObject({ status: 403, body: { code: 'BATON_ERR_FORBIDDEN' } });
    expect(String(res.body.title)).toMatch(/approver role/);
    expect((await call('GET', '/v1/approvals', delegated)).status).toBe(403);
  });

  it('an approver inside the requesting lineage gets 403 naming why', async () => {
    const { id } = await broker.approvals.admit(held(child));
    const aliceAdmin = await token('alice', ['admins']);
    const own = await call('POST', `/v1/approvals/${id}/approve`, aliceAdmin, '{}');
    expect(own).toMatchObject({ status: 403, body: { code: 'BATON_ERR_FORBIDDEN' } });
    expect(String(own.body.title)).toMatch(/you are the requester/);
    const delegateAdmin = await token('helper-1', ['admins']);
    const delegate = await call('POST', `/v1/approvals/${id}/deny`, delegateAdmin, JSON.stringify({ reason: 'mine' }));
    expect(delegate).toMatchObject({ status: 403, body: { code: 'BATON_ERR_FORBIDDEN' } });
    expect(String(delegate.body.title)).toMatch(/a delegate in the requesting chain/);
    expect((await call('GET', `/v1/approvals/${id}`, approver)).body).toMatchObject({ state: 'pending' });
  });

  it('deny needs a reason; approve takes an empty body; bad input is 400', async () => {
    const aInput = held(child);
    const a = await broker.approvals.admit(aInput);
    expect((await call('POST', `/v1/approvals/${a.id}/deny`, approver, '')).body).toMatchObject({ code: 'BATON_ERR_INVALID_REQUEST' });
    expect((await call('POST', `/v1/approvals/${a.id}/deny`, approver, '{"reason":" "}')).status).toBe(400);
    expect((await call('POST', `/v1/approvals/${a.id}/deny`, approver, '{"reason":')).status).toBe(400);
    expect((await call('POST', `/v1/approvals/${a.id}/approve`, approver, '{"reson":"typo"}')).status).toBe(400);
    const denied = await call('POST', `/v1/approvals/${a.id}/deny`, approver, JSON.stringify({ reason: 'not today' }));
    expect(denied).toMatchObject({ status: 200, body: { state: 'denied', reason: 'not today' } });
    expect(await broker.approvals.admit(aInput)).toEqual({ state: 'denied', id: a.id, reason: 'not today' });

    const b = await broker.approvals.admit(held(child));
    expect((await call('POST', `/v1/approvals/${b.id}/approve`, approver, '')).status).toBe(200);
    const c = await broker.approvals.admit(held(child));
    const bare = await fetch(`${broker.url}/v1/approvals/${c.id}/approve`, { method: 'POST', headers: { authorization: `Bearer ${approver}` } });
    expect(bare.status).toBe(200);

    expect((await call('GET', '/v1/approvals?state=bogus', approver)).status).toBe(400);
    expect((await call('GET', '/v1/approvals?limit=0', approver)).status).toBe(400);
    expect((await call('GET', '/v1/approvals/apr_AAAAAAAAAAAAAAAAAAAAAA', approver)).status).toBe(404);
    expect((await call('GET', '/v1/approvals?state=denied', approver)).body.approvals).toEqual(expect.arrayContaining([expect.objectContaining({ id: a.id })]));
  });

  it('a revoked requester voids the request: approve is 409', async () => {
    const victim = await token('alice', ['engineers']);
    const { id } = await broker.approvals.admit(held(victim));
    const revoked = await fetch(`${broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: victim }) });
    expect(revoked.status).toBe(200);
    expect((await call('GET', `/v1/approvals/${id}`, approver)).body).toMatchObject({ requesterRevoked: true });
    const res = await call('POST', `/v1/approvals/${id}/approve`, approver, JSON.stringify({ reason: 'acceptance' }));
    expect(res).toMatchObject({ status: 409, body: { code: 'BATON_ERR_APPROVAL_CONFLICT' } });
    expect(String(res.body.title)).toMatch(/requesting token was revoked/);
    expect((await call('GET', `/v1/approvals/${id}`, approver)).body).toMatchObject({ state: 'pending' });
  });
});
