/**
 * Revocation propagation: time from issuing `POST /v1/revoke` to the moment a proxy-like
 * RevocationSet (own Redis subscriber, HTTP resync from the broker) holds the id, i.e. the moment the
 * proxy's per-statement `firstRevoked` check starts refusing. 100 revocations (BENCH_N), one at a
 * time, against a real broker on loopback, PostgreSQL (DATABASE_URL or postgres://postgres@127.0.0.1:5432/test,
 * a database of its own, dropped after) and Redis (REDIS_URL or redis://127.0.0.1:6379, random prefix).
 *
 *   npx tsx bench/revocation.ts            # goal: median ≤ 50 ms, p99 ≤ 200 ms
 */
import { attenuate } from '../src/token/attenuate.ts';
import { verifyToken } from '../src/token/verify.ts';
import { createTestDatabase } from '../test/helpers/database.ts';
import { randomPrefix, startProxyLikeSet, startRevocationBroker, TEST_REDIS_URL } from '../test/helpers/revocation-broker.ts';

const N = Number(process.env.BENCH_N ?? 100);

const db = await createTestDatabase('revbench');
const prefix = randomPrefix('revbench');
const broker = await startRevocationBroker({ databaseUrl: db.url, redisUrl: TEST_REDIS_URL, prefix });
const proxy = await startProxyLikeSet({ brokerUrl: broker.url, redisUrl: TEST_REDIS_URL, prefix });

const waiting = new Map<string, (t: number) => void>();
proxy.set.onRevoked((ids) => {
  const t = performance.now();
  for (const id of ids) waiting.get(id)?.(t);
});

try {
  const parent = await broker.token('bench', ['analysts']);
  const total: number[] = [];
  const http: number[] = [];
  for (let i = 0; i < N + 5; i++) {
    const child = attenuate(parent, { delegateTo: `helper-${i}` });
    const v = verifyToken(child, broker.keyring);
    const id = v.revocationIds.at(-1)!;
    v.biscuit.free();
    const seen = new Promise<number>((resolve) => waiting.set(id, resolve));
    const start = performance.now();
    const res = await fetch(`${broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: child }) });
    const answered = performance.now();
    if (!res.ok) throw new Error(`revoke answered ${res.status}`);
    await res.arrayBuffer();
    const at = await Promise.race([seen, new Promise<number>((_, reject) => setTimeout(() => reject(new Error(`id ${i} not seen in 5 s`)), 5000))]);
    waiting.delete(id);
    if (!proxy.set.firstRevoked([id])) throw new Error('listener fired but the set does not hold the id');
    if (i < 5) continue; // warm-up (JIT, connection pools)
    total.push(at - start);
    http.push(answered - start);
  }

  const rows = [
    ['revoke call → proxy set holds id', stats(total)],
    ['revoke call → HTTP 200 (broker)', stats(http)],
  ] as const;
  const fmt = (n: number) => `${n.toFixed(1).padStart(7)} ms`;
  console.log(`\nRevocation propagation, ${N} revocations, Redis ${redact(TEST_REDIS_URL)}\n`);
  console.log(`${'measure'.padEnd(36)} ${'median'.padStart(10)} ${'p99'.padStart(10)} ${'max'.padStart(10)}`);
  for (const [name, s] of rows) console.log(`${name.padEnd(36)} ${fmt(s.median)} ${fmt(s.p99)} ${fmt(s.max)}`);
  const ok = rows[0][1].median <= 50 && rows[0][1].p99 <= 200;
  console.log(`\ngoal (median ≤ 50 ms, p99 ≤ 200 ms): ${ok ? 'met' : 'NOT met'}`);
  process.exitCode = ok ? 0 : 1;
} finally {
  await proxy.close();
  await broker.close();
  await db.drop();
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]!;
  return { median: q(0.5), p99: q(0.99), max: s.at(-1)! };
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
