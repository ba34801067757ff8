/**
 * The token-layer fix seen end to end through the Postgres proxy: the proxy caches decisions of tokens
 * whose lineage is exact until the lineage expiry, so lineage must never read a check it only half
 * understands. `check if time($t), $t <= FAR && $t <= NEAR` used to be read as expiring at FAR, and an
 * open session kept its cached allow past NEAR. (Lives here, not in test/proxy, because it guards
 * src/token/lineage.ts; the proxy's own caching rule is tested in test/proxy/pg/enforcement.test.ts.)
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BlockBuilder } from '../../src/token/biscuit.ts';
import { dateParam } from '../../src/token/terms.ts';
import { verifyToken } from '../../src/token/verify.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

let stack: TestStack;
beforeAll(async () => {
  stack = await startTestStack('farnear');
});
afterAll(async () => stack?.stop());

describe('the proxy with a hand-written `FAR && NEAR` expiry', () => {
  it('refuses a `$t <= FAR && $t <= NEAR` child after NEAR in an open session (no cached allow)', async () => {
    const parent = await stack.token('alice@example.com', ['engineers'], 'planner');
    const near = new Date(Date.now() + 2000);
    const far = new Date(Date.now() + 600_000);
    const v = verifyToken(parent, stack.broker.keyring);
    const block = new BlockBuilder();
    block.addCodeWithParameters('delegated_to("far-near"); check if time($t), $t <= {far} && $t <= {near};', { far: dateParam(far), near: dateParam(near) }, {});
    const child = v.biscuit.appendBlock(block).toBase64();
    v.biscuit.free();
    const c = await stack.connect(child);
    expect((await c.query('SELECT count(*) FROM orders')).rowCount).toBe(1);
    await new Promise((r) => setTimeout(r, near.getTime() - Date.now() + 1100));
    const err = await c.query('SELECT count(*) FROM orders').then(() => undefined, (e: { code?: string }) => e.code);
    expect(err).toBe('42501');
  });
});
