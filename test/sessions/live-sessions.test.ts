/**
 * Live sessions (issue 16): the proxy publishes each open session to the shared database, the broker
 * lists them at GET /v1/sessions for admins and approvers, and revoking a session's last block (the
 * existing revocation path) ends it and takes it off the list.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { publishedSessions } from '../../src/proxy/admin/session-registry.ts';
import { createSessionRegistry, listLiveSessions, type LiveSession, type SessionRegistry } from '../../src/sessions/registry.ts';
import { sqlstate, startTestStack, type TestStack } from '../helpers/stack.ts';

let stack: TestStack;
let registry: SessionRegistry;

beforeAll(async () => {
  stack = await startTestStack('sessions', {}, {
    wrapGate: (broker) => {
      registry = createSessionRegistry(broker.db.pool, { flushMs: 50 });
      return (gate) => publishedSessions(gate, registry, { state: broker.state, revocations: broker.revocations });
    },
  });
});
afterAll(async () => {
  await stack?.stop();
});

async function list(token: string): Promise<{ status: number; body: { sessions?: (LiveSession & { revoked: boolean })[]; code?: string } }> {
  const res = await fetch(`${stack.broker.url}/v1/sessions`, { headers: { authorization: `Bearer ${token}` } });
  return { status: res.status, body: (await res.json()) as never };
}

async function until<T>(what: string, get: () => Promise<T | undefined>): Promise<T> {
  for (let i = 0; i < 100; i++) {
    const v = await get();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

describe('GET /v1/sessions', () => {
  it('lists an open session with its lineage and counts; revoking its last block ends it', async () => {
    const alice = await stack.token('alice', ['engineers'], 'planner');
    const helper = stack.attenuate(alice, { delegateTo: 'helper-7', purpose: 'count the orders', resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m' });
    const admin = await stack.token('root', ['admins']);
    const client = await stack.connect(helper);
    await client.query('SELECT count(*) FROM orders');
    expect(await sqlstate(client.query('SELECT * FROM customers'))).toBe('42501');

    const session = await until('the session with its counts', async () => {
      const s = (await list(admin)).body.sessions?.find((x) => x.lineage[1]?.delegatedTo === 'helper-7');
      return s && s.statements === 1 && s.denied === 1 ? s : undefined;
    });
    expect(session).toMatchObject({ kind: 'pg', upstream: 'appdb', revoked: false, lineage: [{ depth: 0, subject: 'alice', agent: 'planner' }, { depth: 1, purpose: 'count the orders' }] });
    expect(session.id).toMatch(/^ses_/);
    expect(session.tokenId).toMatch(/^tok_/);
    expect(session.revocationId).toBe(session.lineage[1]!.revocationId);
    expect(session.idleSeconds).toBeGreaterThanOrEqual(0);
    expect(JSON.stringify(session)).not.toContain(helper);

    // neither alice nor her helper may list sessions
    for (const t of [alice, helper]) expect((await list(t)).body.code).toBe('BATON_ERR_FORBIDDEN');
    expect((await fetch(`${stack.broker.url}/v1/sessions`)).status).toBe(401);

    // end it: revoke the session token's last block (alice's own token stays valid)
    const revoke = await fetch(`${stack.broker.url}/v1/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${admin}`, 'content-type': 'application/json' },
      body: JSON.stringify({ revocation_id: session.revocationId, reason: 'ended from the console' }),
    });
    expect(revoke.status).toBe(200);
    await until('the session to end', async () => ((await sqlstate(client.query('SELECT 1'))) !== undefined ? true : undefined));
    await until('the session to leave the list', async () => ((await list(admin)).body.sessions?.some((x) => x.id === session.id) ? undefined : true));
    expect((await list(alice)).status).toBe(403); // alice is not revoked: refused for her role, not her token
  });

  it('POST /v1/sessions/{id}/end revokes the session token\'s last block and ends the idle session at once', async () => {
    const alice = await stack.token('alice', ['engineers'], 'planner');
    const idle = stack.attenuate(alice, { delegateTo: 'helper-idle', resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m' });
    const admin = await stack.token('root', ['admins']);
    const client = await stack.connect(idle);
    await client.query('SELECT 1');
    const ended = new Promise<Error | undefined>((resolve) => {
      client.once('error', (err) => resolve(err));
      client.once('end', () => resolve(undefined));
    });
    const session = await until('the session', async () => (await list(admin)).body.sessions?.find((x) => x.lineage[1]?.delegatedTo === 'helper-idle'));
    const end = (token: string, id = session.id) =>
      fetch(`${stack.broker.url}/v1/sessions/${id}/end`, { method: 'POST', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'access review' }) });
    expect((await end(alice)).status).toBe(403); // admin only
    expect(((await (await end(admin, 'ses_nosuchsession0')).json()) as { code: string }).code).toBe('BATON_ERR_NOT_FOUND');
    const res = await end(admin);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ id: session.id, revocationId: session.revocationId, revoked: true });
    // no statement needed: the proxy ends it (FATAL 28P01) as soon as it knows the chain is revoked
    const err = await ended;
    if (err) expect((err as { code?: string }).code).toBe('28P01');
    await until('the session to leave the list', async () => ((await list(admin)).body.sessions?.some((x) => x.id === session.id) ? undefined : true));
    // the revocation is the ordinary one, audited with its reason; alice's own token is untouched
    const audit = await stack.broker.db.pool.query(`SELECT reason FROM audit_events WHERE action = 'token.revoke' ORDER BY seq DESC LIMIT 1`);
    expect(audit.rows[0]?.reason).toContain('access review');
    await (await stack.connect(alice)).query('SELECT 1');
  });

  it('ignores and prunes the rows of a proxy whose heartbeat stopped', async () => {
    const pool = stack.broker.db.pool;
    const dead = createSessionRegistry(pool, { proxy: 'dead-proxy', flushMs: 60_000 });
    dead.open({ kind: 'pg', upstream: 'appdb', remote: '10.0.0.9', revocationId: 'ab'.repeat(32), lineage: [] });
    await dead.flush();
    expect((await listLiveSessions(pool)).some((s) => s.proxy === 'dead-proxy')).toBe(true);
    // one heartbeat row per proxy, whatever its number of sessions
    expect((await pool.query(`SELECT count(*)::int AS n FROM proxy_heartbeats WHERE proxy = 'dead-proxy'`)).rows[0].n).toBe(1);
    await pool.query(`UPDATE proxy_heartbeats SET heartbeat_at = now() - interval '1 minute' WHERE proxy = 'dead-proxy'`);
    expect((await listLiveSessions(pool)).some((s) => s.proxy === 'dead-proxy')).toBe(false);
    expect((await pool.query(`SELECT count(*)::int AS n FROM proxy_sessions WHERE proxy = 'dead-proxy'`)).rows[0].n).toBe(0);
    expect((await pool.query(`SELECT count(*)::int AS n FROM proxy_heartbeats WHERE proxy = 'dead-proxy'`)).rows[0].n).toBe(0);
    await dead.close();
  });
});
