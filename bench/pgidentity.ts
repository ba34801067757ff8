/**
 * What `proxy.upstreamIdentity: per-token` costs at connect (issue 14 point 7): connect + `SELECT 1`
 * + close, one after another, in the same run:
 *
 * - direct: to the upstream as the proxy's own least-privileged login (no proxy);
 * - proxy: through the Postgres proxy, sessions log in upstream as that login (the default);
 * - per-token, cached: the chain's ephemeral role already exists (every session after its first);
 * - per-token, new chain: every connect is a chain's first session — the role is made on the spot
 *   (catalog read, CREATE ROLE + GRANTs in one transaction, an audit entry durable first).
 *
 *   npm run bench -- pgidentity        # ~30 s
 *
 * Env: BENCH_CONNECTS (default 200; new chains: a quarter of it).
 */
import pg from 'pg';
import { startTestStack, type TestStack } from '../test/helpers/stack.ts';
import { fmt, printTable, summarize, timeAsync } from './lib/report.ts';

const CONNECTS = Number(process.env.BENCH_CONNECTS ?? 200);

async function connectOnce(config: pg.ClientConfig): Promise<void> {
  const c = new pg.Client(config);
  await c.connect();
  await c.query('SELECT 1');
  await c.end();
}

const viaProxy = (s: TestStack, token: string): pg.ClientConfig => ({ host: '127.0.0.1', port: s.proxy.port, user: 'agent', database: 'appdb', password: token });

async function main(): Promise<void> {
  const plain = await startTestStack('bench_identity_proxy');
  const perToken = await startTestStack('bench_identity_token', {}, { perTokenIdentity: true });
  try {
    const token = plain.attenuate(await plain.token('alice', ['engineers']), { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'bench' });
    const chain = perToken.attenuate(await perToken.token('alice', ['engineers']), { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'bench' });
    const parent = await perToken.token('alice', ['engineers']);
    const fresh = Array.from({ length: Math.ceil(CONNECTS / 4) + 20 }, (_, i) => perToken.attenuate(parent, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: `bench-${i}` }));

    const direct = await timeAsync(() => connectOnce({ connectionString: plain.appdbUrl }), CONNECTS, 20);
    const proxied = await timeAsync(() => connectOnce(viaProxy(plain, token)), CONNECTS, 20);
    const cached = await timeAsync(() => connectOnce(viaProxy(perToken, chain)), CONNECTS, 20);
    const created = await timeAsync((i) => connectOnce(viaProxy(perToken, fresh[i]!)), Math.ceil(CONNECTS / 4), 0);

    const base = summarize(proxied).p50;
    const row = (name: string, samples: number[]) => {
      const s = summarize(samples);
      return [name, String(s.n), fmt(s.p50 / 1000, 2), fmt(s.p99 / 1000, 2), fmt((s.p50 - base) / 1000, 2)];
    };
    printTable(
      'connect + SELECT 1 + close, sequential (node-postgres); ms',
      ['target', 'n', 'p50', 'p99', 'p50 − proxy'],
      [
        row('direct (the proxy’s upstream login, no proxy)', direct),
        row('proxy, upstreamIdentity: proxy (default)', proxied),
        row('proxy, per-token, chain’s role cached', cached),
        row('proxy, per-token, new chain (role created)', created),
      ],
    );
  } finally {
    await perToken.stop();
    await plain.stop();
  }
}

await main();
process.exit(0);
