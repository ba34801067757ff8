/**
 * `baton proxy` as its own process: keys fetched from the broker's key set, revocations by channel
 * fan-out + HTTP resync, audit into the broker's database, production config validated.
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDemoUpstream } from '../../../src/dev/demo-upstream.ts';
import { attenuate } from '../../../src/token/attenuate.ts';
import { exchange } from '../../../src/sdk/exchange.ts';
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts';
import { TEST_DATABASE_URL } from '../../helpers/database.ts';
import { spawnStandaloneProxy, type StandaloneProxy } from '../../helpers/standalone-proxy.ts';

let broker: TestBroker;
let standalone: StandaloneProxy;
let port: number;
let appdb: string;

beforeAll(async () => {
  broker = await startTestBroker('standalone');
  const admin = new URL(TEST_DATABASE_URL);
  admin.pathname = '/postgres';
  appdb = `baton_t_standalone_appdb_${process.pid}`;
  const appdbUrl = await ensureDemoUpstream(admin.toString(), appdb);
  standalone = await spawnStandaloneProxy(broker, { appdb: appdbUrl });
  port = standalone.port;
});
afterAll(async () => {
  await standalone?.stop();
  await broker?.stop();
  const a = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await a.connect();
  await a.query(`DROP DATABASE IF EXISTS ${appdb} WITH (FORCE)`);
  await a.end();
});

const connect = async (token: string) => {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'agent', database: 'appdb', password: token });
  c.on('error', () => {});
  await c.connect();
  return c;
};

describe('baton proxy (own process)', () => {
  it('enforces tokens from the broker and learns revocations within a second', async () => {
    const token = await exchange({ broker: broker.url, subjectToken: await broker.devToken('alice', ['engineers']) });
    const child = attenuate(token, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'helper-7' });
    const c = await connect(child);
    expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
    await expect(c.query('DELETE FROM orders')).rejects.toMatchObject({ code: '42501' });
    const t0 = Date.now();
    await fetch(`${broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token }) });
    let refused: { code?: string } | undefined;
    while (!refused && Date.now() - t0 < 3000) {
      refused = await c.query('SELECT 1').then(() => undefined, (e: { code?: string }) => e);
      if (!refused) await new Promise((r) => setTimeout(r, 20));
    }
    expect(refused?.code).toBe('28P01');
    expect(Date.now() - t0).toBeLessThan(1000 + (process.env.REDIS_URL ? 0 : 1500)); // without Redis: periodic resync only
    // the statements were audited into the broker's trail with their lineage
    // (each lineage is stored once, in audit_lineages: docs/audit.md)
    const { rows } = await broker.testDb.pool.query(
      "SELECT e.decision, l.delegates FROM audit_events AS e JOIN audit_lineages AS l ON l.hash = e.lineage_hash WHERE e.source = 'proxy-pg' ORDER BY e.seq",
    );
    const decisions = rows.map((r) => r.decision);
    expect(decisions.slice(0, 2)).toEqual(['allow', 'deny']);
    expect(decisions.at(-1)).toBe('deny'); // the refused statement (earlier SELECT 1s ran before the revocation arrived)
    expect(rows[0].delegates).toContain('helper-7');
    expect(standalone.stderr).not.toContain(token);
    expect(standalone.stderr).not.toContain(child);
  });

  it('picks up a rotated broker key without restarting', async () => {
    broker.keyring.rotate();
    await new Promise((r) => setTimeout(r, 1100)); // unknown key ids trigger at most one refetch a second
    const token = await exchange({ broker: broker.url, subjectToken: await broker.devToken('bob', ['analysts']) });
    const c = await connect(token);
    expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
  });

  it('ends a live session within seconds when its root key is retired (baton keys retire), and refuses new connections', async () => {
    const token = await exchange({ broker: broker.url, subjectToken: await broker.devToken('carol', ['engineers']) });
    const child = attenuate(token, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'helper-8' });
    const c = await connect(child);
    expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
    const signedBy = broker.keyring.signingKey().id;
    broker.keyring.rotate();
    const fresh = await exchange({ broker: broker.url, subjectToken: await broker.devToken('dave', ['engineers']) });
    const t0 = Date.now();
    await promisify(execFile)('node', ['bin/baton.mjs', 'keys', 'retire', String(signedBy), '--data-dir', broker.dataDir]);
    const written = Date.now(); // the key file says "retired" from here on
    let refused: { code?: string; message?: string } | undefined;
    while (!refused && Date.now() - t0 < 10_000) {
      refused = await c.query('SELECT 1').then(() => undefined, (e: { code?: string; message?: string }) => e);
      if (!refused) await new Promise((r) => setTimeout(r, 50));
    }
    const took = Date.now() - t0;
    expect(refused?.code).toBe('28P01');
    expect(refused?.message).toMatch(/root key \(\d+\) has been retired/);
    // the broker follows the key file (≤ 1 s) and announces on Redis (the proxy refetches at once);
    // without Redis the proxy's 2 s poll decides. `took` also counts the CLI's own start-up.
    const sinceWritten = Date.now() - written;
    if (process.env.BATON_TEST_TIMINGS) process.stderr.write(`retirement → refused statement: ${took} ms (${sinceWritten} ms after the key file changed)\n`);
    expect(sinceWritten).toBeLessThan(process.env.REDIS_URL ? 2500 : 4000);
    expect(await c.query('SELECT 1').then(() => 'ran', () => 'ended')).toBe('ended');
    for (const t of [token, child]) await expect(connect(t)).rejects.toMatchObject({ code: '28P01', message: expect.stringMatching(/unknown or retired key/) });
    const ok = await connect(fresh);
    expect((await ok.query('SELECT 1 AS x')).rows[0].x).toBe(1);
    await ok.end();
  });
});
