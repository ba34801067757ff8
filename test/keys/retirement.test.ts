/**
 * Retiring a root key ends live sessions of the tokens it signed, like a revocation: the broker's
 * in-process proxy (its Keyring is the key source), with the retirement made by `baton keys` from
 * another process (the broker follows the key file). The standalone proxy is tested in
 * test/proxy/pg/standalone.test.ts; the remote key set's polling, ETag, announcements and fail-closed
 * bound in remote-keyset.test.ts.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const run = promisify(execFile);
let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack('keyretire');
});
afterAll(async () => stack?.stop());

const sqlError = (p: Promise<unknown>) => p.then(() => undefined, (e: { code?: string; message: string; severity?: string }) => e);
const keysCli = (...args: string[]) => run('node', ['bin/baton.mjs', 'keys', ...args, '--data-dir', stack.broker.dataDir]);

describe('retiring a root key (in-broker proxy)', () => {
  it("refuses the open session's next statement with 28P01 and ends it; new connections are refused; tokens of the new key live", async () => {
    const oldToken = await stack.token('alice', ['engineers'], 'planner');
    const child = stack.attenuate(oldToken, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'helper-7' });
    const session = await stack.connect(child);
    expect((await session.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);

    const oldKey = stack.broker.keyring.signingKey().id;
    await keysCli('rotate');
    // the broker follows the file: wait until it signs with the new key
    for (let i = 0; i < 50 && stack.broker.keyring.signingKey().id === oldKey; i++) await new Promise((r) => setTimeout(r, 100));
    const newToken = await stack.token('bob', ['engineers'], 'planner');
    const newSession = await stack.connect(newToken);
    // rotation alone ends nothing: the old key still verifies
    expect((await session.query('SELECT 1 AS x')).rows[0].x).toBe(1);

    await keysCli('retire', String(oldKey));
    const started = Date.now(); // the key file says "retired" from here on
    let err: { code?: string; message: string; severity?: string } | undefined;
    while (!err && Date.now() - started < 5000) {
      err = await sqlError(session.query('SELECT 1 FROM orders LIMIT 1'));
      if (!err) await new Promise((r) => setTimeout(r, 50));
    }
    expect(err?.code).toBe('28P01');
    expect(err?.message).toMatch(/root key \(\d+\) has been retired/);
    expect(Date.now() - started).toBeLessThan(2500); // the broker follows the key file every second
    // the session is then ended (FATAL): nothing more runs on it
    expect(await sqlError(session.query('SELECT 1'))).toBeDefined();
    for (const t of [oldToken, child]) {
      const refused = await sqlError(stack.connect(t));
      expect(refused?.code).toBe('28P01');
      expect(refused?.message).toMatch(/unknown or retired key/);
    }
    // the new key's session and new connections with its tokens are untouched
    expect((await newSession.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    expect((await (await stack.connect(newToken)).query('SELECT 1 AS x')).rows[0].x).toBe(1);
    // the refusal is audited as a denial naming the retirement
    const { rows } = await stack.broker.testDb.pool.query("SELECT reason FROM audit_events WHERE source = 'proxy-pg' AND decision = 'deny'");
    expect(rows.map((r) => r.reason)).toContainEqual(expect.stringMatching(/retired/));
  });
});
