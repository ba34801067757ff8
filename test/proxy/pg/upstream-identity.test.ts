/**
 * proxy.upstreamIdentity: per-token (issue 14 point 7): the proxy logs in upstream as an ephemeral role
 * holding exactly the chain's table rights, so PostgreSQL itself is a second lock behind the
 * classifier. One role per chain, shared by its sessions; dropped when the chain is revoked.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TEST_DATABASE_URL } from '../../helpers/database.ts';
import { launchStandaloneProxy, spawnStandaloneProxy } from '../../helpers/standalone-proxy.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';

let s: TestStack;
let engineer: string;

beforeAll(async () => {
  s = await startTestStack('pg_identity', {}, { perTokenIdentity: true });
  engineer = await s.token('alice', ['engineers']);
}, 60_000);

afterAll(async () => {
  await s?.stop();
});

const privileges = async (role: string) =>
  (
    await s.direct(
      `SELECT has_table_privilege($1, 'public.orders', 'SELECT') AS orders_read, has_table_privilege($1, 'public.orders', 'INSERT') AS orders_insert,
              has_table_privilege($1, 'public.customers', 'SELECT') AS customers_read, (SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = $1) AS powerful`,
      [role],
    )
  ).rows[0];

describe('per-token upstream identity', () => {
  it('a session runs upstream as the chain’s own role, which holds only the chain’s table rights', async () => {
    const child = s.attenuate(engineer, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'reader' });
    const c = await s.connect(child);
    const who = (await c.query('SELECT current_user AS u')).rows[0].u as string;
    expect(who).toMatch(/^baton_[0-9a-f]{16}$/);
    expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
    expect(await privileges(who)).toEqual({ orders_read: true, orders_insert: false, customers_read: false, powerful: false });

    // a second session of the same chain reuses the role; another chain gets its own
    const again = await s.connect(child);
    expect((await again.query('SELECT current_user AS u')).rows[0].u).toBe(who);
    const c2 = await s.connect(engineer);
    const parentRole = (await c2.query('SELECT current_user AS u')).rows[0].u as string;
    expect(parentRole).not.toBe(who);
    // behind the proxy the role holds the token's rights whole: the proxy still masks and holds
    expect(await privileges(parentRole)).toEqual({ orders_read: true, orders_insert: true, customers_read: true, powerful: false });
  });

  it('revoking the chain drops its role', async () => {
    const child = s.attenuate(engineer, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'short-lived' });
    const c = await s.connect(child);
    const who = (await c.query('SELECT current_user AS u')).rows[0].u as string;
    await fetch(`${s.broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: child }) });
    await expect.poll(async () => (await s.direct('SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1', [who])).rows[0].n, { timeout: 3000 }).toBe(0);
  });
});

describe('baton proxy (own process) with proxy.upstreamIdentity: per-token', () => {
  it('refuses to start without an issuing login for every upstream, naming what is missing', async () => {
    const { child, stderr, exited } = await launchStandaloneProxy(s.broker, { appdb: s.appdbUrl }, { upstreamIdentity: 'per-token' });
    const code = await Promise.race([exited, new Promise<'running'>((r) => setTimeout(() => r('running'), 15_000))]);
    if (code === 'running') child.kill('SIGKILL');
    expect(code).not.toBe(0);
    expect(stderr()).toMatch(/per-token needs credentials\.postgres\.upstreams\.<name>\.adminUrl .* for appdb/);
  });

  it('logs in as the chain’s role, and reaps it when the chain is revoked', async () => {
    const issuing = new URL(TEST_DATABASE_URL);
    issuing.pathname = new URL(s.appdbUrl).pathname;
    const proxy = await spawnStandaloneProxy(s.broker, { appdb: s.appdbUrl }, { upstreamIdentity: 'per-token' }, {}, { credentials: { postgres: { upstreams: { appdb: { adminUrl: issuing.toString() } }, reapIntervalSeconds: 0.2 } } });
    try {
      const child = s.attenuate(engineer, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'standalone-reader' });
      const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'agent', database: 'appdb', password: child });
      c.on('error', () => {});
      await c.connect();
      const who = (await c.query('SELECT current_user AS u')).rows[0].u as string;
      expect(who).toMatch(/^baton_[0-9a-f]{16}$/);
      expect(await privileges(who)).toEqual({ orders_read: true, orders_insert: false, customers_read: false, powerful: false });
      await fetch(`${s.broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: child }) });
      await expect.poll(async () => (await s.direct('SELECT count(*)::int AS n FROM pg_roles WHERE rolname = $1', [who])).rows[0].n, { timeout: 3000 }).toBe(0);
      await c.end().catch(() => {});
    } finally {
      await proxy.stop();
    }
  });
});
