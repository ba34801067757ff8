/**
 * POST /v1/revoke cannot be flooded (real Redis, real PostgreSQL, the production startBroker): the
 * review revoked 300 offline-minted children of one token by possession in 5 s, each a permanent row
 * every proxy holds in memory. Now: 429 + Retry-After past the per-lineage and per-address limits, the
 * lineage's rows stay bounded, a dead token stores nothing, normal revocations still work.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker, type BrokerHandle } from '../../src/broker/server.ts';
import type { ConfigInput } from '../../src/config/schema.ts';
import { openSharedState, type SharedState } from '../../src/store/shared-state.ts';
import { attenuate } from '../../src/token/attenuate.ts';
import { JWT_TYPE, TOKEN_EXCHANGE, testBrokerConfig } from '../helpers/broker.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { randomPrefix, startProxyLikeSet, TEST_REDIS_URL } from '../helpers/revocation-broker.ts';

interface Broker {
  handle: BrokerHandle;
  state: SharedState;
  prefix: string;
  token(sub: string): Promise<string>;
  close(): Promise<void>;
}

async function start(db: TestDatabase, limits: NonNullable<NonNullable<ConfigInput['broker']>['revocationLimits']>): Promise<Broker> {
  const prefix = randomPrefix('flood');
  const state = openSharedState({ url: TEST_REDIS_URL, prefix });
  const config = testBrokerConfig(mkdtempSync(join(tmpdir(), 'baton-flood-')), db.url, {
    broker: { rateLimit: { perSubject: 10_000, perClient: 10_000 }, revocationLimits: limits },
  });
  const handle = await startBroker(config, { devIssuer: true, state });
  await handle.revocations.whenCurrent();
  return {
    handle,
    state,
    prefix,
    async token(sub) {
      const dev = await fetch(`${handle.url}/dev/oidc/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sub, groups: ['engineers'] }) });
      const { access_token: jwt } = (await dev.json()) as { access_token: string };
      const res = await fetch(`${handle.url}/v1/token`, { method: 'POST', body: new URLSearchParams({ grant_type: TOKEN_EXCHANGE, subject_token: jwt, subject_token_type: JWT_TYPE }) });
      return ((await res.json()) as { access_token: string }).access_token;
    },
    async close() {
      await handle.close();
      await state.close();
    },
  };
}

const revoke = (b: Broker, token: string) => fetch(`${b.handle.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token }) });
const lineageRows = async (db: TestDatabase) =>
  (await db.pool.query<{ token_id: string; n: number }>('SELECT token_id, count(*)::int AS n FROM revocations GROUP BY token_id')).rows;

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase('flood');
});
afterAll(async () => db?.drop());

describe('revocation flood limits (per lineage)', () => {
  let b: Broker;
  beforeAll(async () => {
    b = await start(db, { perAddress: 10_000, perLineage: 25, maxOutstandingPerLineage: 10 });
  });
  afterAll(async () => b?.close());

  it('300 offline children of one token revoked by possession: 429 with Retry-After past the limits, at most 10 rows, proxies hold at most 10 ids', async () => {
    const proxy = await startProxyLikeSet({ brokerUrl: b.handle.url, redisUrl: TEST_REDIS_URL, prefix: b.prefix });
    try {
      const parent = await b.token('mallory');
      const children = Array.from({ length: 300 }, (_, i) => attenuate(parent, { delegateTo: `c-${i}`, ttl: '10m' }));
      const answers: { status: number; retryAfter: string | null; body: { revoked?: boolean; code?: string } }[] = [];
      for (let i = 0; i < children.length; i += 30) {
        answers.push(
          ...(await Promise.all(children.slice(i, i + 30).map(async (c) => {
            const res = await revoke(b, c);
            return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { revoked?: boolean; code?: string } };
          }))),
        );
      }
      const ok = answers.filter((a) => a.status === 200);
      const limited = answers.filter((a) => a.status === 429);
      expect(ok.length).toBe(10);
      expect(limited.length).toBe(290);
      for (const a of limited) {
        expect(a.body.code).toBe('BATON_ERR_RATE_LIMITED');
        expect(Number(a.retryAfter)).toBeGreaterThan(0);
      }
      // the outstanding bound: Retry-After is when the lineage's earliest row expires (~10 min)
      expect(limited.some((a) => Number(a.retryAfter) > 500)).toBe(true);
      // the per-lineage rate: Retry-After is the window (≤ 60 s)
      expect(limited.some((a) => Number(a.retryAfter) <= 60)).toBe(true);
      expect((await lineageRows(db)).map((r) => r.n)).toEqual([10]);
      await new Promise((r) => setTimeout(r, 300));
      expect(proxy.set.size).toBe(10);
      // the holder of the issued token can still kill the whole lineage: one row replaces the ten
      const res = await revoke(b, parent);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ revoked: true });
      expect((await lineageRows(db)).map((r) => r.n)).toEqual([1]);
    } finally {
      await proxy.close();
    }
  });

  it('a token whose ancestor is revoked stores nothing new; normal revocations of other lineages still work; rows carry the token expiry', async () => {
    const parent = await b.token('alice');
    const child = attenuate(parent, { delegateTo: 'helper-1', ttl: '5m' });
    const grandchild = attenuate(child, { delegateTo: 'helper-2', ttl: '2m' });
    const before = Date.now();
    const r1 = await revoke(b, child);
    expect(r1.status).toBe(200);
    const { revocation_id: childId } = (await r1.json()) as { revocation_id: string };
    const count = async () => (await db.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM revocations')).rows[0]!.n;
    const n = await count();
    const r2 = await revoke(b, grandchild);
    expect(r2.status).toBe(200);
    expect(await r2.json()).toEqual({ revoked: true, revocation_id: childId }); // the id that kills it
    expect(await count()).toBe(n);
    // possession rows expire with the token (5 min), so purge removes them
    const { rows } = await db.pool.query<{ expires_at: Date }>('SELECT expires_at FROM revocations WHERE revocation_id = $1', [childId]);
    expect(Math.abs(rows[0]!.expires_at.getTime() - (before + 5 * 60_000))).toBeLessThan(5_000);
  });
});

describe('revocation flood limits (per client address)', () => {
  let b: Broker;
  beforeAll(async () => {
    b = await start(db, { perAddress: 5, perLineage: 1000, maxOutstandingPerLineage: 1000 });
  });
  afterAll(async () => b?.close());

  it('refuses the 6th call in a minute from one address with 429 + Retry-After, even for garbage', async () => {
    const tokens = await Promise.all(Array.from({ length: 3 }, (_, i) => b.token(`user-${i}`)));
    const statuses: number[] = [];
    for (const t of tokens) statuses.push((await revoke(b, t)).status);
    statuses.push((await revoke(b, 'garbage')).status, (await revoke(b, 'garbage')).status);
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    const res = await revoke(b, await b.token('user-9'));
    expect(res.status).toBe(429);
    expect(Number(res.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(Number(res.headers.get('retry-after'))).toBeLessThanOrEqual(60);
  });
});
