/**
 * POST /v1/credentials/postgres end to end (issue 14) against the real PostgreSQL: an ephemeral login
 * role per request with exactly the token's table rights (masked columns and approval-held operations
 * left out), no way to widen them, dropped — sessions ended — when the token is revoked or expires;
 * every issuance and reap audited with the lineage; the CLI and psql.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryAudit } from '../../src/audit/query.ts';
import { dropEphemeralRole } from '../../src/credentials/postgres.ts';
import type { PgCredentials } from '../../src/credentials/postgres-service.ts';
import { ensureDemoUpstream } from '../../src/dev/demo-upstream.ts';
import { attenuate } from '../../src/token/attenuate.ts';
import { exchange } from '../../src/sdk/exchange.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { runCli } from '../helpers/cli.ts';
import { TEST_DATABASE_URL } from '../helpers/database.ts';

const run = promisify(execFile);
let broker: TestBroker;
let appdb: string;
let adminUrl: string;
let engineer: string;
const clients: pg.Client[] = [];

beforeAll(async () => {
  const admin = new URL(TEST_DATABASE_URL);
  admin.pathname = '/postgres';
  appdb = `baton_t_pgcred_${process.pid}`;
  await ensureDemoUpstream(admin.toString(), appdb);
  const issuing = new URL(TEST_DATABASE_URL);
  issuing.pathname = `/${appdb}`;
  adminUrl = issuing.toString();
  broker = await startTestBroker('pg_credentials', { credentials: { postgres: { upstreams: { appdb: { adminUrl } }, reapIntervalSeconds: 0.2, maxLiveRolesPerToken: 6 } } });
  engineer = await exchange({ broker: broker.url, subjectToken: await broker.devToken('alice', ['engineers']) });
}, 60_000);

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
  if (broker) {
    const { rows } = await broker.db.pool.query<{ role_name: string }>('SELECT role_name FROM native_pg_roles WHERE dropped_at IS NULL');
    const a = new pg.Client({ connectionString: adminUrl });
    await a.connect();
    for (const { role_name } of rows) await dropEphemeralRole(a, role_name).catch(() => {});
    await a.end();
    await broker.stop();
  }
  const a = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await a.connect();
  await a.query(`DROP DATABASE IF EXISTS ${appdb} WITH (FORCE)`);
  await a.end();
});

async function issue(token: string | undefined, upstream = 'appdb'): Promise<{ status: number; body: PgCredentials & { code?: string; title?: string } }> {
  const res = await fetch(`${broker.url}/v1/credentials/postgres`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ upstream }),
  });
  return { status: res.status, body: (await res.json()) as PgCredentials & { code?: string; title?: string } };
}

async function connect(url: string): Promise<pg.Client> {
  const c = new pg.Client({ connectionString: url });
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
}

const sqlstate = (p: Promise<unknown>) => p.then(() => 'ok', (e: { code?: string }) => e.code ?? 'no code');

async function roleAcl(table: string): Promise<string> {
  const a = new pg.Client({ connectionString: adminUrl });
  await a.connect();
  try {
    return String((await a.query(`SELECT relacl::text AS acl FROM pg_class WHERE oid = $1::regclass`, [table])).rows[0].acl);
  } finally {
    await a.end();
  }
}

async function roleRow(name: string) {
  const a = new pg.Client({ connectionString: adminUrl });
  await a.connect();
  try {
    return (
      await a.query(
        `SELECT rolsuper, rolcreaterole, rolcreatedb, rolinherit, rolbypassrls, rolcanlogin, rolvaliduntil, rolconnlimit, shobj_description(oid, 'pg_authid') AS comment,
                (SELECT count(*)::int FROM pg_auth_members WHERE member = r.oid) AS memberships
         FROM pg_roles r WHERE rolname = $1`,
        [name],
      )
    ).rows[0];
  } finally {
    await a.end();
  }
}

describe('an ephemeral role holds the token’s table rights and nothing else', () => {
  it('a child read-only on public.orders reads it and cannot read, write, create or escalate anything else', async () => {
    const child = attenuate(engineer, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'bi-tool' });
    const { status, body } = await issue(child);
    expect(status).toBe(200);
    expect(body.role).toMatch(/^baton_[0-9a-f]{16}$/);
    expect(body.grants).toEqual([{ resource: 'pg:appdb/public.orders', privilege: 'SELECT' }]);
    expect(new URL(body.url).pathname).toBe(`/${appdb}`);

    const row = await roleRow(body.role);
    expect(row).toMatchObject({ rolsuper: false, rolcreaterole: false, rolcreatedb: false, rolinherit: false, rolbypassrls: false, rolcanlogin: true, rolconnlimit: 5, memberships: 0 });
    expect(Math.abs(new Date(row.rolvaliduntil).getTime() - new Date(body.expires_at).getTime())).toBeLessThan(1000);
    expect(row.comment).toMatch(/^baton ephemeral role for token tok_\S+: alice -> \S+ -> bi-tool; until /);

    const c = await connect(body.url);
    expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
    const denied: Array<[string, string]> = [
      ['SELECT * FROM customers', '42501'],
      ['SELECT * FROM audit_notes', '42501'],
      ["INSERT INTO orders (customer_id, amount_cents) VALUES (1, 1)", '42501'],
      ['UPDATE orders SET amount_cents = 0', '42501'],
      ['DELETE FROM orders', '42501'],
      ['TRUNCATE orders', '42501'],
      ['CREATE TABLE mine (x int)', '42501'],
      ['CREATE TEMP TABLE mine (x int)', '42501'],
      ['SET ROLE postgres', '42501'],
      ['SET SESSION AUTHORIZATION postgres', '42501'],
      ["SELECT pg_read_file('/etc/hostname')", '42501'],
      ["COPY orders TO PROGRAM 'true'", '42501'],
      ["SELECT lo_import('/etc/hostname')", '42501'],
      ['ALTER ROLE CURRENT_USER CREATEROLE', '42501'],
      ['GRANT SELECT ON customers TO PUBLIC', '42501'],
      ['SELECT pg_terminate_backend(pg_backend_pid() + 1)', '42501'],
    ];
    for (const [sql, code] of denied) expect([sql, await sqlstate(c.query(sql))]).toEqual([sql, code]);
    // a privilege it holds it cannot pass on (no grant option): PostgreSQL warns and grants nothing
    await c.query('GRANT SELECT ON orders TO PUBLIC');
    const acl = await roleAcl('orders');
    expect(acl).not.toMatch(/(^|[{,])=r/);
  });

  it('the engineer: SELECT without the masked columns, INSERT with its sequence; UPDATE/DELETE held by approval rules are left out and said', async () => {
    const { status, body } = await issue(engineer);
    expect(status).toBe(200);
    const customers = body.grants.find((g) => g.resource === 'pg:appdb/public.customers' && g.privilege === 'SELECT');
    expect(customers?.columns).toEqual(['id', 'name']);
    expect(body.grants.filter((g) => g.privilege === 'UPDATE' || g.privilege === 'DELETE')).toEqual([]);
    expect(body.omitted).toEqual(
      expect.arrayContaining([
        { resource: 'pg:appdb/public.orders', operation: 'delete', why: expect.stringMatching(/approval rule/) },
        { resource: 'pg:appdb/public.orders', operation: 'update', why: expect.stringMatching(/approval rule/) },
        { resource: 'pg:appdb/public.customers', operation: 'read', why: 'masked columns left out: email, card_number' },
      ]),
    );
    const c = await connect(body.url);
    expect((await c.query('SELECT name FROM customers ORDER BY id LIMIT 1')).rows).toHaveLength(1);
    expect(await sqlstate(c.query('SELECT email FROM customers'))).toBe('42501');
    expect(await sqlstate(c.query('SELECT * FROM customers'))).toBe('42501');
    expect(await sqlstate(c.query("SELECT count(*) FROM customers WHERE card_number LIKE '4%'"))).toBe('42501');
    expect((await c.query('INSERT INTO orders (customer_id, amount_cents) VALUES (1, 42) RETURNING id')).rowCount).toBe(1);
    expect(await sqlstate(c.query('DELETE FROM orders WHERE amount_cents = 42'))).toBe('42501');
  });

  it('is audited with the lineage and every privilege', async () => {
    const { events } = await queryAudit(broker.db.pool, { delegate: 'bi-tool' });
    const entry = events.find((e) => e.action === 'credentials.postgres.issue');
    expect(entry).toMatchObject({ decision: 'allow', resource: 'pg:appdb/', accesses: [{ resource: 'pg:appdb/public.orders', operation: 'read' }] });
    expect(entry!.lineage.map((l) => l.delegatedTo ?? l.subject)).toEqual(['alice', 'bi-tool']);
  });
});

describe('the role ends with its token', () => {
  it('revoking the token drops the role and ends its open session within a second', async () => {
    const child = attenuate(engineer, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'doomed-tool' });
    const { body } = await issue(child);
    const c = await connect(body.url);
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    const t0 = Date.now();
    await fetch(`${broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: child }) });
    let state = 'ok';
    while (state === 'ok' && Date.now() - t0 < 3000) {
      state = await sqlstate(c.query('SELECT 1'));
      if (state === 'ok') await new Promise((r) => setTimeout(r, 25));
    }
    expect(Date.now() - t0).toBeLessThan(1000);
    expect(state).not.toBe('ok');
    await expect.poll(() => roleRow(body.role), { timeout: 2000 }).toBeUndefined();
    expect(await sqlstate(connect(body.url))).toBe('28000'); // the role does not exist any more
    await expect
      .poll(async () => (await queryAudit(broker.db.pool, { delegate: 'doomed-tool' })).events.find((e) => e.action === 'credentials.postgres.reap')?.reason, { timeout: 2000 })
      .toMatch(/dropped on appdb: a link of its chain was revoked; 1 session\(s\) ended/);
  });

  it('at expiry the reaper drops it: sessions end and nobody logs in again', async () => {
    const brief = attenuate(engineer, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '2s', delegateTo: 'brief-tool' });
    const { body } = await issue(brief);
    const c = await connect(body.url);
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    await expect.poll(() => sqlstate(c.query('SELECT 1')), { timeout: 5000, interval: 100 }).not.toBe('ok');
    expect(Date.now()).toBeGreaterThanOrEqual(new Date(body.expires_at).getTime());
    expect(await sqlstate(connect(body.url))).toBe('28000');
    const reaped = await broker.db.pool.query('SELECT dropped_reason FROM native_pg_roles WHERE role_name = $1', [body.role]);
    expect(reaped.rows[0].dropped_reason).toBe('expired');
  });
});

describe('refusals', () => {
  it('no token 401; a token with nothing on the upstream 403 (audited); unknown upstream 404; bad body 400', async () => {
    expect((await issue(undefined)).status).toBe(401);
    const httpOnly = attenuate(engineer, { resources: ['http:billing/'], operations: ['read'], delegateTo: 'http-only' });
    const forbidden = await issue(httpOnly);
    expect(forbidden.status).toBe(403);
    expect(forbidden.body.code).toBe('BATON_ERR_FORBIDDEN');
    const { events } = await queryAudit(broker.db.pool, { delegate: 'http-only' });
    expect(events.find((e) => e.action === 'credentials.postgres.issue')).toMatchObject({ decision: 'deny' });
    const unknown = await issue(engineer, 'nope');
    expect(unknown.status).toBe(404);
    expect(unknown.body.title).toMatch(/configured: appdb/);
    expect((await issue(engineer, '../x')).status).toBe(400);
  });
});

describe('limits', () => {
  it('a lineage holds at most maxLiveRolesPerToken live roles (children count together): then 429', async () => {
    const fresh = await exchange({ broker: broker.url, subjectToken: await broker.devToken('carol', ['engineers']) });
    for (let i = 0; i < 6; i++) {
      const child = attenuate(fresh, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: `worker-${i}` });
      expect((await issue(child)).status).toBe(200);
    }
    const seventh = await issue(attenuate(fresh, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'worker-7' }));
    expect(seventh.status).toBe(429);
    expect(seventh.body.title).toMatch(/already holds 6 live database roles/);
  });
});

describe('baton credentials postgres', () => {
  it('prints a URL psql connects with', async () => {
    const child = attenuate(engineer, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'cli-tool' });
    const out = await runCli(['credentials', 'postgres', '--upstream', 'appdb'], { env: { BATON_TOKEN: child, BATON_BROKER: broker.url } });
    expect(out.code).toBe(0);
    expect(out.stderr).toMatch(/role baton_[0-9a-f]{16} until .*: SELECT pg:appdb\/public.orders/);
    const url = out.stdout.trim();
    expect(url).toMatch(/^postgres(ql)?:\/\/baton_[0-9a-f]{16}:/);
    const { stdout } = await run('psql', [url, '-Atc', 'SELECT count(*) > 0 FROM orders']);
    expect(stdout.trim()).toBe('t');
    const refused = await run('psql', [url, '-Atc', 'SELECT count(*) FROM customers']).then(() => 'read', (e: { stderr: string }) => e.stderr);
    expect(refused).toMatch(/permission denied for table customers/);
  });
});
