/**
 * Child process: a dev-mode broker (dev OIDC issuer, high rate limits) on loopback, and — when
 * BENCH_UPSTREAM_URL is set — the Postgres proxy in front of that database as upstream `appdb`
 * (the name the dev policy grants), with authorization and durable audit on, sharing the broker's
 * keyring and audit writer exactly as `baton dev` does.
 *
 * Env: BENCH_DATABASE_URL (migrated broker database), BENCH_DATA_DIR, BENCH_UPSTREAM_URL?, REDIS_URL?,
 * BENCH_AUDIT=memory (DIAGNOSTIC: the proxy audits into bench/lib/memory-audit.ts, i.e. not at all),
 * BENCH_AUDIT_ORDERING=strict (every entry durable before its statement is forwarded).
 * Prints `{"brokerUrl": …, "proxyPort": …}` when ready; exits on SIGTERM.
 */
import { startBroker } from '../../src/broker/server.ts';
import { loadConfig } from '../../src/config/load.ts';
import { startPgProxy } from '../../src/proxy/pg/start.ts';
import { upstreamFromUrl } from '../../src/proxy/pg/upstreams.ts';
import { memoryAuditWriter } from './memory-audit.ts';

const env = process.env;
const config = loadConfig({
  env: {},
  overrides: {
    mode: 'dev',
    dataDir: env.BENCH_DATA_DIR!,
    logLevel: 'silent',
    databaseUrl: env.BENCH_DATABASE_URL!,
    ...(env.REDIS_URL ? { redisUrl: env.REDIS_URL } : {}),
    broker: { port: 0, rateLimit: { perSubject: 1_000_000_000, perClient: 1_000_000_000 } },
    proxy: { port: 0 },
    audit: { ordering: env.BENCH_AUDIT_ORDERING === 'strict' ? 'strict' : 'default' },
  },
});
const broker = await startBroker(config, { devIssuer: true });
const proxy = env.BENCH_UPSTREAM_URL
  ? await startPgProxy(config.proxy, {
      keys: { resolver: async () => broker.keyring, current: () => broker.keyring },
      revocations: broker.revocations,
      auditOrdering: config.audit.ordering,
      audit: env.BENCH_AUDIT === 'memory' ? memoryAuditWriter() : broker.audit,
      upstreams: new Map([['appdb', upstreamFromUrl(env.BENCH_UPSTREAM_URL)]]),
    })
  : undefined;

process.once('SIGTERM', () => {
  void (async () => {
    await proxy?.close();
    await broker.close();
    process.exit(0);
  })();
});
process.stdout.write(`${JSON.stringify({ brokerUrl: broker.url, proxyPort: proxy?.port })}\n`);
