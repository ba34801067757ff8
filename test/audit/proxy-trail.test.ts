/** The audit trail as the proxy writes it: lineage, durability before execution, no secrets. */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryAudit, verifyAuditChain } from '../../src/audit/index.ts';
import { sqlstate, startTestStack, type TestStack } from '../helpers/stack.ts';
import { TEST_DATABASE_URL } from '../helpers/database.ts';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack('trail');
});
afterAll(async () => stack?.stop());

describe('audit entries written by the proxy', () => {
  it('carry one lineage link per block: alice via planner → helper → grand-helper', async () => {
    const root = await stack.token('alice', ['engineers'], 'planner');
    const helper = stack.attenuate(root, { resources: ['pg:appdb/public.orders', 'pg:appdb/public.customers'], operations: ['read'], ttl: '10m', delegateTo: 'helper', purpose: 'summarise' });
    const grand = stack.attenuate(helper, { resources: ['pg:appdb/public.orders'], ttl: '5m', delegateTo: 'grand-helper', purpose: 'count 424242' });
    const c = await stack.connect(grand);
    await c.query('SELECT count(*) FROM orders WHERE amount_cents > 424242');
    await c.query('SELECT count(*) FROM orders WHERE id = $1', [777001]);
    await c.query('DELETE FROM orders WHERE id = 424243').catch(() => {});
    await c.query("SELECT * FROM customers WHERE email = 'secret@example.com'").catch(() => {});
    const { events } = await queryAudit(stack.broker.testDb.pool, { delegate: 'grand-helper', order: 'asc' });
    expect(events.map((e) => e.decision)).toEqual(['allow', 'allow', 'deny', 'deny']);
    for (const e of events) {
      expect(e.lineage).toHaveLength(3);
      expect(e.lineage[0]).toMatchObject({ depth: 0, subject: 'alice', agent: 'planner' });
      expect(e.lineage[1]).toMatchObject({ depth: 1, delegatedTo: 'helper', purpose: 'summarise', constraints: { resources: ['pg:appdb/public.orders', 'pg:appdb/public.customers'], operations: ['read'] } });
      expect(e.lineage[2]).toMatchObject({ depth: 2, delegatedTo: 'grand-helper', purpose: 'count 424242', constraints: { resources: ['pg:appdb/public.orders'] } });
      expect(e.lineage[2]!.constraints.expiresAt! < e.lineage[1]!.constraints.expiresAt!).toBe(true);
      expect(e.tokenId).toMatch(/^tok_/);
    }
    expect(events[0]).toMatchObject({ source: 'proxy-pg', action: 'statement', resource: 'pg:appdb/public.orders', operation: 'read' });
    expect(events[0]!.normalized).toMatch(/amount_cents > \$1/);
    expect(events[2]).toMatchObject({ decision: 'deny', resource: 'pg:appdb/public.orders', operation: 'delete' });
    expect(events[2]!.reason).toMatch(/forbidden by link 1 \(delegated to helper\)/);
    // the outcome is recorded after execution
    await new Promise((r) => setTimeout(r, 200));
    const again = await queryAudit(stack.broker.testDb.pool, { delegate: 'grand-helper', order: 'asc' });
    expect(again.events[0]!.recordedOutcome?.outcome).toMatchObject({ rowCount: 1 });
    // no token and no literal value from a statement anywhere in the trail (the purpose is lineage data, excluded)
    // every table of the trail: event rows and the lineages they reference (stored once each)
    const all = JSON.stringify([
      (await stack.broker.testDb.pool.query('SELECT * FROM audit_events')).rows,
      (await stack.broker.testDb.pool.query('SELECT * FROM audit_lineages')).rows,
    ]);
    expect(all).toContain('count 424242'); // the lineage (purpose) is in what was searched
    for (const secret of [root, helper, grand, '777001', '424243', 'secret@example.com']) expect(all).not.toContain(secret);
    expect(all.replaceAll('count 424242', '')).not.toContain('424242');
    expect(await verifyAuditChain(stack.broker.testDb.pool)).toMatchObject({ ok: true });
  });

  it('refuses statements while the audit store is down (nothing reaches the upstream unaudited) and recovers by itself', async () => {
    const token = await stack.token('bob', ['engineers']);
    const c = await stack.connect(token);
    await c.query('SELECT 1 FROM orders LIMIT 1');
    const auditDb = new URL(stack.broker.testDb.url).pathname.slice(1);
    const admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    try {
      await admin.query(`ALTER DATABASE ${auditDb} ALLOW_CONNECTIONS false`);
      await admin.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()', [auditDb]);
      const err = (await c.query("INSERT INTO audit_notes (note) VALUES ('during outage')").catch((e: unknown) => e)) as { code: string; message: string };
      expect(err.code).toBe('57P03');
      expect(err.message).toMatch(/audit store unavailable/);
      expect(await sqlstate(c.query('SELECT count(*) FROM orders'))).toBe('57P03');
      expect((await stack.direct("SELECT count(*)::int AS n FROM audit_notes WHERE note = 'during outage'")).rows[0].n).toBe(0);
    } finally {
      await admin.query(`ALTER DATABASE ${auditDb} ALLOW_CONNECTIONS true`);
      await admin.end();
    }
    // the same session works again once the store is back
    let recovered = false;
    for (let i = 0; i < 50 && !recovered; i++) {
      recovered = (await sqlstate(c.query("INSERT INTO audit_notes (note) VALUES ('after outage')"))) === undefined;
      if (!recovered) await new Promise((r) => setTimeout(r, 100));
    }
    expect(recovered).toBe(true);
    expect((await stack.direct("SELECT count(*)::int AS n FROM audit_notes WHERE note = 'after outage'")).rows[0].n).toBe(1);
  });
});
