/**
 * `proxy.pooling: transaction` with Baton's gate (issue 15 point 5): enforcement and audit are what
 * they are without pooling; what transaction pooling cannot carry is refused with 0A000 naming the
 * mode (and audited as a denial); protocol-level prepared statements keep working; pools are kept per
 * upstream identity (per-token roles included).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sqlstate, startTestStack, type TestStack } from '../../helpers/stack.ts';

let s: TestStack;
let perToken: TestStack;
let admin: string;
let engineer: string;

beforeAll(async () => {
  s = await startTestStack('pg_pooling', { pooling: 'transaction', pool: { size: 2 } });
  perToken = await startTestStack('pg_pooling_id', { pooling: 'transaction', pool: { size: 2 } }, { perTokenIdentity: true });
  admin = await s.token('root', ['admins']);
  engineer = await s.token('alice', ['engineers']);
}, 90_000);

afterAll(async () => {
  await s?.stop();
  await perToken?.stop();
});

async function refusal(p: Promise<unknown>): Promise<{ code?: string; message?: string } | undefined> {
  return p.then(
    () => undefined,
    (e: { code?: string; message?: string }) => ({ code: e.code, message: e.message }),
  );
}

describe('session state is refused, naming the mode', () => {
  const stateful: [string, string][] = [
    ["SET work_mem = '8MB'", 'SET (a session-level setting'],
    ['SET SESSION search_path = public', 'SET (a session-level setting'],
    ['PREPARE p AS SELECT 1', 'PREPARE'],
    ['LISTEN jobs', 'LISTEN'],
    ['CREATE TEMP TABLE scratch (v int)', 'a temporary object'],
    ['CREATE TABLE pg_temp.scratch (v int)', 'a temporary object'],
    ['SELECT 1 AS v INTO TEMP scratch', 'a temporary object'],
    ['SELECT pg_advisory_lock(42)', 'a session-level advisory lock'],
    ["SELECT set_config('work_mem', '8MB', false)", 'set_config()'],
  ];
  for (const [sql, what] of stateful) {
    it(`${sql} → 0A000`, async () => {
      const c = await s.connect(admin); // even an admin: the mode cannot carry it
      const err = await refusal(c.query(sql));
      expect(err?.code).toBe('0A000');
      expect(err?.message).toContain(what);
      expect(err?.message).toContain('proxy.pooling: transaction');
      expect((await c.query('SELECT 1 AS ok')).rows[0].ok).toBe(1); // the session goes on
    });
  }

  it('a WITH HOLD cursor is refused; a plain cursor inside a block works', async () => {
    const c = await s.connect(admin);
    await c.query('BEGIN');
    expect((await refusal(c.query('DECLARE h CURSOR WITH HOLD FOR SELECT 1')))?.code).toBe('0A000');
    await c.query('ROLLBACK');
    await c.query('BEGIN');
    await c.query('DECLARE ok CURSOR FOR SELECT id FROM orders ORDER BY id');
    expect((await c.query('FETCH 2 FROM ok')).rows.map((r) => r.id)).toEqual([1, 2]);
    await c.query('COMMIT');
  });

  it('transaction-scoped forms are available: SET LOCAL, pg_advisory_xact_lock, RESET, DEALLOCATE ALL', async () => {
    const c = await s.connect(engineer);
    await c.query('BEGIN');
    await c.query("SET LOCAL statement_timeout = '5s'");
    expect((await c.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('5s');
    await c.query('COMMIT');
    expect((await c.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('30s'); // the pinned value
    await c.query('RESET statement_timeout');
    await c.query('DEALLOCATE ALL');
    const a = await s.connect(admin);
    await a.query('BEGIN');
    await a.query('SELECT pg_advisory_xact_lock(42)');
    await a.query('COMMIT');
  });

  it('each refusal is an audit denial with the reason', async () => {
    const c = await s.connect(engineer);
    await c.query('LISTEN audit_me').catch(() => undefined);
    const rows = (
      await s.broker.db.pool.query<{ decision: string; reason: string }>(
        "SELECT decision, reason FROM audit_events WHERE source = 'proxy-pg' AND normalized = 'LISTEN audit_me' ORDER BY seq DESC LIMIT 1",
      )
    ).rows;
    expect(rows[0]).toMatchObject({ decision: 'deny' });
    expect(rows[0]!.reason).toContain('proxy.pooling: transaction');
  });
});

describe('enforcement and audit unchanged', () => {
  it('a narrowed child reads its table and is refused the other, on shared connections', async () => {
    const child = s.attenuate(engineer, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'pooled-reader' });
    const sessions = await Promise.all(Array.from({ length: 6 }, () => s.connect(child)));
    await Promise.all(
      sessions.map(async (c) => {
        for (let k = 0; k < 3; k++) {
          expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
          expect(await sqlstate(c.query('SELECT * FROM customers'))).toBe('42501');
        }
      }),
    );
    expect(s.proxy.proxy.upstreamStats()!.open).toBeLessThanOrEqual(2);
    const entries = await s.broker.db.pool.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM audit_events e JOIN audit_lineages l ON l.hash = e.lineage_hash
        WHERE e.source = 'proxy-pg' AND 'pooled-reader' = ANY (l.delegates)`,
    );
    expect(entries.rows[0]!.n).toBe(6 * 3 * 2); // every statement, allowed and denied
  });

  it('protocol-level prepared statements keep working across sessions and connections', async () => {
    const sessions = await Promise.all(Array.from({ length: 5 }, () => s.connect(engineer)));
    for (let round = 0; round < 3; round++) {
      for (const [i, c] of sessions.entries()) {
        const r = await c.query({ name: 'by_id', text: 'SELECT id FROM orders WHERE id = $1', values: [i + round + 1] });
        expect(r.rows[0].id).toBe(i + round + 1);
      }
    }
    // a denied statement stays denied when prepared, whichever connection runs it
    const child = s.attenuate(engineer, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'no-customers' });
    const c = await s.connect(child);
    expect(await sqlstate(c.query({ name: 'cust', text: 'SELECT * FROM customers WHERE id = $1', values: [1] }))).toBe('42501');
  });

  it('a revoked token ends its pooled session on the next statement', async () => {
    const child = s.attenuate(engineer, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'pooled-revoked' });
    const c = await s.connect(child);
    await c.query('SELECT 1');
    await fetch(`${s.broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: child }) });
    await expect.poll(() => sqlstate(c.query('SELECT 1')), { timeout: 3000 }).toBe('28P01');
  });
});

describe('pools per upstream identity', () => {
  it('with per-token roles each chain gets its own pool, and runs as its own role', async () => {
    const engineerHere = await perToken.token('alice', ['engineers']);
    const reader = perToken.attenuate(engineerHere, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'pool-reader' });
    const a = await perToken.connect(engineerHere);
    const b = await perToken.connect(reader);
    const ua = (await a.query('SELECT current_user AS u')).rows[0].u;
    const ub = (await b.query('SELECT current_user AS u')).rows[0].u;
    expect(ua).not.toBe(ub);
    expect(perToken.proxy.proxy.upstreamStats()!.pools).toBe(2);
    // the database itself refuses what the reader's role does not hold, pooled or not
    expect((await b.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
    expect(await sqlstate(b.query('SELECT * FROM customers'))).toBe('42501');
  });
});
