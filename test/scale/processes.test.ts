/**
 * Scale-out on one machine (issue 15 point 4): two brokers (`baton serve`) and three Postgres proxies
 * (`baton proxy`), each its own process, on the real PostgreSQL and Redis, one shared key file, a real
 * OIDC provider. Exchanges spread across brokers; a revocation made on broker A ends a session on a
 * proxy that resyncs from broker B within a second; a key rotation is honoured by every broker and
 * proxy; SIGKILL of a broker under load loses no issued-token record and no audit entry of a 2xx.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dropDemoUpstream, ensureDemoUpstream } from '../../src/dev/demo-upstream.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { readLineage } from '../../src/token/lineage.ts';
import { decodeToken } from '../../src/token/wire/index.ts';
import { freePort } from '../../src/util/free-port.ts';
import { spawnBaton, type BatonProcess } from '../helpers/baton-process.ts';
import { runCli } from '../helpers/cli.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from '../helpers/database.ts';
import { BROKER_AUDIENCE, signingJwk, startProvider, type TestProvider } from '../oidc/provider.ts';

const POLICY = fileURLToPath(new URL('../../config/dev-policy.yaml', import.meta.url));
const REDIS = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

let idp: TestProvider;
let store: TestDatabase;
let appdb: string;
let appdbUrl: string;
let keysFile: string;
const brokers: Array<BatonProcess & { url: string }> = [];
const proxies: Array<BatonProcess & { port: number }> = [];
const scratch = mkdtempSync(join(tmpdir(), 'baton-scale-'));
const adminUrl = (() => {
  const u = new URL(TEST_DATABASE_URL);
  u.pathname = '/postgres';
  return u.toString();
})();

async function startBrokerProcess(name: string): Promise<BatonProcess & { url: string }> {
  const port = await freePort();
  const config = join(scratch, `${name}.json`);
  writeFileSync(
    config,
    JSON.stringify({
      mode: 'production',
      broker: { host: '127.0.0.1', port, publicUrl: 'http://baton.test', policyFile: POLICY, keysFile, rateLimit: { perSubject: 1_000_000, perClient: 1_000_000 } },
      oidc: { issuers: [{ issuer: idp.issuer, audiences: [BROKER_AUDIENCE] }] },
    }),
  );
  const p = spawnBaton(['serve', '--config', config], { DATABASE_URL: store.url, REDIS_URL: REDIS, BATON_DATA_DIR: join(scratch, name) });
  await p.waitFor(/broker listening/, `broker ${name}`);
  return Object.assign(p, { url: `http://127.0.0.1:${port}` });
}

async function startProxyProcess(name: string, broker: { url: string }): Promise<BatonProcess & { port: number }> {
  const port = await freePort();
  const config = join(scratch, `${name}.json`);
  writeFileSync(config, JSON.stringify({ mode: 'production', proxy: { host: '127.0.0.1', port, upstreams: { appdb: { url: appdbUrl } }, policyFile: POLICY } }));
  const p = spawnBaton(['proxy', '--config', config], {
    DATABASE_URL: store.url,
    REDIS_URL: REDIS,
    BATON_DATA_DIR: join(scratch, name),
    BATON_BROKER_URL: broker.url,
    BATON_KEYSET_URL: `${broker.url}/.well-known/baton-keys.json`,
  });
  await p.waitFor(/proxy listening/, `proxy ${name}`);
  return Object.assign(p, { port });
}

async function exchangeAt(broker: { url: string }): Promise<{ status: number; token?: string }> {
  const res = await fetch(`${broker.url}/v1/token`, {
    method: 'POST',
    body: new URLSearchParams({
      grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
      subject_token: await idp.token(),
      subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
    }),
  });
  const body = (await res.json().catch(() => ({}))) as { access_token?: string };
  return { status: res.status, ...(body.access_token ? { token: body.access_token } : {}) };
}

async function connect(proxy: { port: number }, token: string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'agent', database: 'appdb', password: token });
  c.on('error', () => {});
  await c.connect();
  return c;
}

const tokenIdOf = (token: string) => readLineage(decodeToken(token))[0]!.tokenId!;

beforeAll(async () => {
  idp = await startProvider(await signingJwk('ES256', 'scale-1'));
  store = await createTestDatabase('scale');
  appdb = `baton_t_scale_appdb_${process.pid}`;
  appdbUrl = await ensureDemoUpstream(adminUrl, appdb);
  keysFile = join(scratch, 'keys.json');
  Keyring.open(keysFile); // provisioned once, like a secret mount, before any broker starts
  brokers.push(await startBrokerProcess('broker-a'));
  brokers.push(await startBrokerProcess('broker-b'));
  // proxies resync revocations from different brokers
  proxies.push(await startProxyProcess('proxy-1', brokers[0]!), await startProxyProcess('proxy-2', brokers[0]!), await startProxyProcess('proxy-3', brokers[1]!));
}, 120_000);

afterAll(async () => {
  if (process.env.SCALE_DEBUG) for (const p of [...brokers, ...proxies]) console.log(p.output().slice(-3000));
  await Promise.all([...proxies, ...brokers].map((p) => p.stop()));
  await idp?.close();
  await store?.drop();
  await dropDemoUpstream(adminUrl, appdb);
});

describe('two brokers and three proxies, each its own process', () => {
  it('exchanges on either broker; every token works on every proxy', async () => {
    for (const broker of brokers) {
      const { status, token } = await exchangeAt(broker);
      expect(status).toBe(200);
      for (const proxy of proxies) {
        const c = await connect(proxy, token!);
        expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
        await c.end();
      }
    }
  });

  it('a revocation on broker A ends a session on proxy 3 (which resyncs from B) within a second', async () => {
    const { token } = await exchangeAt(brokers[1]!);
    const c = await connect(proxies[2]!, token!);
    expect((await c.query('SELECT 1 AS one')).rows[0].one).toBe(1);
    const t0 = Date.now();
    const revoked = await fetch(`${brokers[0]!.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: token! }) });
    expect(revoked.status).toBe(200);
    let code: string | undefined;
    while (!code && Date.now() - t0 < 3000) {
      code = await c.query('SELECT 1').then(() => undefined, (e: { code?: string }) => e.code ?? 'closed');
      if (!code) await new Promise((r) => setTimeout(r, 20));
    }
    expect(code).toBe('28P01');
    expect(Date.now() - t0).toBeLessThan(1000);
    await c.end().catch(() => {});
  });

  it('a key rotation on the shared key file is honoured by both brokers and every proxy', async () => {
    const rotated = await runCli(['keys', 'rotate', '--keys-file', keysFile, '--json']);
    expect(rotated.code).toBe(0);
    const newKey = (JSON.parse(rotated.stdout) as { rotated: number }).rotated;
    for (const broker of brokers) {
      await expect
        .poll(async () => ((await (await fetch(`${broker.url}/.well-known/baton-keys.json`)).json()) as { keys: Array<{ id: number; status: string }> }).keys.find((k) => k.status === 'active')?.id, { timeout: 5000 })
        .toBe(newKey);
    }
    // a token signed with the new key is accepted by every proxy (they refetch the key set on the channel)
    const { token } = await exchangeAt(brokers[1]!);
    expect(decodeToken(token!).rootKeyId).toBe(newKey);
    for (const proxy of proxies) {
      await expect.poll(async () => connect(proxy, token!).then((c) => (void c.end(), 'ok'), (e: { code?: string }) => e.code), { timeout: 5000 }).toBe('ok');
    }
  });

  it('SIGKILL of a proxy under load loses no audit entry of a statement whose result was delivered', async () => {
    const victim = proxies[1]!;
    const { token } = await exchangeAt(brokers[0]!);
    const delivered: number[] = [];
    const clients = await Promise.all(Array.from({ length: 4 }, () => connect(victim, token!)));
    let n = 0;
    let running = true;
    // each statement names a column alias of its own: the audit keeps identifiers, so each is findable
    const loop = async (c: pg.Client) => {
      while (running) {
        const i = n++;
        const ok = await c.query(`SELECT count(*) AS delivered_${i} FROM orders`).then(() => true, () => false);
        if (!ok) return;
        delivered.push(i);
      }
    };
    const loops = clients.map(loop);
    await new Promise((r) => setTimeout(r, 1000));
    await victim.stop('SIGKILL');
    running = false;
    await Promise.all(loops);
    expect(delivered.length).toBeGreaterThan(10);
    const { rows } = await store.pool.query<{ normalized: string }>(`SELECT normalized FROM audit_events WHERE source = 'proxy-pg' AND normalized LIKE '%delivered\\_%'`);
    const audited = new Set(rows.flatMap((r) => [...r.normalized.matchAll(/delivered_(\d+)/g)].map((m) => Number(m[1]))));
    expect(delivered.filter((i) => !audited.has(i))).toEqual([]);
  });

  it('SIGKILL of broker B under load loses no issued-token record and no audit entry of a 2xx exchange', async () => {
    const victim = brokers[1]!;
    const issued: string[] = [];
    let running = true;
    const loop = async () => {
      while (running) {
        const r = await exchangeAt(victim).catch(() => ({ status: 0 }) as { status: number; token?: string });
        if (r.status === 200 && r.token) issued.push(tokenIdOf(r.token));
        if (r.status === 0) return; // the process is gone
      }
    };
    const loops = Array.from({ length: 6 }, loop);
    await new Promise((r) => setTimeout(r, 1200));
    await victim.stop('SIGKILL');
    running = false;
    await Promise.all(loops);
    expect(issued.length).toBeGreaterThan(10);
    const records = await store.pool.query<{ token_id: string }>('SELECT token_id FROM issued_tokens WHERE token_id = ANY($1)', [issued]);
    expect(new Set(records.rows.map((r) => r.token_id))).toEqual(new Set(issued));
    const audited = await store.pool.query<{ token_id: string }>(
      `SELECT DISTINCT token_id FROM audit_events WHERE action = 'token.exchange' AND decision = 'allow' AND token_id = ANY($1)`,
      [issued],
    );
    expect(new Set(audited.rows.map((r) => r.token_id))).toEqual(new Set(issued));
    // the other broker serves on
    expect((await exchangeAt(brokers[0]!)).status).toBe(200);
  });
});
