/** `baton audit …` against a real broker: verify names a row tampered with as superuser; tail; tree. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const run = promisify(execFile);
let stack: TestStack;
let admin: string;
beforeAll(async () => {
  stack = await startTestStack('auditcli');
  admin = await stack.token('root', ['admins']);
});
afterAll(async () => stack?.stop());

const baton = (args: string[]) =>
  run('node', ['bin/baton.mjs', 'audit', ...args, '--broker', stack.broker.url], { env: { ...process.env, BATON_TOKEN: admin } }).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
  );

describe('baton audit', () => {
  it('tails events and shows the delegation tree with counts per link', async () => {
    const root = await stack.token('alice', ['engineers'], 'planner');
    const helper = stack.attenuate(root, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'helper-7' });
    const c = await stack.connect(helper);
    await c.query('SELECT count(*) FROM orders');
    await c.query('DELETE FROM orders').catch(() => {});
    const tail = await baton(['tail', '--json', '--limit', '5']);
    expect(tail.code).toBe(0);
    const events = tail.out.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.at(-1)).toMatchObject({ decision: 'deny', operation: 'delete' });
    const tokenId = events.at(-1).tokenId as string;
    const tree = await baton(['tree', tokenId]);
    expect(tree.out).toMatch(/alice via planner/);
    expect(tree.out).toMatch(/→ helper-7\s+allowed 1, denied 1/);
  });

  it('verify passes on an intact chain and names the first row changed directly as superuser', async () => {
    expect(await baton(['verify'])).toMatchObject({ code: 0, out: expect.stringMatching(/^audit chain OK/) });
    const pool = stack.broker.testDb.pool;
    const { rows } = await pool.query<{ seq: string; id: string }>('SELECT seq, id FROM audit_events ORDER BY seq LIMIT 1 OFFSET 1');
    const victim = rows[0]!;
    await pool.query('ALTER TABLE audit_events DISABLE TRIGGER ALL');
    await pool.query("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = $1", [victim.seq]);
    await pool.query('ALTER TABLE audit_events ENABLE TRIGGER ALL');
    const broken = await baton(['verify']);
    expect(broken.code).toBe(1);
    expect(broken.out).toContain(`audit_events seq ${victim.seq} (id ${victim.id})`);
    // the application role cannot do the same: the trigger refuses UPDATE and DELETE
    await expect(pool.query('DELETE FROM audit_events WHERE seq = $1', [victim.seq])).rejects.toThrow();
  });

  it('refuses a non-admin token', async () => {
    const { code, err } = await run('node', ['bin/baton.mjs', 'audit', 'verify', '--broker', stack.broker.url], {
      env: { ...process.env, BATON_TOKEN: await stack.token('bob', ['analysts']) },
    }).then(() => ({ code: 0, err: '' }), (e: { code: number; stderr: string }) => ({ code: e.code, err: e.stderr }));
    expect(code).toBe(1);
    expect(err).toMatch(/403 BATON_ERR_FORBIDDEN/);
  });
});
