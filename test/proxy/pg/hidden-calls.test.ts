/**
 * The attack review's bypasses through the real proxy, real gate and real upstream: calls without
 * call syntax, objects created mid-session, settings, and tokens that grant nothing on the upstream.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockBuilder } from '../../../src/token/biscuit.ts';
import { verifyToken } from '../../../src/token/verify.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';

let stack: TestStack;
let parent: string;
let ordersReader: string;
let admin: string;

beforeAll(async () => {
  stack = await startTestStack('hidden');
  parent = await stack.token('alice@example.com', ['engineers'], 'planner');
  admin = await stack.token('root@example.com', ['admins'], 'ops');
  ordersReader = stack.attenuate(parent, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'helper-7' });
});
afterAll(async () => stack?.stop());

async function failure(p: Promise<unknown>): Promise<{ code?: string; message: string } | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e as { code?: string; message: string };
  }
}

describe('calls without call syntax are refused like calls', () => {
  it.each([
    "SELECT ('/etc/passwd'::text).pg_read_file",
    "SELECT ('select card_number from customers'::text).ts_stat",
    "SELECT o.nextval FROM orders o",
    "SELECT (o.id).pg_terminate_backend FROM orders o",
    "SELECT ('standard_conforming_strings'::text).set_config",
    "SELECT ('data_directory'::text).current_setting",
    "SELECT current_setting('data_directory')",
    'SHOW data_directory',
    'SELECT pg_sleep(30)',
    'SELECT name, setting FROM pg_settings',
  ])('%s → 42501, and the session keeps working', async (sql) => {
    const c = await stack.connect(ordersReader);
    const err = await failure(c.query(sql));
    expect(err?.code).toBe('42501');
    expect((await c.query('SELECT count(*)::int AS n FROM orders o WHERE o.id > 0')).rows[0].n).toBe(300);
    await c.end();
  });

  it('a function created behind the proxy is seen within the snapshot refresh', async () => {
    await stack.direct(`CREATE FUNCTION public.peek2(o public.orders) RETURNS int LANGUAGE sql AS 'SELECT 1'`);
    try {
      const c = await stack.connect(ordersReader);
      const deadline = Date.now() + 15_000;
      let code: string | undefined;
      while (Date.now() < deadline && code !== '42501') {
        code = (await failure(c.query('SELECT o.peek2 FROM orders o LIMIT 1')))?.code;
        if (code !== '42501') await new Promise((r) => setTimeout(r, 250));
      }
      expect(code).toBe('42501');
      expect((await failure(c.query('SELECT o.peek2 FROM orders o LIMIT 1')))?.message).toMatch(/execute on pg:appdb\/public\.peek2\(\)/);
      // a token with the right may call it, in either notation
      const a = await stack.connect(admin);
      expect((await a.query('SELECT o.peek2 AS p, public.peek2(o) AS q FROM orders o LIMIT 1')).rows[0]).toEqual({ p: 1, q: 1 });
      await a.end();
      await c.end();
    } finally {
      await stack.direct('DROP FUNCTION public.peek2(public.orders)');
    }
  });
});

describe('a session needs a right on its upstream', () => {
  it('a token that grants nothing on this upstream cannot connect, so cannot run version() or read catalogs', async () => {
    const elsewhere = stack.attenuate(admin, { resources: ['pg:otherdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'elsewhere' });
    const err = await failure(stack.connect(elsewhere));
    expect(err?.code).toBe('42501');
    expect(err?.message).toMatch(/grants nothing on upstream appdb/);
  });

  it('nor can a token whose hand-written check denies every resource', async () => {
    const v = verifyToken(parent, stack.broker.keyring);
    const block = new BlockBuilder();
    block.addCode('delegated_to("nobody"); check if resource("pg:nowhere/none");');
    const denyAll = v.biscuit.appendBlock(block).toBase64();
    v.biscuit.free();
    const err = await failure(stack.connect(denyAll));
    expect(err?.code).toBe('42501');
  });
});
