/**
 * How a standalone proxy keeps the broker's key set fresh (src/proxy/pg/keyset.ts): conditional polls
 * (ETag → 304), the broker's announcement on the `keys` channel (real Redis), and failing closed when
 * the set cannot be refreshed within the bound.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { createMetrics } from '../../src/broker/metrics.ts';
import { opsRoutes } from '../../src/broker/routes/ops.ts';
import { followKeyring } from '../../src/keys/follow.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { RemoteKeySet } from '../../src/proxy/pg/keyset.ts';
import { openSharedState, type SharedState } from '../../src/store/shared-state.ts';
import { randomPrefix, TEST_REDIS_URL } from '../helpers/revocation-broker.ts';

// the broker's side, as startBroker wires it: the key-set route, and followKeyring announcing changes
let app: FastifyInstance;
let keyring: Keyring;
let brokerState: SharedState;
let stopFollowing: () => void;
let prefix: string;
let keySetUrl: string;
beforeAll(async () => {
  prefix = randomPrefix('remotekeys');
  brokerState = openSharedState({ url: TEST_REDIS_URL, prefix });
  keyring = Keyring.ephemeral();
  stopFollowing = followKeyring(keyring, { state: brokerState });
  app = Fastify();
  opsRoutes(app, { keyring, metrics: createMetrics(), ready: async () => {} });
  await app.listen({ host: '127.0.0.1', port: 0 });
  keySetUrl = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}/.well-known/baton-keys.json`;
});
afterAll(async () => {
  stopFollowing?.();
  await app?.close();
  await brokerState?.close();
});

const waitFor = async (cond: () => boolean | Promise<boolean>, ms: number) => {
  const started = Date.now();
  while (!(await cond())) {
    if (Date.now() - started > ms) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return Date.now() - started;
};

describe('the key-set route', () => {
  it('answers 304 to a matching If-None-Match, and a new ETag after a retirement', async () => {
    const first = await fetch(keySetUrl);
    const etag = first.headers.get('etag')!;
    expect(etag).toMatch(/^"[\w-]+"$/);
    expect(first.headers.get('cache-control')).toBe('no-cache');
    expect((await fetch(keySetUrl, { headers: { 'if-none-match': etag } })).status).toBe(304);
    const old = keyring.signingKey().id;
    keyring.rotate();
    keyring.retire(old);
    const after = await fetch(keySetUrl, { headers: { 'if-none-match': etag } });
    expect(after.status).toBe(200);
    expect(after.headers.get('etag')).not.toBe(etag);
    expect(((await after.json()) as { keys: { id: number }[] }).keys.map((k) => k.id)).not.toContain(old);
  });
});

describe('RemoteKeySet', () => {
  it("learns a retirement from the broker's announcement at once, even with a slow poll", async () => {
    const state: SharedState = openSharedState({ url: TEST_REDIS_URL, prefix });
    const keys = new RemoteKeySet(keySetUrl, { state, refreshMs: 60_000 });
    await keys.start();
    try {
      const active = keyring.signingKey().id;
      expect((await keys.resolver()).has(active)).toBe(true);
      keyring.rotate();
      const started = Date.now();
      keyring.retire(active);
      const took = await waitFor(async () => !(await keys.resolver()).has(active), 2000);
      expect(took).not.toBe(false);
      expect(Date.now() - started).toBeLessThan(1000);
    } finally {
      await keys.stop();
      await state.close();
    }
  });

  it('polls with If-None-Match (an unchanged set costs a 304) and learns a retirement within a poll', async () => {
    const spy = vi.spyOn(globalThis, 'fetch');
    const keys = new RemoteKeySet(keySetUrl, { refreshMs: 200 });
    await keys.start();
    try {
      await new Promise((r) => setTimeout(r, 700));
      const statuses = await Promise.all(spy.mock.results.filter((r) => r.type === 'return').map((r) => (r.value as Promise<Response>).then((res) => res.status)));
      expect(statuses[0]).toBe(200);
      expect(statuses.slice(1).length).toBeGreaterThanOrEqual(2);
      expect(new Set(statuses.slice(1))).toEqual(new Set([304]));
      const active = keyring.signingKey().id;
      keyring.rotate();
      const started = Date.now();
      keyring.retire(active);
      expect(await waitFor(async () => !(await keys.resolver()).has(active), 2000)).not.toBe(false);
      expect(Date.now() - started).toBeLessThan(600);
    } finally {
      spy.mockRestore();
      await keys.stop();
    }
  });

  it('fails closed (BATON_ERR_REVOCATION_STALE) when the set cannot be refreshed within the bound, and recovers', async () => {
    let up = true;
    const doc = JSON.stringify({ keys: [{ id: 1, algorithm: 'ed25519', public_key: 'a'.repeat(64), status: 'active', created_at: new Date().toISOString() }] });
    const server: Server = createServer((_req, res) => {
      if (!up) return void res.writeHead(503).end();
      res.writeHead(200, { 'content-type': 'application/json' }).end(doc);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/keys.json`;
    const keys = new RemoteKeySet(url, { refreshMs: 100, stalenessMs: 400 });
    await keys.start();
    try {
      expect((await keys.resolver()).has(1)).toBe(true);
      up = false;
      await new Promise((r) => setTimeout(r, 250));
      expect((await keys.resolver()).has(1)).toBe(true); // a short outage is served
      await new Promise((r) => setTimeout(r, 400));
      await expect(keys.resolver()).rejects.toMatchObject({ code: 'BATON_ERR_REVOCATION_STALE' });
      await expect(keys.resolver(1)).rejects.toMatchObject({ code: 'BATON_ERR_REVOCATION_STALE' });
      up = true;
      expect(await waitFor(() => keys.staleReason() === undefined, 1000)).not.toBe(false);
      expect((await keys.resolver()).has(1)).toBe(true);
    } finally {
      await keys.stop();
      server.close();
    }
  });
});
