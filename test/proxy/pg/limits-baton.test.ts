/**
 * Limits through the whole stack (broker tokens, Baton gate, classifier): the per-token cap counts
 * a lineage (every attenuated child of one exchange), large statements are classified off the main
 * thread within a time budget, and the upstream's statement_timeout is pinned.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startPgProxy, type RunningPgProxy } from '../../../src/proxy/pg/start.ts';
import { upstreamFromUrl } from '../../../src/proxy/pg/upstreams.ts';
import { startTestStack, type TestStack } from '../../helpers/stack.ts';

let stack: TestStack;
const extra: RunningPgProxy[] = [];

beforeAll(async () => {
  stack = await startTestStack('pglimits');
});

afterAll(async () => {
  for (const p of extra) await p.close();
  await stack?.stop();
});

/** A second proxy on the same broker and upstream, with its own limits. */
async function proxyWith(limits: Record<string, number>, statementTimeoutMs?: number): Promise<RunningPgProxy> {
  const p = await startPgProxy(
    { host: '127.0.0.1', port: 0, upstreams: {}, allowInsecure: false, revocationStalenessSeconds: 5, limits, ...(statementTimeoutMs === undefined ? {} : { statementTimeoutMs }) },
    { keys: { resolver: async () => stack.broker.keyring }, revocations: stack.proxyRevocations, audit: stack.broker.audit, upstreams: new Map([['appdb', upstreamFromUrl(stack.appdbUrl)]]) },
  );
  extra.push(p);
  return p;
}

const clients: pg.Client[] = [];
async function connect(port: number, token: string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port, user: 'agent', database: 'appdb', password: token });
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
}
afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
});

/** `SELECT … WHERE id = 1 AND id = 1 AND …` of about `chars` characters. */
function hugeSelect(chars: number): string {
  const head = 'SELECT count(*) FROM orders WHERE id = 1';
  return head + ' AND id = 1'.repeat(Math.ceil((chars - head.length) / 11));
}

describe('per-token session cap', () => {
  it('counts every attenuated child of one exchange together; another exchange still connects', async () => {
    const p = await proxyWith({ maxSessionsPerToken: 2 });
    const token = await stack.token('alice', ['engineers']);
    const childA = stack.attenuate(token, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'helper-a' });
    const childB = stack.attenuate(token, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'helper-b' });
    await connect(p.port, childA);
    await connect(p.port, childB);
    const refused = (await connect(p.port, stack.attenuate(childA, { ttl: '5m', delegateTo: 'helper-c' })).catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(refused.code).toBe('53300');
    expect(refused.message).toContain('too many sessions for this token (limit proxy.limits.maxSessionsPerToken = 2)');
    await expect(connect(p.port, token)).rejects.toMatchObject({ code: '53300' });
    // a separate exchange (another lineage) is not affected
    const other = await connect(p.port, await stack.token('alice', ['engineers']));
    expect((await other.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
  });
});

describe('large statements', () => {
  it('are classified off the main thread: a small statement of another session completes within 200 ms meanwhile', async () => {
    // a generous budget: this test is about not stalling others, not about the budget (below)
    const p = await proxyWith({ classifyTimeoutMs: 30_000 });
    const token = await stack.token('bob', ['engineers']);
    const big = await connect(p.port, token);
    const small = await connect(p.port, token);
    await small.query('SELECT 1');
    const sql = hugeSelect(1_000_000);
    // warm the worker pool so that its start-up is not part of the measurement
    await big.query(hugeSelect(20_000));
    // Small statements of another session run every 20 ms, before, during and after the big one.
    // The proxy runs in this process, so a stalled main thread would stretch whichever step is under
    // way when it stalls: each round (statement + 20 ms pause) is timed as a whole.
    const latencies: number[] = [];
    const rounds: number[] = [];
    let stop = false;
    const smallLoop = (async () => {
      while (!stop) {
        const s = performance.now();
        expect((await small.query('SELECT 1 AS x')).rows[0].x).toBe(1);
        latencies.push(performance.now() - s);
        await new Promise((r) => setTimeout(r, 20));
        rounds.push(performance.now() - s);
      }
    })();
    await new Promise((r) => setTimeout(r, 100));
    const loop = monitorEventLoopDelay({ resolution: 10 });
    loop.enable();
    const t0 = performance.now();
    const result = await big.query(sql).then(
      (r) => ({ ok: true, at: performance.now() - t0, n: r.rows[0].count }),
      (e: { code?: string; message?: string }) => ({ ok: false, at: performance.now() - t0, n: `${e.code} ${e.message}` }),
    );
    loop.disable();
    stop = true;
    await smallLoop;
    expect(result.ok, String(result.n)).toBe(true);
    const stall = loop.max / 1e6;
    console.log(
      `1 MB statement answered after ${result.at.toFixed(0)} ms; ${latencies.length} small statements meanwhile, ` +
        `slowest ${Math.max(...latencies).toFixed(1)} ms, slowest round ${Math.max(...rounds).toFixed(1)} ms, longest event-loop stall ${stall.toFixed(0)} ms`,
    );
    expect(latencies.length).toBeGreaterThan(10);
    // Before, the proxy's thread stalled ~2-3 s here. Now statements of others complete in 10-20 ms
    // typically; 500 ms is allowed because on a shared, overloaded 2-core box (load 10+) any thread
    // may simply not be scheduled for a few hundred ms, and the upstream is busy with the 1 MB one.
    expect(stall).toBeLessThan(500);
    expect(Math.max(...rounds)).toBeLessThan(500);
  }, 60_000);

  it('are denied when classification exceeds its time budget; the worker is replaced and the session continues', async () => {
    const p = await proxyWith({ classifyTimeoutMs: 400, classifyWorkers: 1 });
    const c = await connect(p.port, await stack.token('carol', ['engineers']));
    await c.query(hugeSelect(20_000)).catch(() => {}); // starts the worker (may itself run out of budget on a loaded box)
    const err = (await c.query(hugeSelect(1_000_000)).catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(err.code).toBe('42501');
    expect(err.message).toContain('classification took longer than 400 ms (limit proxy.limits.classifyTimeoutMs)');
    expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
    // a fresh worker answers (retried: on a loaded box even 20 kB may take longer than 400 ms once)
    let count: unknown;
    for (let i = 0; i < 3 && count === undefined; i++) count = await c.query(hugeSelect(20_000)).then((r) => r.rows[0].count, () => undefined);
    expect(count).toBe('1');
  }, 30_000);

  it('over maxStatementBytes are refused with 54000 naming the limit', async () => {
    const c = await connect(stack.proxy.port, await stack.token('dave', ['engineers']));
    const err = (await c.query(hugeSelect(1_100_000)).catch((e: unknown) => e)) as { code?: string; message?: string };
    expect(err.code).toBe('54000');
    expect(err.message).toContain('proxy.limits.maxStatementBytes = 1048576');
    expect((await c.query('SELECT 1 AS x')).rows[0].x).toBe(1);
  });
});

describe('pinned statement_timeout', () => {
  it('is 30 s by default and follows proxy.statementTimeoutMs', async () => {
    const token = await stack.token('erin', ['engineers']);
    const c = await connect(stack.proxy.port, token);
    expect((await c.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('30s');
    const p = await proxyWith({}, 250);
    const d = await connect(p.port, token);
    expect((await d.query('SHOW statement_timeout')).rows[0].statement_timeout).toBe('250ms');
    await expect(d.query('SELECT count(*) FROM orders a, orders b, orders c, orders d')).rejects.toMatchObject({ code: '57014' });
  });
});
