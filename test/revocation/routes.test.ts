/**
 * Revocation end to end against a real broker (PostgreSQL + Redis, random channel prefix) and a
 * proxy-like RevocationSet with its own subscriber that resyncs over HTTP: cascade to descendants,
 * who may revoke what, introspection, the `since` protocol, restart durability, purge.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/keys/keyring.ts';
import { revoke, listSince, purgeExpired } from '../../src/revocation/store.ts';
import { attenuate } from '../../src/token/attenuate.ts';
import { mintToken } from '../../src/token/mint.ts';
import { verifyToken } from '../../src/token/verify.ts';
import { appendBlock, binary, checkIf, date, pred, query, str, variable } from '../../src/token/wire/index.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { randomPrefix, startProxyLikeSet, startRevocationBroker, TEST_REDIS_URL, type RevocationBroker } from '../helpers/revocation-broker.ts';

// Needs a real Redis (cross-process fan-out); without REDIS_URL the suite runs on in-process state and skips this file.
const NO_REDIS = !process.env.REDIS_URL;

let testDb: TestDatabase;
let broker: RevocationBroker;
let proxy: Awaited<ReturnType<typeof startProxyLikeSet>>;
const prefix = randomPrefix('revocation');

beforeAll(async () => {
  if (NO_REDIS) return;
  testDb = await createTestDatabase('revocation');
  broker = await startRevocationBroker({ databaseUrl: testDb.url, redisUrl: TEST_REDIS_URL, prefix });
  proxy = await startProxyLikeSet({ brokerUrl: broker.url, redisUrl: TEST_REDIS_URL, prefix });
});
afterAll(async () => {
  await proxy?.close();
  await broker?.close();
  await testDb?.drop();
});

const idsOf = (token: string) => {
  const v = verifyToken(token, broker.keyring);
  v.biscuit.free();
  return v.revocationIds;
};

async function post(path: string, body: Record<string, string>, opts: { bearer?: string; json?: boolean } = {}) {
  const headers: Record<string, string> = {};
  if (opts.bearer) headers.authorization = `Bearer ${opts.bearer}`;
  if (opts.json) headers['content-type'] = 'application/json';
  const res = await fetch(`${broker.url}${path}`, { method: 'POST', headers, body: opts.json ? JSON.stringify(body) : new URLSearchParams(body) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

async function until(cond: () => boolean, timeoutMs = 2000): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 2));
  }
  return performance.now() - start;
}

const rows = async () => Number((await testDb.pool.query('SELECT count(*) FROM revocations')).rows[0].count);

describe.skipIf(NO_REDIS)('POST /v1/revoke by possession', () => {
  it('revokes the token and every descendant, everywhere within 1 s; a separately issued sibling lives', async () => {
    const parent = await broker.token('alice', ['engineers']);
    const child = attenuate(parent, { delegateTo: 'helper-1', operations: ['read'], ttl: '10m', purpose: 'summarise orders' });
    const grandchild = attenuate(child, { delegateTo: 'helper-2', resources: ['pg:appdb/public.orders'] });
    const sibling = await broker.token('alice', ['engineers']);
    const [p, c, g, s] = [parent, child, grandchild, sibling].map(idsOf);
    // the prefix property the cascade rests on
    expect(c!.slice(0, p!.length)).toEqual(p);
    expect(g!.slice(0, c!.length)).toEqual(c);
    expect(proxy.set.firstRevoked(g!)).toBeUndefined();

    const heard: string[] = [];
    proxy.set.onRevoked((ids) => heard.push(...ids));
    const started = performance.now();
    const res = await post('/v1/revoke', { token: parent, token_type_hint: 'access_token' });
    expect(res).toEqual({ status: 200, body: { revoked: true, revocation_id: p!.at(-1) } });
    const elapsed = performance.now() - started + (await until(() => proxy.set.firstRevoked(g!) !== undefined));
    expect(elapsed).toBeLessThan(1000);
    expect(heard).toContain(p!.at(-1));
    expect(proxy.set.firstRevoked(c!)).toBe(p![0]);
    expect(proxy.set.firstRevoked(p!)).toBe(p![0]);
    expect(proxy.set.firstRevoked(s!)).toBeUndefined();

    // the broker agrees at once (its own set got the entry before the answer)
    expect((await post('/v1/introspect', { token: grandchild }, { bearer: sibling })).body).toEqual({ active: false });
    expect((await post('/v1/introspect', { token: sibling }, { bearer: sibling })).body.active).toBe(true);
    // and a revoked token is no bearer any more
    expect((await post('/v1/introspect', { token: sibling }, { bearer: child })).status).toBe(401);

    const row = (await testDb.pool.query('SELECT * FROM revocations WHERE revocation_id = $1', [p![0]])).rows[0];
    const issued = (await testDb.pool.query('SELECT * FROM issued_tokens WHERE revocation_id = $1', [p![0]])).rows[0];
    expect(row).toMatchObject({ revoked_by: 'possession', token_id: issued.token_id });
    expect(row.expires_at.getTime()).toBe(issued.expires_at.getTime());
    expect(JSON.stringify(row)).not.toContain(parent);
  });

  it('revokes only the presented link: revoking a child leaves its parent alive', async () => {
    const parent = await broker.token('erin', ['analysts']);
    const child = attenuate(parent, { delegateTo: 'helper-3', ttl: '5m' });
    const res = await post('/v1/revoke', { token: child }, { json: true });
    expect(res.body).toEqual({ revoked: true, revocation_id: idsOf(child).at(-1) });
    await until(() => proxy.set.firstRevoked(idsOf(child)) !== undefined);
    expect(proxy.set.firstRevoked(idsOf(parent))).toBeUndefined();
    const row = (await testDb.pool.query('SELECT expires_at FROM revocations WHERE revocation_id = $1', [idsOf(child).at(-1)])).rows[0];
    // the child's own (shorter) expiry bounds the entry
    expect(row.expires_at.getTime()).toBeLessThanOrEqual(Date.now() + 5 * 60_000 + 1000);
  });

  it('accepts an expired token (possession still proves the right)', async () => {
    const parent = await broker.token('frank', ['analysts']);
    const expired = attenuate(parent, { delegateTo: 'late', ttl: '1s', now: new Date(Date.now() - 60_000) });
    const res = await post('/v1/revoke', { token: expired });
    expect(res.body).toEqual({ revoked: true, revocation_id: idsOf(expired).at(-1) });
  });

  it('answers 200 revoked:false for garbage and for tokens of an unknown key, storing nothing (RFC 7009 §2.2)', async () => {
    const before = await rows();
    expect(await post('/v1/revoke', { token: 'not-a-token' })).toEqual({ status: 200, body: { revoked: false } });
    const stranger = Keyring.ephemeral();
    const foreign = mintToken(
      { subject: 'mallory', issuer: 'https://evil', agent: 'x', rights: [{ resource: 'pg:appdb/public.orders', operation: 'read' }], expiresAt: new Date(Date.now() + 60_000) },
      stranger.signingKey(),
    ).token;
    expect(await post('/v1/revoke', { token: foreign })).toEqual({ status: 200, body: { revoked: false } });
    expect(await rows()).toBe(before);
  });

  it('refuses a request with neither or both of token and revocation_id', async () => {
    const neither = await post('/v1/revoke', {});
    expect(neither).toMatchObject({ status: 400, body: { error: 'invalid_request', code: 'BATON_ERR_INVALID_REQUEST' } });
    const both = await post('/v1/revoke', { token: 'x', revocation_id: 'ab'.repeat(64) });
    expect(both.status).toBe(400);
  });
});

describe.skipIf(NO_REDIS)('POST /v1/revoke by revocation_id (Bearer)', () => {
  it('needs a bearer token', async () => {
    const res = await post('/v1/revoke', { revocation_id: 'ab'.repeat(64) });
    expect(res).toMatchObject({ status: 401, body: { error: 'invalid_token', code: 'BATON_ERR_UNAUTHENTICATED' } });
  });

  it('a child cannot revoke its parent (403, says why), nor a stranger; it can revoke itself', async () => {
    const parent = await broker.token('gina', ['engineers']);
    const child = attenuate(parent, { delegateTo: 'helper-4', operations: ['read'] });
    const stranger = await broker.token('hank', ['analysts']);
    const [p, c] = [idsOf(parent), idsOf(child)];

    const up = await post('/v1/revoke', { revocation_id: p[0]! }, { bearer: child });
    expect(up.status).toBe(403);
    expect(up.body).toMatchObject({ error: 'insufficient_scope', code: 'BATON_ERR_FORBIDDEN' });
    expect(up.body.error_description).toMatch(/ancestor of your token \(link 0 of 2, held by/);

    const across = await post('/v1/revoke', { revocation_id: idsOf(stranger)[0]! }, { bearer: child });
    expect(across.status).toBe(403);
    expect(across.body.error_description).toMatch(/not in your token's chain/);
    expect(proxy.set.firstRevoked(p)).toBeUndefined();

    const self = await post('/v1/revoke', { revocation_id: c[1]!.toUpperCase() }, { bearer: child });
    expect(self).toEqual({ status: 200, body: { revoked: true, revocation_id: c[1] } });
    await until(() => proxy.set.firstRevoked(c) !== undefined);
    expect(proxy.set.firstRevoked(p)).toBeUndefined();
    const row = (await testDb.pool.query('SELECT revoked_by, token_id FROM revocations WHERE revocation_id = $1', [c[1]])).rows[0];
    expect(row.revoked_by).toMatch(/^tok_/);
  });

  it('an admin (dev policy group admins) may revoke any id; a delegated admin token may not', async () => {
    const admin = await broker.token('root', ['admins']);
    const victim = await broker.token('ivan', ['analysts']);
    const victimChild = attenuate(victim, { delegateTo: 'helper-5' });
    const res = await post('/v1/revoke', { revocation_id: idsOf(victim)[0]!, reason: 'leaked' }, { bearer: admin });
    expect(res).toEqual({ status: 200, body: { revoked: true, revocation_id: idsOf(victim)[0] } });
    await until(() => proxy.set.firstRevoked(idsOf(victimChild)) !== undefined);
    const row = (await testDb.pool.query('SELECT r.*, i.expires_at AS issued_exp, i.token_id AS issued_id FROM revocations r JOIN issued_tokens i USING (revocation_id) WHERE revocation_id = $1', [idsOf(victim)[0]])).rows[0];
    expect(row.expires_at.getTime()).toBe(row.issued_exp.getTime());
    expect(row).toMatchObject({ reason: 'leaked', token_id: row.issued_id });

    // an id the broker cannot place (an offline attenuation block of someone else's chain)
    const other = attenuate(await broker.token('judy', ['analysts']), { delegateTo: 'helper-6' });
    expect((await post('/v1/revoke', { revocation_id: idsOf(other)[1]! }, { bearer: admin })).status).toBe(200);
    const bound = (await testDb.pool.query('SELECT expires_at FROM revocations WHERE revocation_id = $1', [idsOf(other)[1]])).rows[0];
    const latest = (await testDb.pool.query('SELECT max(expires_at) AS m FROM issued_tokens')).rows[0];
    expect(bound.expires_at.getTime()).toBe(latest.m.getTime());

    const delegatedAdmin = attenuate(admin, { delegateTo: 'admin-helper' });
    const denied = await post('/v1/revoke', { revocation_id: idsOf(await broker.token('kate', ['analysts']))[0]! }, { bearer: delegatedAdmin });
    expect(denied.status).toBe(403);
    expect(denied.body.error_description).toMatch(/do not pass through delegation/);
  });

  it('refuses a malformed revocation_id', async () => {
    const t = await broker.token('liam', ['analysts']);
    expect((await post('/v1/revoke', { revocation_id: 'zz-not-hex' }, { bearer: t })).status).toBe(400);
  });
});

describe.skipIf(NO_REDIS)('POST /v1/introspect (RFC 7662)', () => {
  it('describes an active token: subject, agent, lineage, effective rights, expiry', async () => {
    const parent = await broker.token('mia', ['engineers'], { resource: 'pg:appdb/public.orders' });
    const child = attenuate(parent, { delegateTo: 'helper-8', operations: ['read'], purpose: 'report' });
    const { status, body } = await post('/v1/introspect', { token: child }, { bearer: parent, json: true });
    expect(status).toBe(200);
    expect(body).toMatchObject({
      active: true,
      sub: 'mia',
      delegated_to: 'helper-8',
      agent: expect.any(String),
      iss: `${broker.url}/dev/oidc`,
      effective: { rights: [{ resource: 'pg:appdb/public.orders', operation: 'read' }], resources: ['pg:appdb/public.orders'], operations: ['read'], approximate: false },
      revocation_id: idsOf(child)[1],
    });
    expect(body.token_id).toMatch(/^tok_/);
    expect(body.exp).toBeGreaterThan(Date.now() / 1000);
    expect(body.iat).toBeLessThanOrEqual(Math.ceil(Date.now() / 1000));
    const lineage = body.lineage as Record<string, unknown>[];
    expect(lineage).toHaveLength(2);
    expect(lineage[1]).toMatchObject({ depth: 1, delegated_to: 'helper-8', purpose: 'report', operations: ['read'] });
  });

  it('answers {active:false} for expired, garbage and unknown-key tokens', async () => {
    const bearer = await broker.token('noah', ['analysts']);
    const expired = attenuate(bearer, { delegateTo: 'x', ttl: '1s', now: new Date(Date.now() - 60_000) });
    const foreign = mintToken(
      { subject: 'm', issuer: 'https://evil', agent: 'x', rights: [{ resource: 'pg:appdb/public.orders', operation: 'read' }], expiresAt: new Date(Date.now() + 60_000) },
      Keyring.ephemeral().signingKey(),
    ).token;
    for (const token of [expired, 'garbage', foreign]) {
      expect(await post('/v1/introspect', { token }, { bearer })).toEqual({ status: 200, body: { active: false } });
    }
  });

  it("answers {active:false} once the token's own hand-written time check has passed, and refuses it as Bearer", async () => {
    const parent = await broker.token('pia', ['engineers']);
    // `check if time($t), <limit> >= $t`: a shape lineage does not read as an expiry, so only the
    // token's own checks know when it dies
    const limited = (limit: Date) =>
      appendBlock(parent, {
        facts: [pred('delegated_to', str('helper-9'))],
        checks: [checkIf(query([pred('time', variable('t'))], binary('greaterOrEqual', date(limit), variable('t'))))],
      });
    const dead = limited(new Date(Date.now() - 60_000));
    const live = limited(new Date(Date.now() + 60_000));
    expect(await post('/v1/introspect', { token: dead }, { bearer: parent })).toEqual({ status: 200, body: { active: false } });
    expect(await post('/v1/introspect', { token: live }, { bearer: parent })).toMatchObject({ status: 200, body: { active: true, delegated_to: 'helper-9', effective: { approximate: true } } });
    expect(await post('/v1/introspect', { token: parent }, { bearer: dead })).toMatchObject({ status: 401, body: { error: 'invalid_token' } });
    expect((await post('/v1/introspect', { token: parent }, { bearer: live })).status).toBe(200);
    // a block that states the authorizer's facts is refused at verification: inactive, never described
    const forged = appendBlock(parent, { facts: [pred('delegated_to', str('x')), pred('resource', str('pg:appdb/public.orders'))] });
    expect(await post('/v1/introspect', { token: forged }, { bearer: parent })).toEqual({ status: 200, body: { active: false } });
  });

  it('needs an active Baton token as Bearer (401 otherwise)', async () => {
    const t = await broker.token('olga', ['analysts']);
    expect((await post('/v1/introspect', { token: t })).status).toBe(401);
    const bad = await post('/v1/introspect', { token: t }, { bearer: 'garbage' });
    expect(bad).toMatchObject({ status: 401, body: { error: 'invalid_token' } });
  });
});

describe.skipIf(NO_REDIS)('GET /v1/revocations', () => {
  it('is public and returns exactly the entries after a cursor; an unknown cursor starts over', async () => {
    const all = (await (await fetch(`${broker.url}/v1/revocations`)).json()) as { entries: { revocation_id: string }[]; cursor: string; more: boolean };
    expect(all.entries.length).toBeGreaterThan(0);
    expect(all.more).toBe(false);
    const empty = (await (await fetch(`${broker.url}/v1/revocations?since=${encodeURIComponent(all.cursor)}`)).json()) as typeof all;
    expect(empty.entries).toEqual([]);
    expect(empty.cursor).toBe(all.cursor);
    const t = await broker.token('pete', ['analysts']);
    await post('/v1/revoke', { token: t });
    const next = (await (await fetch(`${broker.url}/v1/revocations?since=${encodeURIComponent(all.cursor)}`)).json()) as typeof all;
    expect(next.entries.map((e) => e.revocation_id)).toEqual([idsOf(t)[0]]);
    const foreignCursor = (await (await fetch(`${broker.url}/v1/revocations?since=deadbeef:999999`)).json()) as typeof all;
    expect(foreignCursor.entries.length).toBe(all.entries.length + 1);
  });

  it('pages large lists', async () => {
    const page = await listSince(testDb.pool, undefined, { limit: 2 });
    expect(page.entries.length).toBeLessThanOrEqual(2);
    expect(page.more).toBe(true);
  });
});

describe.skipIf(NO_REDIS)('durability and purge', () => {
  it('revocations survive a broker restart', async () => {
    const parent = await broker.token('quinn', ['engineers']);
    const child = attenuate(parent, { delegateTo: 'helper-9' });
    await post('/v1/revoke', { token: parent });
    await proxy.close();
    await broker.close();
    broker = await startRevocationBroker({ databaseUrl: testDb.url, redisUrl: TEST_REDIS_URL, prefix, dataDir: broker.dataDir });
    proxy = await startProxyLikeSet({ brokerUrl: broker.url, redisUrl: TEST_REDIS_URL, prefix });
    const other = await broker.token('rita', ['analysts']);
    expect((await post('/v1/introspect', { token: child }, { bearer: other })).body).toEqual({ active: false });
    expect((await post('/v1/introspect', { token: parent }, { bearer: other })).body).toEqual({ active: false });
    expect((await post('/v1/introspect', { token: other }, { bearer: child })).status).toBe(401);
    expect(proxy.set.firstRevoked(idsOf(child))).toBe(idsOf(parent)[0]);
  });

  it('purges entries whose tokens have expired (after a grace), keeps the rest', async () => {
    const now = new Date();
    const [old, recent, live] = ['0e'.repeat(64), '0f'.repeat(64), '10'.repeat(64)];
    await revoke(testDb.pool, { revocationIds: [old], expiresAt: new Date(now.getTime() - 120_000), revokedBy: 'possession' });
    await revoke(testDb.pool, { revocationIds: [recent], expiresAt: new Date(now.getTime() - 1000), revokedBy: 'possession' });
    await revoke(testDb.pool, { revocationIds: [live], expiresAt: new Date(now.getTime() + 60_000), revokedBy: 'possession' });
    const present = async () =>
      (await testDb.pool.query('SELECT revocation_id FROM revocations WHERE revocation_id = ANY($1) ORDER BY revocation_id', [[old, recent, live]])).rows.map((r) => r.revocation_id);
    // expired entries are not even sent
    expect((await listSince(testDb.pool)).entries.map((e) => e.revocationId)).not.toContain(old);
    await purgeExpired(testDb.pool, now);
    expect(await present()).toEqual([recent, live]); // `recent` is inside the 60 s clock-skew grace
    await purgeExpired(testDb.pool, now, 0);
    expect(await present()).toEqual([live]);
  });

  it('re-revoking keeps one row; a later expiry extends it under a new cursor position', async () => {
    const id = '1a'.repeat(64);
    const exp = new Date(Date.now() + 60_000);
    await revoke(testDb.pool, { revocationIds: [id], expiresAt: exp, revokedBy: 'possession' });
    const { cursor } = await listSince(testDb.pool);
    expect((await revoke(testDb.pool, { revocationIds: [id], expiresAt: new Date(exp.getTime() - 1000), revokedBy: 'possession' }))[0]!.expiresAt).toEqual(exp);
    expect((await listSince(testDb.pool, cursor)).entries).toEqual([]);
    const later = new Date(exp.getTime() + 60_000);
    await revoke(testDb.pool, { revocationIds: [id], expiresAt: later, revokedBy: 'possession' });
    expect((await listSince(testDb.pool, cursor)).entries).toEqual([{ revocationId: id, expiresAt: later }]);
  });
});
