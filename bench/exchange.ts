/**
 * Token exchanges per second: a real dev-mode broker (child process, own migrated database, dev
 * OIDC issuer, rate limits raised) on loopback, driven over HTTP keep-alive with pre-minted dev OIDC
 * tokens for many subjects at concurrency 1, 8 and 32. Then the time split, measured in this process
 * by calling the pipeline's pieces directly: JWT verify (JWKS cached), rate limit, policy, mint,
 * store, audit append, and the whole `exchangeToken` without HTTP.
 *
 *   npm run bench -- exchange       # BENCH_SECONDS=5 BENCH_CONCURRENCY=1,8,32 to change
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { exchangeGranted } from '../src/broker/audit-events.ts';
import { EXCHANGE_STEPS, exchangeToken, type ExchangeDeps } from '../src/broker/exchange.ts';
import { GRANT_TYPE_TOKEN_EXCHANGE } from '../src/broker/exchange-request.ts';
import { issuedTokenRecorder } from '../src/broker/issued-tokens.ts';
import { DEV_AUDIENCE, DEV_POLICY_FILE } from '../src/broker/server.ts';
import { createAuditWriter } from '../src/audit/writer.ts';
import { Keyring } from '../src/keys/keyring.ts';
import { createDevIssuer } from '../src/oidc/dev-issuer.ts';
import { createOidcVerifier } from '../src/oidc/verify.ts';
import { evaluatePolicy } from '../src/policy/evaluate.ts';
import { loadPolicyFile } from '../src/policy/load.ts';
import { applyMigrations } from '../src/store/migrate.ts';
import { openSharedState } from '../src/store/shared-state.ts';
import { mintToken } from '../src/token/mint.ts';
import { warmUpAuthorizer } from '../src/token/warmup.ts';
import { startChild } from './lib/child.ts';
import { createBenchDatabase, serverInfo } from './lib/database.ts';
import { fmt, printTable, summarize, throughput, timeAsync, timeSync } from './lib/report.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 5);
const LEVELS = (process.env.BENCH_CONCURRENCY ?? '1,8,32').split(',').map(Number);
const SUBJECTS = 2000;
const JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt';

/** One POST /v1/token over a keep-alive agent; resolves with the status code. */
function postExchange(agent: Agent, url: URL, jwt: string): Promise<number> {
  const body = new URLSearchParams({ grant_type: GRANT_TYPE_TOKEN_EXCHANGE, subject_token: jwt, subject_token_type: JWT_TYPE }).toString();
  return new Promise((resolve, reject) => {
    const req = request(
      { agent, host: url.hostname, port: url.port, path: '/v1/token', method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded', 'content-length': Buffer.byteLength(body) } },
      (res) => {
        res.resume();
        res.once('end', () => resolve(res.statusCode ?? 0));
        res.once('error', reject);
      },
    );
    req.once('error', reject);
    req.end(body);
  });
}

/** `concurrency` keep-alive connections, each looping exchanges for `seconds`. */
async function loadRun(url: URL, jwts: string[], concurrency: number, seconds: number) {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency });
  const latencies: number[] = [];
  let next = 0;
  let failed = 0;
  const end = performance.now() + seconds * 1000;
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (performance.now() < end) {
        const t = performance.now();
        const status = await postExchange(agent, url, jwts[next++ % jwts.length]!);
        latencies.push(performance.now() - t);
        if (status !== 200) failed++;
      }
    }),
  );
  const elapsed = (performance.now() - started) / 1000;
  agent.destroy();
  return { ok: latencies.length - failed, failed, perSecond: (latencies.length - failed) / elapsed, ...summarize(latencies) };
}

