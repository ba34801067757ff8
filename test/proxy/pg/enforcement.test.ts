/**
 * The proxy with Baton's real gate: tokens from the broker, the real classifier, the real audit trail,
 * a real upstream, real clients (node-postgres, psql).
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockBuilder } from '../../../src/token/biscuit.ts';
import { dateParam } from '../../../src/token/terms.ts';
import { verifyToken } from '../../../src/token/verify.ts';
import { sqlstate, startTestStack, type TestStack } from '../../helpers/stack.ts';

const run = promisify(execFile);
let stack: TestStack;
let parent: string;
let ordersReader: string;

beforeAll(async () => {
  stack = await startTestStack('enforce');
  parent = await stack.token('alice@example.com', ['engineers'], 'planner');
  ordersReader = stack.attenuate(parent, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'helper-7', purpose: 'count orders' });
});
afterAll(async () => stack?.stop());

describe('a read-only, one-table token through the proxy', () => {
  it('lets allowed reads through', async () => {
    const c = await stack.connect(ordersReader);
    expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
    expect((await c.query('SELECT id FROM public.orders WHERE id < $1 ORDER BY id', [4])).rows.map((r) => r.id)).toEqual([1, 2, 3]);
    expect((await c.query({ name: 'by-id', text: 'SELECT amount_cents FROM orders WHERE id = $1', values: [1] })).rowCount).toBe(1);
    expect((await c.query({ name: 'by-id', text: 'SELECT amount_cents FROM orders WHERE id = $1', values: [2] })).rowCount).toBe(1);
    expect((await c.query('WITH x AS (SELECT * FROM orders) SELECT count(*) FROM x')).rowCount).toBe(1);
    expect((await c.query('SELECT 1 AS one, now()')).rows[0].one).toBe(1);
  });

  it.each([
    'INSERT INTO orders (customer_id, amount_cents) VALUES (1, 1)',
    'UPDATE orders SET amount_cents = 0',
    'DELETE FROM orders',
    'SELECT * FROM orders JOIN customers ON customers.id = orders.customer_id',
    'WITH d AS (DELETE FROM orders RETURNING *) SELECT count(*) FROM d',
    'SELECT * INTO orders_copy FROM orders',
    "COPY orders TO PROGRAM 'id'",
    'SELECT 1; DELETE FROM orders',
    'SET ROLE postgres',
    'SELECT * FROM customers',
    "SELECT query_to_xml('delete from orders', true, true, '')",
    'SELECT * FROM pg_authid',
    'TRUNCATE orders',
    'DROP TABLE orders',
    'SELEC garbage FROM',
  ])('denies %s with 42501 and the session keeps working', async (sql) => {
    const c = await stack.connect(ordersReader);
    expect(await sqlstate(c.query(sql))).toBe('42501');
    expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
  });

  it('names the resource, the operation and the link that forbade it', async () => {
    const c = await stack.connect(ordersReader);
    const err = (await c.query('DELETE FROM orders WHERE id = 1').catch((e: Error) => e)) as Error;
    expect(err.message).toBe('baton: permission denied for delete on pg:appdb/public.orders: forbidden by link 1 (delegated to helper-7)');
    const root = (await (await stack.connect(parent)).query('TRUNCATE orders').catch((e: Error) => e)) as Error;
    expect(root.message).toMatch(/permission denied for truncate on pg:appdb\/public.orders: not granted to alice@example.com via agent planner \(link 0\)/);
  });

  it('denies a prepared DELETE (extended protocol) and keeps the session', async () => {
    const c = await stack.connect(ordersReader);
    expect(await sqlstate(c.query({ name: 'del', text: 'DELETE FROM orders WHERE id = $1', values: [1] }))).toBe('42501');
    expect(await sqlstate(c.query('DELETE FROM orders WHERE id = $1', [1]))).toBe('42501');
    expect((await c.query('SELECT count(*)::int AS n FROM orders WHERE id > $1', [0])).rows[0].n).toBe(300);
  });

  it('aborts the transaction on a denial inside it, exactly as Postgres would', async () => {
    const c = await stack.connect(ordersReader);
    await c.query('BEGIN');
    await c.query('SELECT 1 FROM orders LIMIT 1');
    expect(await sqlstate(c.query('DELETE FROM orders'))).toBe('42501');
    expect(await sqlstate(c.query('SELECT 1'))).toBe('25P02');
    const commit = await c.query('COMMIT');
    expect(commit.command).toBe('ROLLBACK');
    expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
  });

  it('resolves unqualified names against every schema the session ever put on its search_path', async () => {
    const c = await stack.connect(ordersReader);
    await c.query('SET search_path TO evil, public');
    // upstream would read public.orders (no evil.orders exists) but evil.orders could be created later: deny
    expect(await sqlstate(c.query('SELECT count(*) FROM orders'))).toBe('42501');
    await c.query('SET search_path TO public');
    expect(await sqlstate(c.query('SELECT count(*) FROM orders'))).toBe('42501'); // the union never shrinks
    expect((await c.query('SELECT count(*)::int AS n FROM public.orders')).rows[0].n).toBe(300);
  });

  it('pins the upstream session to the rules the classifier assumes', async () => {
    const appdb = new URL(stack.appdbUrl).pathname.slice(1);
    await stack.direct(`ALTER DATABASE ${appdb} SET search_path = evil, public`);
    await stack.direct(`ALTER DATABASE ${appdb} SET standard_conforming_strings = off`);
    try {
      const c = await stack.connect(ordersReader);
      const settings = await c.query("SELECT current_setting('search_path') AS sp, current_setting('standard_conforming_strings') AS scs");
      expect(settings.rows[0]).toEqual({ sp: 'public', scs: 'on' });
    } finally {
      await stack.direct(`ALTER DATABASE ${appdb} RESET search_path`);
      await stack.direct(`ALTER DATABASE ${appdb} RESET standard_conforming_strings`);
    }
  });

  it('works with psql, and psql sees the denial as SQLSTATE 42501', async () => {
    const psql = (sql: string) =>
      run('psql', ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-v', 'VERBOSITY=verbose', '-h', '127.0.0.1', '-p', String(stack.proxy.port), '-U', 'agent', '-d', 'appdb', '-c', sql], {
        env: { ...process.env, PGPASSWORD: ordersReader, PGSSLMODE: 'disable' },
      }).then(
        (r) => ({ ok: true, out: r.stdout }),
        (e: { stderr: string }) => ({ ok: false, out: e.stderr }),
      );
    expect(await psql('SELECT count(*) FROM orders')).toEqual({ ok: true, out: '300\n' });
    const denied = await psql('DELETE FROM orders');
    expect(denied.ok).toBe(false);
    expect(denied.out).toMatch(/ERROR:\s+42501: baton: permission denied for delete on pg:appdb\/public.orders/);
    // psql's own metadata queries pass by the catalog rule
    expect((await psql('\\d orders')).out).toMatch(/customer_id/);
    expect((await stack.direct('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
  });
});

describe('connecting', () => {
  it('refuses a bad token with 28P01, an unknown database with 3D000, and keeps serving', async () => {
    expect(await sqlstate(stack.connect('garbage'))).toBe('28P01');
    expect(await sqlstate(stack.connect(ordersReader, 'nodb'))).toBe('3D000');
    const c = await stack.connect(ordersReader);
    expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
  });

  it('re-authorizes every statement of a token whose checks are outside the vocabulary (no decision cache)', async () => {
    // a hand-written block with a time limit in a shape lineage does not read as an expiry
    const limit = new Date(Date.now() + 2000);
    const v = verifyToken(parent, stack.broker.keyring);
    const block = new BlockBuilder();
    block.addCodeWithParameters('delegated_to("hand-written"); check if time($t), {limit} > $t;', { limit: dateParam(limit) }, {});
    const custom = v.biscuit.appendBlock(block).toBase64();
    v.biscuit.free();
    const c = await stack.connect(custom);
    expect((await c.query('SELECT count(*) FROM orders')).rowCount).toBe(1);
    await new Promise((r) => setTimeout(r, limit.getTime() - Date.now() + 1100));
    expect(await sqlstate(c.query('SELECT count(*) FROM orders'))).toBe('42501');
  });

  it('checks expiry on every statement: a short token stops working mid-session', async () => {
    const short = stack.attenuate(parent, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: 2, delegateTo: 'short-lived' });
    const c = await stack.connect(short);
    expect((await c.query('SELECT count(*) FROM orders')).rowCount).toBe(1);
    await new Promise((r) => setTimeout(r, 3100));
    const err = (await c.query('SELECT count(*) FROM orders').catch((e: Error & { code: string; severity: string }) => e)) as Error & { code: string; severity?: string };
    expect(err.code).toBe('28P01');
    expect(err.message).toMatch(/expired/);
    expect(await sqlstate(stack.connect(short))).toBe('28P01');
  });
});
