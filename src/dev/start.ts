/** Everything `baton dev` starts, in order, and the banner it prints. */
import type { Config } from '../config/schema.ts';
import { DEV_POLICY_FILE, startBroker } from '../broker/server.ts';
import type { PgCredentialUpstream } from '../credentials/postgres.ts';
import { perTokenIdentity } from '../proxy/pg/upstream-identity.ts';
import { enforcementFromPolicy } from '../enforce/from-policy.ts';
import { loadPolicyFile } from '../policy/load.ts';
import { observedAuditWriter } from '../proxy/admin/observe.ts';
import { loggedSessions } from '../proxy/admin/session-log.ts';
import { publishedSessions } from '../proxy/admin/session-registry.ts';
import { createSessionRegistry } from '../sessions/registry.ts';
import { assertLeastPrivilegedUpstreams, upstreamFromUrl } from '../proxy/pg/upstreams.ts';
import { startPgProxy } from '../proxy/pg/start.ts';
import { startHttpProxy } from '../proxy/http/start.ts';
import { startDemoHttpUpstreams } from './demo-http.ts';
import { devCertificate } from './certificate.ts';
import { ensureDemoUpstream } from './demo-upstream.ts';

export interface DevRunning {
  banner: string;
  close(): Promise<void>;
}

/** The demo upstream's database: `appdb` in the embedded server, its own database in DATABASE_URL's. */
function demoDatabase(config: Config): string {
  return config.databaseUrl ? 'baton_demo_appdb' : 'appdb';
}

export interface StartDevOptions {
  /** Where the log goes; `baton dev` passes a readable stream (src/dev/pretty-log.ts). Default JSON on stdout. */
  logStream?: NodeJS.WritableStream;
  /** The HTTP proxy's port is the default (not asked for): when it is taken, use any free port. */
  httpPortFallback?: boolean;
}

