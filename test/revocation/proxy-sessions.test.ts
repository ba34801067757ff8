/**
 * Revocation on the data path: parent → child → grandchild, the grandchild in an open proxy session;
 * revoking the parent reaches the proxy (channel fan-out + resync) and kills the whole branch.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack('revsess');
});
afterAll(async () => stack?.stop());

const sqlError = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: string; message: string; severity?: string }) => e);

describe('revoking a parent', () => {
  it("refuses the open grandchild session's next statement within 1 s, then ends it; new connections are refused; a sibling lives", async () => {
    const parent = await stack.token('alice', ['engineers'], 'planner');
    const sibling = await stack.token('alice', ['engineers'], 'planner');
    const child = stack.attenuate(parent, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'helper-7' });
    const grand = stack.attenuate(child, { ttl: '2m', delegateTo: 'grand-9' });
    const session = await stack.connect(grand);
    const siblingSession = await stack.connect(sibling);
    await session.query('SELECT 1 FROM orders LIMIT 1');

    const started = Date.now();
    const res = await fetch(`${stack.broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: parent }) });
    expect(await res.json()).toMatchObject({ revoked: true });
    let err: { code?: string; message: string } | undefined;
    while (!err && Date.now() - started < 1000) {
      err = await sqlError(session.query('SELECT 1 FROM orders LIMIT 1'));
      if (!err) await new Promise((r) => setTimeout(r, 20));
    }
    const elapsed = Date.now() - started;
    expect(err?.code).toBe('28P01');
    expect(err?.message).toMatch(/revoked/);
    expect(elapsed).toBeLessThan(1000);
    // the session is then terminated
    expect(await sqlError(session.query('SELECT 1'))).toBeDefined();
    for (const t of [child, grand, parent]) {
      const refused = await sqlError(stack.connect(t));
      expect(refused?.message).toMatch(/revoked/);
    }
    expect((await siblingSession.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
    expect((await (await stack.connect(sibling)).query('SELECT 1 AS x')).rows[0].x).toBe(1);
    // the revocation itself is in the audit trail, with the revoked token's lineage
    const { rows } = await stack.broker.testDb.pool.query(
      "SELECT e.reason, l.lineage FROM audit_events AS e JOIN audit_lineages AS l ON l.hash = e.lineage_hash WHERE e.action = 'token.revoke'",
    );
    expect(rows).toHaveLength(1);
    expect(rows[0].reason).toMatch(/by possession/);
    expect(rows[0].lineage[0]).toMatchObject({ subject: 'alice', agent: 'planner' });
  });

  it('reports the token inactive at introspection', async () => {
    const caller = await stack.token('bob', ['analysts']);
    const victim = await stack.token('carol', ['analysts']);
    const introspect = async () =>
      (await (await fetch(`${stack.broker.url}/v1/introspect`, { method: 'POST', headers: { authorization: `Bearer ${caller}` }, body: new URLSearchParams({ token: victim }) })).json()) as { active: boolean };
    expect((await introspect()).active).toBe(true);
    await fetch(`${stack.broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: victim }) });
    expect(await introspect()).toEqual({ active: false });
  });
});
