/**
 * `databaseReadUrl` (issue 15 point 2): audit queries, trees, exports and introspection's issued-token
 * lookup read the replica; verification, the revocation feed and revocation checks never do. The
 * "replica" here is a database that lags as far as one can — it has none of the primary's rows — so
 * every read that goes to it shows, and a revoked token must still look revoked.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createAuditWriter } from '../../src/audit/writer.ts';
import { attenuate } from '../../src/token/attenuate.ts';
import { exchange } from '../../src/sdk/exchange.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';

let replica: TestDatabase;
let broker: TestBroker;
let admin: string;

beforeAll(async () => {
  replica = await createTestDatabase('replica');
  broker = await startTestBroker('read_replica', { databaseReadUrl: replica.url });
  admin = await exchange({ broker: broker.url, subjectToken: await broker.devToken('root', ['admins']) });
}, 60_000);

afterAll(async () => {
  await broker?.stop();
  await replica?.drop();
});

const get = async (path: string) => {
  const res = await fetch(`${broker.url}${path}`, { headers: { authorization: `Bearer ${admin}` } });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe('databaseReadUrl', () => {
  it('audit queries are answered from the replica; verification reads the primary', async () => {
    const alice = await exchange({ broker: broker.url, subjectToken: await broker.devToken('alice', ['engineers']) });
    expect(alice).toBeTruthy();
    // the primary has alice's exchange; the lagging replica does not, and the broker answers from it
    const onPrimary = await broker.db.pool.query(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'token.exchange'`);
    expect(onPrimary.rows[0].n).toBeGreaterThan(0);
    expect(((await get('/v1/audit?subject=alice')).body.events as unknown[]).length).toBe(0);
    // an entry only the replica holds is what the broker shows
    const writer = createAuditWriter(replica.pool);
    await writer.append({ source: 'broker', action: 'token.exchange', decision: 'allow', lineage: [{ depth: 0, subject: 'replica-only', constraints: {}, revocationId: 'ab' }] });
    await writer.close();
    expect(((await get('/v1/audit?subject=replica-only')).body.events as Array<{ lineage: Array<{ subject: string }> }>)[0]?.lineage[0]?.subject).toBe('replica-only');
    // verification: the primary's chains, checked against the anchors (the replica's would look truncated)
    const verify = await get('/v1/audit/verify');
    expect(verify.body.ok).toBe(true);
    expect(verify.body.count as number).toBeGreaterThan(0);
  });

  it('a revoked token is inactive although the replica never saw the revocation; the feed serves it', async () => {
    const alice = await exchange({ broker: broker.url, subjectToken: await broker.devToken('alice', ['engineers']) });
    const child = attenuate(alice, { delegateTo: 'helper' });
    const introspect = async (token: string) =>
      (await (await fetch(`${broker.url}/v1/introspect`, { method: 'POST', headers: { authorization: `Bearer ${admin}` }, body: new URLSearchParams({ token }) })).json()) as { active: boolean; iat?: number };
    const live = await introspect(child);
    expect(live.active).toBe(true);
    expect(live.iat).toBeUndefined(); // issued_at was looked up on the replica, which lags
    await fetch(`${broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: child }) });
    expect((await introspect(child)).active).toBe(false);
    const feed = (await (await fetch(`${broker.url}/v1/revocations`)).json()) as { entries: Array<{ revocation_id: string }> };
    expect(feed.entries.length).toBeGreaterThan(0);
    expect((await replica.pool.query('SELECT count(*)::int AS n FROM revocations')).rows[0].n).toBe(0);
  });
});
