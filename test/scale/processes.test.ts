/**
 * Scale-out on one machine (issue 15 point 4): two brokers (`baton serve`) and three Postgres proxies
 * (`baton proxy`), each its own process, on the real PostgreSQL and Redis, one shared key file, a real
 * OIDC provider. Exchanges spread across brokers; a revocation made on broker A ends a session on a
 * proxy that resyncs from broker B within a second; a key rotation is honoured by every broker and
 * proxy; SIGKILL of a broker under load loses no issued-token record and no audit entry of a 2xx.
 */
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readLineage } from '../../src/token/lineage.ts';
import { decodeToken } from '../../src/token/wire/index.ts';
import { runCli } from '../helpers/cli.ts';
import { type Cluster, type ClusterBroker, type ClusterProxy, startCluster } from '../helpers/cluster.ts';

let cluster: Cluster;
const brokers: ClusterBroker[] = [];
const proxies: ClusterProxy[] = [];

const exchangeAt = (broker: { url: string }) => cluster.exchange(broker);

async function connect(proxy: { port: number }, token: string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'agent', database: 'appdb', password: token });
  c.on('error', () => {});
  await c.connect();
  return c;
}

const tokenIdOf = (token: string) => readLineage(decodeToken(token))[0]!.tokenId!;

beforeAll(async () => {
  cluster = await startCluster('scale');
  brokers.push(await cluster.startBroker('broker-a'));
  brokers.push(await cluster.startBroker('broker-b'));
  // proxies resync revocations from different brokers
  proxies.push(await cluster.startProxy('proxy-1', brokers[0]!), await cluster.startProxy('proxy-2', brokers[0]!), await cluster.startProxy('proxy-3', brokers[1]!));
}, 120_000);

afterAll(async () => {
  if (process.env.SCALE_DEBUG) for (const p of [...brokers, ...proxies]) console.log(p.output().slice(-3000));
  await cluster?.stop();
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

  it('a proxy configured from the environment for transaction pooling serves 40 sessions on 3 upstream connections', async () => {
    const pooled = await cluster.startProxy('proxy-pooled', brokers[0]!, { BATON_PROXY_POOLING: 'transaction', BATON_PROXY_POOL_SIZE: '3' });
    proxies.push(pooled);
    const tokens = await Promise.all([exchangeAt(brokers[0]!), exchangeAt(brokers[1]!)]);
    const sessions = await Promise.all(Array.from({ length: 40 }, (_, i) => connect(pooled, tokens[i % 2]!.token!)));
    const counts = await Promise.all(sessions.map(async (c) => (await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n));
    expect(counts.every((n) => n === 300)).toBe(true);
    const upstream = await cluster.store.pool.query<{ n: number }>(
      "SELECT count(*)::int AS n FROM pg_stat_activity WHERE datname = $1 AND application_name = 'baton (pooled)'",
      [new URL(cluster.appdbUrl).pathname.slice(1)],
    );
    expect(upstream.rows[0]!.n).toBeGreaterThan(0);
    expect(upstream.rows[0]!.n).toBeLessThanOrEqual(3);
    expect(await sessions[0]!.query('SET work_mem = 1024').catch((e: { code?: string }) => e.code)).toBe('0A000');
    await Promise.all(sessions.map((c) => c.end()));
  });

  it('a key rotation on the shared key file is honoured by both brokers and every proxy', async () => {
    const rotated = await runCli(['keys', 'rotate', '--keys-file', cluster.keysFile, '--json']);
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
    const { rows } = await cluster.store.pool.query<{ normalized: string }>(`SELECT normalized FROM audit_events WHERE source = 'proxy-pg' AND normalized LIKE '%delivered\\_%'`);
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
    const records = await cluster.store.pool.query<{ token_id: string }>('SELECT token_id FROM issued_tokens WHERE token_id = ANY($1)', [issued]);
    expect(new Set(records.rows.map((r) => r.token_id))).toEqual(new Set(issued));
    const audited = await cluster.store.pool.query<{ token_id: string }>(
      `SELECT DISTINCT token_id FROM audit_events WHERE action = 'token.exchange' AND decision = 'allow' AND token_id = ANY($1)`,
      [issued],
    );
    expect(new Set(audited.rows.map((r) => r.token_id))).toEqual(new Set(issued));
    // the other broker serves on
    expect((await exchangeAt(brokers[0]!)).status).toBe(200);
  });
});
