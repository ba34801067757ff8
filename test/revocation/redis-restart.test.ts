/**
 * Redis goes away mid-test: three proxy-like sets (each its own subscription and resync, as three
 * proxy processes have) keep serving within the staleness bound, then fail closed; a revocation made
 * while Redis is down is missed by none; when Redis comes back on the same port every set resyncs
 * and recovers by itself. Runs its OWN redis-server child (never the shared one).
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../../src/util/free-port.ts';
import { verifyToken } from '../../src/token/verify.ts';
import { createTestDatabase, type TestDatabase } from '../helpers/database.ts';
import { randomPrefix, startProxyLikeSet, startRevocationBroker, type RevocationBroker } from '../helpers/revocation-broker.ts';

// Runs its own redis-server: skipped (visibly) only where the binary is not installed.
const NO_REDIS = spawnSync('redis-server', ['--version']).status !== 0;

const STALENESS_MS = 1000;
let port: number;
let redis: ChildProcess | undefined;
let testDb: TestDatabase;
let broker: RevocationBroker;
let proxies: Array<Awaited<ReturnType<typeof startProxyLikeSet>>> = [];

async function startRedis(): Promise<void> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
  redis = child;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('redis-server did not start')), 5000);
    child.stdout!.on('data', (d: Buffer) => {
      if (/Ready to accept connections/.test(d.toString())) {
        clearTimeout(timer);
        resolve();
      }
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited ${code}`)));
  });
}

async function stopRedis(): Promise<void> {
  const child = redis;
  redis = undefined;
  if (!child || child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL'); // our own child, by its handle: an abrupt crash, not a polite shutdown
  await exited;
}

beforeAll(async () => {
  if (NO_REDIS) return;
  port = await freePort();
  await startRedis();
  const redisUrl = `redis://127.0.0.1:${port}`;
  const prefix = randomPrefix('revredis');
  testDb = await createTestDatabase('revredis');
  broker = await startRevocationBroker({ databaseUrl: testDb.url, redisUrl, prefix, stalenessMs: STALENESS_MS });
  proxies = await Promise.all([1, 2, 3].map(() => startProxyLikeSet({ brokerUrl: broker.url, redisUrl, prefix, stalenessMs: STALENESS_MS })));
});
afterAll(async () => {
  for (const proxy of proxies) await proxy.close();
  await broker?.close();
  await stopRedis();
  await testDb?.drop();
});

const idsOf = (token: string) => {
  const v = verifyToken(token, broker.keyring);
  v.biscuit.free();
  return v.revocationIds;
};
const revoke = (token: string) => fetch(`${broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token }) }).then((r) => r.json());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(cond: () => boolean, timeoutMs: number): Promise<number> {
  const start = performance.now();
  while (!cond()) {
    if (performance.now() - start > timeoutMs) throw new Error('condition not met in time');
    await sleep(5);
  }
  return performance.now() - start;
}

/** Every proxy's set is current (or, with `every = false`, none is). */
const current = (every = true) => {
  const states = proxies.map((proxy) => {
    try {
      proxy.set.assertCurrent();
      return true;
    } catch {
      return false;
    }
  });
  return every ? states.every(Boolean) : states.some(Boolean);
};

it.skipIf(NO_REDIS)('fails closed past the staleness bound while Redis is down, misses nothing, and recovers by itself — on every proxy', async () => {
  const a = await broker.token('alice', ['analysts']);
  const b = await broker.token('bob', ['analysts']);
  const c = await broker.token('carol', ['analysts']);
  expect(current()).toBe(true);

  await stopRedis();
  const down = performance.now();
  await sleep(STALENESS_MS / 2);
  expect(current()).toBe(true); // a blip shorter than the bound is served
  const failedAfter = (await until(() => !current(false), 3 * STALENESS_MS)) + STALENESS_MS / 2;
  expect(failedAfter).toBeGreaterThanOrEqual(STALENESS_MS * 0.9);
  expect(failedAfter).toBeLessThan(STALENESS_MS + 500);
  for (const proxy of proxies) {
    expect(() => proxy.set.assertCurrent()).toThrow(expect.objectContaining({ code: 'BATON_ERR_REVOCATION_STALE' }));
    expect(proxy.set.staleReason()).toMatch(/revocation channel down/);
  }

  // revoked while Redis is down: persisted, the publish is lost
  expect(await revoke(a)).toEqual({ revoked: true, revocation_id: idsOf(a)[0] });
  await sleep(300);
  expect(current(false)).toBe(false); // still closed: the channel is what makes "within 1 s" true

  await startRedis();
  const recovered = await until(() => current(), 5000);
  for (const proxy of proxies) {
    expect(proxy.set.firstRevoked(idsOf(a))).toBe(idsOf(a)[0]); // nothing missed
    expect(proxy.set.firstRevoked(idsOf(b))).toBeUndefined();
  }
  expect(performance.now() - down).toBeGreaterThan(STALENESS_MS);
  expect(recovered).toBeLessThan(5000);

  // live again: the next revocation reaches every proxy within a second
  await until(() => broker.revocations.staleReason() === undefined, 5000);
  const t0 = performance.now();
  expect(await revoke(b)).toMatchObject({ revoked: true });
  await until(() => proxies.every((proxy) => proxy.set.firstRevoked(idsOf(b)) !== undefined), 1000);
  expect(performance.now() - t0).toBeLessThan(1000);
  for (const proxy of proxies) expect(proxy.set.firstRevoked(idsOf(c))).toBeUndefined();
});