async function main(): Promise<void> {
  const db = await createBenchDatabase('exchange');
  const dataDir = mkdtempSync(join(tmpdir(), 'baton-bench-exchange-'));
  const pool = new pg.Pool({ connectionString: db.url, max: 10 });
  pool.on('error', () => {});
  let broker: Awaited<ReturnType<typeof startChild<{ brokerUrl: string }>>> | undefined;
  try {
    await applyMigrations(pool);
    // BENCH_BROKER_CPU_PROF=<dir>: profile the broker child (summarise with bench/lib/cpuprofile-top.ts)
    const prof = process.env.BENCH_BROKER_CPU_PROF;
    broker = await startChild<{ brokerUrl: string }>('./baton-child.ts', { BENCH_DATABASE_URL: db.url, BENCH_DATA_DIR: dataDir }, prof ? ['--cpu-prof', `--cpu-prof-dir=${prof}`] : []);
    const url = new URL(broker.info.brokerUrl);
    const issuer = `${broker.info.brokerUrl}/dev/oidc`;

    // Pre-mint with the dev issuer's persisted key (same data dir, same issuer URL as the broker's).
    const dev = await createDevIssuer({ issuer, dataDir, audience: DEV_AUDIENCE });
    const jwts = await Promise.all(
      Array.from({ length: SUBJECTS }, async (_, i) =>
        (await dev.mint({ sub: `user-${i}@example.com`, groups: ['analysts'], client_id: `agent-${i % 50}`, ttl: 3600 })).access_token,
      ),
    );

    // ---- HTTP throughput ----
    await loadRun(url, jwts, 8, 1.5); // warm-up: JIT, JWKS fetch, pools
    const rows: string[][] = [];
    for (const c of LEVELS) {
      const r = await loadRun(url, jwts, c, SECONDS);
      rows.push([String(c), String(r.ok), String(r.failed), fmt(r.perSecond), fmt(r.p50, 2), fmt(r.p99, 2)]);
    }
    await broker.stop();
    broker = undefined;

    // ---- time split, in this process (the broker child is gone: nothing else competes) ----
    const split = await timeSplit(pool, jwts, issuer, dev.jwks());
    console.log(`\nToken exchange — dev-mode broker in a child process, load from this process (node:http keep-alive), ${SECONDS} s per level; ${await serverInfo()}; shared state: ${process.env.REDIS_URL ? 'Redis' : 'in-process'}`);
    printTable('HTTP POST /v1/token (goal ≥ 1,500 exchanges/s)', ['concurrency', 'exchanges', 'errors', 'exchanges/s', 'p50 ms', 'p99 ms'], rows);
    printTable('Where the time goes (in-process, one call at a time unless noted)', ['step', 'µs/op p50', 'µs/op p99', 'note'], split);
  } finally {
    await broker?.stop();
    await pool.end();
    await db.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

/** Each pipeline piece in a loop. Store and audit are I/O: also timed at 32 concurrent (µs = 1/throughput). */
async function timeSplit(pool: pg.Pool, jwts: string[], issuer: string, jwks: unknown): Promise<string[][]> {
  await warmUpAuthorizer();
  // The verifier fetches the JWKS once; serve it from a stub on loopback so the broker child can be gone.
  const { createServer } = await import('node:http');
  const jwksServer = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    const base = issuer;
    res.end(JSON.stringify(req.url?.endsWith('jwks.json') ? jwks : { issuer: base, jwks_uri: `${base}/jwks.json` }));
  });
  const issuerUrl = new URL(issuer);
  await new Promise<void>((resolve) => jwksServer.listen(Number(issuerUrl.port), issuerUrl.hostname, resolve));
  const state = openSharedState({ url: process.env.REDIS_URL, prefix: `baton-bench-${process.pid}:` });
  const audit = createAuditWriter(pool);
  try {
    const oidc = createOidcVerifier([{ issuer, audiences: [DEV_AUDIENCE], algorithms: ['ES256'] }]);
    await oidc.verify(jwts[0]!); // discovery + JWKS, then cached
    const policy = loadPolicyFile(DEV_POLICY_FILE);
    const keyring = Keyring.ephemeral();
    const identity = await oidc.verify(jwts[1]!);
    const who = { issuer: identity.issuer, subject: identity.subject, groups: [...identity.groups], clientId: identity.clientId };
    const grant = evaluatePolicy(policy, who, {});
    const expiresAt = new Date(Date.now() + grant.ttlSeconds * 1000);
    const mintOnce = () => mintToken({ subject: who.subject, issuer: who.issuer, agent: who.clientId!, rights: grant.rights, roles: grant.roles, expiresAt }, keyring.signingKey());
    const issued = (m: ReturnType<typeof mintOnce>) => ({
      tokenId: m.tokenId,
      revocationId: m.revocationId,
      subject: who.subject,
      issuer: who.issuer,
      agent: who.clientId!,
      rights: grant.rights,
      roles: grant.roles,
      rootKeyId: keyring.published()[0]!.id,
      expiresAt,
    });
    const record = issuedTokenRecorder(pool);
    const deps: ExchangeDeps = {
      oidc,
      policy: () => policy,
      keyring,
      state,
      rateLimit: { perSubject: 1e9, perClient: 1e9 },
      persist: (t) => record(t),
    };
    const request = (i: number) => ({ grant_type: GRANT_TYPE_TOKEN_EXCHANGE, subject_token: jwts[i % jwts.length]!, subject_token_type: JWT_TYPE }) as Parameters<typeof exchangeToken>[0];
    const sample = await exchangeToken(request(0), deps);
    const auditEvent = exchangeGranted(sample);
    const premint = Array.from({ length: 3000 }, mintOnce); // store loops need unique token ids

    const rows: string[][] = [];
    const add = (step: string, us: number[], note = '') => {
      const s = summarize(us);
      rows.push([step, fmt(s.p50, 1), fmt(s.p99, 1), note]);
    };
    const concurrent = async (fn: (i: number) => Promise<unknown>) => fmt(1e6 / (await throughput(fn, 32, 1.5)), 1);

    add('JWT verify (jose ES256, JWKS cached)', await timeAsync((i) => oidc.verify(jwts[i % jwts.length]!), 3000));
    add('rate limit (2 hits)', await timeAsync((i) => Promise.all([state.hit(`sub:${i % 2000}`, 1e9, 60), state.hit(`client:${i % 50}`, 1e9, 60)]), 3000), state.kind);
    add('policy evaluation', timeSync(() => evaluatePolicy(policy, who, {}), 10_000));
    add('mint (Biscuit build + sign)', timeSync(() => mintOnce(), 3000));
    let k = 0;
    add('store (INSERT issued_tokens, group commit)', await timeAsync(() => record(issued(premint[k++]!)), 1000), `${await concurrent(() => record(issued(mintOnce())))} µs/op at 32 concurrent`);
    add('audit append (durable, group commit)', await timeAsync(() => audit.append(auditEvent), 1000), `${await concurrent(() => audit.append(auditEvent))} µs/op at 32 concurrent`);
    add('exchangeToken() whole, no HTTP, no audit', await timeAsync((i) => exchangeToken(request(i), deps), 1000), `${await concurrent((i) => exchangeToken(request(i), deps))} µs/op at 32 concurrent`);

    // the same steps as exchangeToken runs them, each timed inside the real pipeline
    const perStep = EXCHANGE_STEPS.map(() => [] as number[]);
    for (let i = 0; i < 1200; i++) {
      const ctx = { req: request(i) };
      for (const [j, step] of EXCHANGE_STEPS.entries()) {
        const t = performance.now();
        await step(ctx as Parameters<typeof step>[0], deps);
        if (i >= 200) perStep[j]!.push((performance.now() - t) * 1000);
      }
    }
    EXCHANGE_STEPS.forEach((step, j) => add(`  in pipeline: ${step.name}`, perStep[j]!));
    return rows;
  } finally {
    await audit.close();
    await state.close();
    await new Promise((resolve) => jwksServer.close(resolve));
  }
}

await main();
