/**
 * `baton proxy`'s admin listener, on a real standalone proxy process: /healthz, /readyz (503 naming
 * the audit database while it is unreachable), /metrics moving with real statements; and the shared
 * health-route logging (debug, not info).
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from 'node:net';
import { Writable } from 'node:stream';
import pg from 'pg';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureDemoUpstream } from '../../../src/dev/demo-upstream.ts';
import { startAdminServer } from '../../../src/proxy/admin/server.ts';
import { exchange } from '../../../src/sdk/exchange.ts';
import { attenuate } from '../../../src/token/attenuate.ts';
import { freePort } from '../../../src/util/free-port.ts';
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts';
import { TEST_DATABASE_URL } from '../../helpers/database.ts';
import { spawnStandaloneProxy, type StandaloneProxy } from '../../helpers/standalone-proxy.ts';

/** A TCP relay to the test PostgreSQL that can be cut (all connections dropped, no listener) and restored. */
class Relay {
  #server: Server | undefined;
  readonly #sockets = new Set<Socket>();
  constructor(
    readonly port: number,
    readonly target: { host: string; port: number },
  ) {}
  async up(): Promise<void> {
    const server = createServer((client) => {
      const upstream = tcpConnect(this.target.port, this.target.host);
      for (const s of [client, upstream]) {
        this.#sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => this.#sockets.delete(s));
      }
      client.pipe(upstream).pipe(client);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.#server = server;
  }
  async down(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    for (const s of this.#sockets) s.destroy();
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

let broker: TestBroker;
let standalone: StandaloneProxy;
let relay: Relay;
let appdb: string;

beforeAll(async () => {
  broker = await startTestBroker('proxyadmin');
  const admin = new URL(TEST_DATABASE_URL);
  admin.pathname = '/postgres';
  appdb = `baton_t_proxyadmin_appdb_${process.pid}`;
  const appdbUrl = await ensureDemoUpstream(admin.toString(), appdb);
  const db = new URL(broker.testDb.url);
  relay = new Relay(await freePort(), { host: db.hostname, port: Number(db.port || 5432) });
  await relay.up();
  const audit = new URL(broker.testDb.url);
  audit.host = `127.0.0.1:${relay.port}`;
  standalone = await spawnStandaloneProxy(broker, { appdb: appdbUrl }, { admin: { port: 0 } }, { DATABASE_URL: audit.toString() });
}, 90_000);
afterAll(async () => {
  await standalone?.stop();
  await relay?.down();
  await broker?.stop();
  const a = new pg.Client({ connectionString: TEST_DATABASE_URL });
  await a.connect();
  await a.query(`DROP DATABASE IF EXISTS ${appdb} WITH (FORCE)`);
  await a.end();
});

const get = async (path: string) => {
  const res = await fetch(`${standalone.adminUrl}${path}`);
  return { status: res.status, text: await res.text() };
};

/** The value of one sample (`name{labels}`) in the exposition text, or undefined. */
function sample(text: string, series: string): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1));
  }
  return undefined;
}

async function until<T>(what: () => Promise<T>, ok: (v: T) => boolean, ms: number): Promise<T> {
  const t0 = Date.now();
  let v = await what();
  while (!ok(v) && Date.now() - t0 < ms) {
    await new Promise((r) => setTimeout(r, 100));
    v = await what();
  }
  return v;
}

describe('baton proxy admin listener', () => {
  it('announces itself on loopback and answers /healthz and /readyz', async () => {
    expect(standalone.adminUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(await get('/healthz')).toEqual({ status: 200, text: JSON.stringify({ status: 'ok' }) });
    const ready = await until(() => get('/readyz'), (r) => r.status === 200, 5000);
    expect(ready.status).toBe(200);
    expect(JSON.parse(ready.text)).toEqual({ status: 'ready', checks: ['listener', 'keys', 'revocations', 'audit'] });
  });

  it('exports standard process metrics under their standard names and Baton metrics prefixed baton_', async () => {
    const { status, text } = await get('/metrics');
    expect(status).toBe(200);
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    expect(text).toMatch(/^nodejs_heap_size_used_bytes /m);
    expect(text).not.toMatch(/baton_process_|baton_nodejs_/);
    for (const name of ['baton_proxy_statements_total', 'baton_proxy_sessions', 'baton_proxy_upstream_seconds', 'baton_audit_queue_depth', 'baton_audit_commit_seconds', 'baton_revocation_staleness_seconds', 'baton_keyset_age_seconds']) {
      expect(text).toContain(`# TYPE ${name} `);
    }
    // fresh: synced within the staleness bound (5 s)
    expect(sample(text, 'baton_revocation_staleness_seconds')).toBeLessThan(5);
    expect(sample(text, 'baton_keyset_age_seconds')).toBeLessThan(5);
    expect(sample(text, 'baton_audit_queue_depth{chain="events"}')).toBe(0);
  });

  it('counts statements by decision and reason, sessions, upstream and commit latency', async () => {
    const before = (await get('/metrics')).text;
    const allowed0 = sample(before, 'baton_proxy_statements_total{decision="allowed",reason=""}') ?? 0;
    const denied0 = sample(before, 'baton_proxy_statements_total{decision="denied",reason="permission"}') ?? 0;
    const upstream0 = sample(before, 'baton_proxy_upstream_seconds_count') ?? 0;
    const commits0 = sample(before, 'baton_audit_commit_seconds_count') ?? 0;

    const token = await exchange({ broker: broker.url, subjectToken: await broker.devToken('alice', ['engineers']) });
    const child = attenuate(token, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'helper-7' });
    const c = new pg.Client({ host: '127.0.0.1', port: standalone.port, user: 'agent', database: 'appdb', password: child });
    c.on('error', () => {});
    await c.connect();
    try {
      expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
      await c.query('SELECT 1');
      await expect(c.query('DELETE FROM orders')).rejects.toMatchObject({ code: '42501' });
      const during = (await get('/metrics')).text;
      expect(sample(during, 'baton_proxy_sessions')).toBe(1);
    } finally {
      await c.end();
    }
    // outcomes are recorded after the answers: let them land
    const after = await until(
      async () => (await get('/metrics')).text,
      (t) => (sample(t, 'baton_proxy_upstream_seconds_count') ?? 0) >= upstream0 + 2 && sample(t, 'baton_proxy_sessions') === 0,
      5000,
    );
    expect(sample(after, 'baton_proxy_statements_total{decision="allowed",reason=""}')).toBe(allowed0 + 2);
    expect(sample(after, 'baton_proxy_statements_total{decision="denied",reason="permission"}')).toBe(denied0 + 1);
    expect(sample(after, 'baton_proxy_upstream_seconds_count')).toBeGreaterThanOrEqual(upstream0 + 2);
    expect(sample(after, 'baton_audit_commit_seconds_count')).toBeGreaterThanOrEqual(commits0 + 3);
    expect(sample(after, 'baton_proxy_sessions')).toBe(0);
    expect(after).not.toContain(child);
  });

  it('/readyz turns 503 naming the audit database while it is unreachable, and recovers', async () => {
    await relay.down();
    try {
      const down = await until(() => get('/readyz'), (r) => r.status === 503, 10_000);
      expect(down.status).toBe(503);
      const body = JSON.parse(down.text) as { status: string; reasons: string[] };
      expect(body.status).toBe('unavailable');
      expect(body.reasons.some((r) => r.startsWith('audit: '))).toBe(true);
      expect((await get('/healthz')).status).toBe(200); // alive all the same
    } finally {
      await relay.up();
    }
    const back = await until(() => get('/readyz'), (r) => r.status === 200, 15_000);
    expect(back.status).toBe(200);
  }, 40_000);
});

describe('health-route logging', () => {
  it('logs probes at debug only; other requests as usual', async () => {
    const lines: Array<{ level: number; msg: string; reqId?: string; req?: { url?: string } }> = [];
    const sink = new Writable({
      write(chunk: Buffer, _enc, done) {
        for (const l of chunk.toString().split('\n')) if (l) lines.push(JSON.parse(l));
        done();
      },
    });
    for (const level of ['info', 'debug'] as const) {
      lines.length = 0;
      const admin = await startAdminServer({ host: '127.0.0.1', port: 0, registry: new Registry(), checks: [], logger: pino({ level }, sink) });
      try {
        await fetch(`${admin.url}/healthz`);
        await fetch(`${admin.url}/readyz`);
        await fetch(`${admin.url}/metrics`);
        await fetch(`${admin.url}/nope`);
      } finally {
        await admin.close();
      }
      // each request's lines share its reqId; `incoming request` names the URL
      const urls = new Map(lines.filter((l) => l.req?.url).map((l) => [l.reqId, l.req!.url!]));
      const health = lines.filter((l) => /^\/(healthz|readyz|metrics)$/.test(urls.get(l.reqId) ?? '') || /\/(healthz|readyz|metrics)/.test(JSON.stringify(l)));
      const other = lines.filter((l) => urls.get(l.reqId) === '/nope');
      expect(other.some((l) => l.level === 30)).toBe(true); // info: request completed
      if (level === 'info') expect(health).toEqual([]);
      else {
        expect(health.length).toBe(6); // incoming request + request completed, each at debug
        expect(health.every((l) => l.level === 20)).toBe(true);
      }
    }
  });
});
