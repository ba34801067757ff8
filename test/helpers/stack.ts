/**
 * The whole data path on loopback for tests: a dev-mode broker on a fresh database, a seeded demo
 * upstream `appdb` in its own fresh database, and the Postgres proxy in front of it.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { dropDemoUpstream, ensureDemoUpstream } from '../../src/dev/demo-upstream.ts';
import { startPgProxy, type PgProxyConfig, type PgProxyDeps, type RunningPgProxy } from '../../src/proxy/pg/start.ts';
import { RevocationSet } from '../../src/revocation/set.ts';
import { httpRevocationSource } from '../../src/revocation/sources.ts';
import { upstreamFromUrl } from '../../src/proxy/pg/upstreams.ts';
import { attenuate, type AttenuateOptions } from '../../src/token/attenuate.ts';
import { exchange } from '../../src/sdk/exchange.ts';
import { DEV_POLICY_FILE } from '../../src/broker/server.ts';
import { dropEphemeralRole } from '../../src/credentials/postgres.ts';
import { createPostgresCredentials } from '../../src/credentials/postgres-service.ts';
import { loadPolicyFile } from '../../src/policy/load.ts';
import { perTokenIdentity } from '../../src/proxy/pg/upstream-identity.ts';
import { startTestBroker, type TestBroker } from './broker.ts';
import { TEST_DATABASE_URL } from './database.ts';

export interface TestStack {
  broker: TestBroker;
  proxy: RunningPgProxy;
  /** The proxy's own revocation set: fed like a separate process's (channel + HTTP resync). */
  proxyRevocations: RevocationSet;
  /** The demo upstream as the proxy reaches it (its least-privileged role). */
  appdbUrl: string;
  /** A Baton token for a dev-issuer identity. */
  token(sub: string, groups: string[], clientId?: string): Promise<string>;
  attenuate(token: string, opts: AttenuateOptions): string;
  /** A connected node-postgres client through the proxy. */
  connect(token: string, database?: string): Promise<pg.Client>;
  /** Direct (superuser) access to the upstream, bypassing the proxy. */
  direct(sql: string, params?: unknown[]): Promise<pg.QueryResult>;
  stop(): Promise<void>;
}

export async function startTestStack(
  area: string,
  proxyConfig: Partial<PgProxyConfig> = {},
  opts: {
    auditOrdering?: 'default' | 'strict';
    /** Masking and approvals for the proxy; a function gets the broker (its approvals store). */
    enforcement?: PgProxyDeps['enforcement'] | ((broker: TestBroker) => PgProxyDeps['enforcement']);
    /** proxy.upstreamIdentity: per-token, roles made on appdb by the superuser (reaped every 200 ms). */
    perTokenIdentity?: boolean;
    /** Wraps the proxy's gate (e.g. the live-session registry); gets the broker. */
    wrapGate?: (broker: TestBroker) => PgProxyDeps['wrapGate'];
  } = {},
): Promise<TestStack> {
  const broker = await startTestBroker(area);
  const admin = new URL(TEST_DATABASE_URL);
  admin.pathname = '/postgres';
  const appdbName = `baton_t_${area}_appdb_${randomBytes(3).toString('hex')}`;
  const appdbUrl = await ensureDemoUpstream(admin.toString(), appdbName);
  const proxyRevocations = new RevocationSet({ source: httpRevocationSource(broker.url), state: broker.state });
  await proxyRevocations.start();
  const directUrl = new URL(admin);
  directUrl.pathname = `/${appdbName}`;
  const identities = opts.perTokenIdentity
    ? createPostgresCredentials({
        pool: broker.db.pool,
        upstreams: new Map([['appdb', { adminUrl: directUrl.toString(), connectionLimit: 5 }]]),
        policy: () => loadPolicyFile(DEV_POLICY_FILE),
        audit: broker.audit,
        revocations: proxyRevocations,
        reapIntervalMs: 200,
      })
    : undefined;
  identities?.start();
  const proxy = await startPgProxy(
    // Test files hold many sessions of one token open at once: the per-token cap is raised here.
    { host: '127.0.0.1', port: 0, upstreams: {}, allowInsecure: false, revocationStalenessSeconds: 5, ...proxyConfig, limits: { maxSessionsPerToken: 1000, ...proxyConfig.limits } },
    {
      keys: { resolver: async () => broker.keyring, current: () => broker.keyring },
      revocations: proxyRevocations,
      audit: broker.audit,
      upstreams: new Map([['appdb', upstreamFromUrl(appdbUrl)]]),
      ...(opts.auditOrdering ? { auditOrdering: opts.auditOrdering } : {}),
      ...(opts.enforcement ? { enforcement: typeof opts.enforcement === 'function' ? opts.enforcement(broker) : opts.enforcement } : {}),
      ...(identities ? { upstreamIdentity: perTokenIdentity(identities.roleForProxy) } : {}),
      ...(opts.wrapGate ? { wrapGate: opts.wrapGate(broker) } : {}),
    },
  );
  const direct = new pg.Pool({ connectionString: directUrl.toString(), max: 2 });
  const clients = new Set<pg.Client>();
  return {
    broker,
    proxy,
    proxyRevocations,
    appdbUrl,
    async token(sub, groups, clientId) {
      return exchange({ broker: broker.url, subjectToken: await broker.devToken(sub, groups, clientId ? { client_id: clientId } : {}) });
    },
    attenuate,
    async connect(token, database = 'appdb') {
      const c = new pg.Client({ host: '127.0.0.1', port: proxy.port, user: 'agent', database, password: token });
      c.on('error', () => {});
      await c.connect();
      clients.add(c);
      return c;
    },
    direct: (sql, params) => direct.query(sql, params),
    async stop() {
      for (const c of clients) await c.end().catch(() => {});
      await proxy.close();
      if (identities) {
        await identities.stop();
        const live = await broker.db.pool.query<{ role_name: string }>('SELECT role_name FROM native_pg_roles WHERE dropped_at IS NULL');
        const a = new pg.Client({ connectionString: directUrl.toString() });
        await a.connect();
        for (const { role_name } of live.rows) await dropEphemeralRole(a, role_name).catch(() => {});
        await a.end();
      }
      await proxyRevocations.stop();
      await direct.end();
      await broker.stop();
      await dropDemoUpstream(admin.toString(), appdbName);
    },
  };
}

/** The SQLSTATE a query failed with, or undefined when it succeeded. */
export async function sqlstate(p: Promise<unknown>): Promise<string | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return (e as { code?: string }).code;
  }
}