export async function startDev(config: Config, opts: StartDevOptions = {}): Promise<DevRunning> {
  // POST /v1/credentials/postgres issues roles on the demo upstream once it exists (below)
  const pgCredentialUpstreams = new Map<string, PgCredentialUpstream>();
  const broker = await startBroker(config, { devIssuer: true, pgCredentialUpstreams, ...(opts.logStream ? { logStream: opts.logStream } : {}) });
  const adminUrl = new URL(broker.db.url);
  adminUrl.pathname = '/postgres';
  const appdbUrl = await ensureDemoUpstream(adminUrl.toString(), demoDatabase(config));
  if (!config.credentials.postgres.upstreams.appdb) {
    const issuing = new URL(broker.db.url);
    issuing.pathname = `/${demoDatabase(config)}`;
    pgCredentialUpstreams.set('appdb', { adminUrl: issuing.toString(), connectionLimit: 5 });
  }
  const tls = devCertificate(config.dataDir);
  // appdbUrl logs in as the demo's least-privileged role; configured upstreams are checked the same way.
  const upstreams = new Map([['appdb', upstreamFromUrl(appdbUrl)], ...Object.entries(config.proxy.upstreams).map(([n, u]) => [n, upstreamFromUrl(u.url)] as const)]);
  try {
    await assertLeastPrivilegedUpstreams(upstreams, {
      allowSuperuserUpstream: config.proxy.allowSuperuserUpstream,
      warn: (message) => broker.app.log.warn({ event: 'pg.upstream.privileged' }, message),
    });
  } catch (err) {
    await broker.close();
    throw err;
  }
  const policy = loadPolicyFile(config.proxy.policyFile ?? config.broker.policyFile ?? DEV_POLICY_FILE);
  // held statements are recorded in (and decided through) the broker's approvals store
  const enforcement = enforcementFromPolicy(policy, { dataDir: config.dataDir, desk: broker.approvals, ...(config.masking.hmacKey ? { hmacKey: config.masking.hmacKey } : {}) });
  // open sessions are published for GET /v1/sessions (the console's live sessions)
  const registry = createSessionRegistry(broker.db.pool, { log: (m) => broker.app.log.warn({ event: 'sessions.registry' }, m) });
  const proxy = await startPgProxy(config.proxy, {
    keys: { resolver: async () => broker.keyring, current: () => broker.keyring },
    revocations: broker.revocations,
    // the proxy's statements, sessions and latencies go into the broker's /metrics
    audit: observedAuditWriter(broker.audit, broker.metrics),
    auditOrdering: config.audit.ordering,
    upstreams,
    ...(tls ? { tls } : {}),
    logger: broker.app.log,
    wrapGate: (gate) => publishedSessions(loggedSessions(gate, broker.app.log), registry, { state: broker.state, revocations: broker.revocations }),
    enforcement,
    // proxy.upstreamIdentity: per-token — roles made and reaped by the broker's credential service
    ...(config.proxy.upstreamIdentity === 'per-token' ? { upstreamIdentity: perTokenIdentity(broker.pgCredentials.roleForProxy) } : {}),
  });
  broker.metrics.sources.sessions = () => proxy.proxy.sessionCount;
  broker.metrics.sources.upstreamPool = () => proxy.proxy.upstreamStats();
  // the HTTP proxy, in front of the demo upstreams billing (REST) and tools (MCP) and any configured ones
  const demoHttp = await startDemoHttpUpstreams();
  const keys = { resolver: async () => broker.keyring, current: () => broker.keyring };
  let httpProxy;
  const startHttp = (port: number) =>
    startHttpProxy(
      { ...config.proxy.http, port },
      {
        keys,
        revocations: broker.revocations,
        audit: observedAuditWriter(broker.audit, broker.metrics),
        auditOrdering: config.audit.ordering,
        extraUpstreams: demoHttp.upstreams,
        logger: broker.app.log,
      },
    );
  try {
    try {
      httpProxy = await startHttp(config.proxy.http.port);
    } catch (err) {
      // the default port taken (another `baton dev`, anything on 8081): any free one, said in the banner;
      // a port the user asked for (--http-port, BATON_PROXY_HTTP_PORT) is not silently replaced
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || !opts.httpPortFallback) throw err;
      httpProxy = await startHttp(0);
      broker.app.log.warn({ event: 'dev.http_port_taken', port: config.proxy.http.port }, `port ${config.proxy.http.port} is in use: the HTTP proxy listens on ${httpProxy.url}`);
    }
  } catch (err) {
    await demoHttp.close();
    await proxy.close();
    await broker.close();
    throw err;
  }
  const h = httpProxy.url;
  const b = broker.url;
  const banner = `
  Baton DEV MODE — the dev OIDC issuer at ${b}/dev/oidc mints tokens for anyone. Never expose it.

  broker   ${b}          (database: ${broker.db.kind}, shared state: ${broker.state.kind})
  console  ${b}/console    (sign in as an admin: subject root, groups admins)
  proxy    postgres://127.0.0.1:${proxy.port}/appdb   (TLS: ${tls ? 'self-signed dev certificate' : 'off'})
  data     ${config.dataDir}

  Try:
    export BATON_BROKER=${b}
    npx baton login --sub alice --groups engineers          # dev OIDC token → Baton token, cached
    CHILD=$(npx baton attenuate --resource pg:appdb/public.orders --op read --ttl 5m --to helper-7)
    BATON_TOKEN=$CHILD npx baton inspect
    BATON_TOKEN=$CHILD npx baton db connect appdb --port ${proxy.port} -- -c 'SELECT count(*) FROM orders'
    BATON_TOKEN=$CHILD npx baton db connect appdb --port ${proxy.port} -- -c 'DELETE FROM orders'   # denied: 42501
    npx baton db connect appdb --port ${proxy.port} -- -c 'SELECT email, card_number FROM customers LIMIT 3'   # masked
    npx baton db connect appdb --port ${proxy.port} -- -c 'DELETE FROM audit_notes'   # held for approval: 55W01 apr_…
    npx baton login --sub root --groups admins && npx baton approvals list   # an approver decides (then alice retries)

  HTTP proxy ${h}   (demo upstreams: ${h}/billing/… REST, ${h}/tools/mcp MCP)
    npx baton login --sub alice --groups engineers
    HELPER=$(npx baton attenuate --resource http:billing/invoices/ --op read --ttl 5m --to helper-h)
    curl -H "authorization: Bearer $HELPER" ${h}/billing/invoices        # 200; the upstream never sees the token
    curl -H "authorization: Bearer $HELPER" ${h}/billing/customers       # 403 problem+json naming the link
    MCP=$(npx baton attenuate --resource mcp:tools/search_orders --op call --ttl 5m --to helper-mcp)
    # an MCP client (Streamable HTTP) at ${h}/tools/mcp with "authorization: Bearer $MCP" lists and calls only search_orders

  Native credentials (ending with the token)
    psql "$(BATON_TOKEN=$CHILD npx baton credentials postgres --upstream appdb)" -c 'SELECT count(*) FROM orders'
    npx baton credentials aws --role reports --env   # needs AWS_ENDPOINT_URL_STS and AWS credentials (MinIO, LocalStack, an account)
`;
  return {
    banner,
    async close() {
      await httpProxy.close();
      await demoHttp.close();
      await proxy.close();
      await registry.close();
      await broker.close();
    },
  };
}
