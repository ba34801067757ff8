/**
 * `baton proxy` — the enforcement proxies as their own process: Postgres (proxy.upstreams) and HTTP
 * (proxy.http.upstreams: REST, MCP, Kubernetes), with public keys and revocations from the broker
 * (Redis fan-out + HTTP resync), audit into DATABASE_URL, and (with `proxy.admin.port`) an admin
 * HTTP listener: /healthz, /readyz, /metrics.
 */
import { pino } from 'pino';
import { checkpointChannel, checkpointPublisher } from '../audit/witness.ts';
import { createAuditWriter, type AuditWriter } from '../audit/writer.ts';
import type { Config } from '../config/schema.ts';
import type { PolicyFile } from '../policy/schema.ts';
import type pg from 'pg';
import { assertModeFitsEnvironment, loadConfig, redisTopology } from '../config/load.ts';
import { createMetrics } from '../broker/metrics.ts';
import { observedAuditWriter } from '../proxy/admin/observe.ts';
import { startAdminServer, type ReadinessCheck } from '../proxy/admin/server.ts';
import { loggedSessions } from '../proxy/admin/session-log.ts';
import { publishedSessions } from '../proxy/admin/session-registry.ts';
import { createSessionRegistry } from '../sessions/registry.ts';
import { RemoteKeySet, staticKeySet } from '../proxy/pg/keyset.ts';
import { startPgProxy } from '../proxy/pg/start.ts';
import { startHttpProxy } from '../proxy/http/start.ts';
import { perTokenIdentity } from '../proxy/pg/upstream-identity.ts';
import { createPostgresCredentials } from '../credentials/postgres-service.ts';
import { enforcementFromPolicy } from '../enforce/from-policy.ts';
import { createApprovalDesk } from '../approvals/store.ts';
import { createWebhookNotifier } from '../approvals/webhook.ts';
import { loadPolicyFile } from '../policy/load.ts';
import { DEV_POLICY_FILE } from '../broker/server.ts';
import { assertLeastPrivilegedUpstreams, upstreamMap } from '../proxy/pg/upstreams.ts';
import { RevocationSet } from '../revocation/set.ts';
import { httpRevocationSource } from '../revocation/sources.ts';
import { logDatabase, openDatabase } from '../store/database.ts';
import { openSharedState } from '../store/shared-state.ts';
import { warmUpAuthorizer } from '../token/warmup.ts';
import { onShutdown } from '../util/shutdown.ts';
import { defineCommand } from './command.ts';

const USAGE = `usage: baton proxy [--config FILE]
  Needs proxy.upstreams (Postgres) and/or proxy.http.upstreams (HTTP, MCP, Kubernetes),
  proxy.brokerUrl (revocation resync), proxy.keySetUrl or keySetFile,
  DATABASE_URL (audit store) and, for more than one process, REDIS_URL (revocation fan-out).`;

export const proxy = defineCommand(
  'run the Postgres enforcement proxy',
  { name: 'proxy', usage: USAGE, options: { config: { type: 'string' } } },
  async ({ values }) => {
    const config = loadConfig({ file: values.config, role: 'proxy' });
    assertModeFitsEnvironment(config); // dev settings never run under NODE_ENV=production
    const p = config.proxy;
    const servesPg = Object.keys(p.upstreams).length > 0;
    const servesHttp = Object.keys(p.http.upstreams).length > 0;
    if (!p.brokerUrl || (!p.keySetUrl && !p.keySetFile) || (!servesPg && !servesHttp)) {
      throw new Error(`the proxy needs proxy.brokerUrl, proxy.keySetUrl (or keySetFile) and proxy.upstreams or proxy.http.upstreams\n${USAGE}`);
    }
    // The second lock (DESIGN rule 8): never front an upstream as a superuser unless told to.
    const upstreams = upstreamMap(p.upstreams);
    await assertLeastPrivilegedUpstreams(upstreams, {
      allowSuperuserUpstream: p.allowSuperuserUpstream,
      warn: (message) => process.stderr.write(`baton: warning: ${message}\n`),
    });
    // masking and approvals: the grant policy's rules (a bad file stops the start, naming the field)
    const policyFile = p.policyFile ?? config.broker.policyFile ?? (config.mode === 'dev' ? DEV_POLICY_FILE : undefined);
    if (!policyFile) throw new Error('the proxy needs proxy.policyFile (or broker.policyFile): the masking and approval rules it enforces');
    const policy = loadPolicyFile(policyFile);
    await warmUpAuthorizer();
    const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, log: logDatabase });
    const state = openSharedState({ redis: redisTopology(config) });
    const metrics = createMetrics();
    const revocations = new RevocationSet({ source: httpRevocationSource(p.brokerUrl), state, stalenessMs: p.revocationStalenessSeconds * 1000 });
    await revocations.start();
    // its chain heads are published for the broker's witness (kept outside the database)
    const rawAudit = createAuditWriter(db.pool, { description: 'baton proxy', onCheckpoint: checkpointPublisher(state, await checkpointChannel(db.pool)) });
    const audit = observedAuditWriter(rawAudit, metrics);
    const logger = pino({ level: config.logLevel });
    // key retirements end sessions: poll often (ETag), refetch on the broker's announcement, and fail
    // closed past the same staleness bound as revocations
    const remoteKeys = p.keySetFile
      ? undefined
      : new RemoteKeySet(p.keySetUrl!, {
          state,
          refreshMs: (p.keySetRefreshSeconds ?? 2) * 1000,
          stalenessMs: p.revocationStalenessSeconds * 1000,
          log: (e) => logger.warn(e, String(e.event)),
        });
    await remoteKeys?.start();
    // held statements go into the approvals table of the shared database; approvers decide at the
    // broker, whose URL the refusal names. This process notifies the webhook of requests it creates.
    const webhook = config.approvals.webhook
      ? createWebhookNotifier({ ...config.approvals.webhook, log: (level, message, fields) => logger[level](fields, message) })
      : undefined;
    const desk = createApprovalDesk({ pool: db.pool, policy: policy.approvals, publicUrl: config.broker.publicUrl ?? p.brokerUrl, ...(webhook ? { notify: webhook.notify } : {}) });
    const keys = remoteKeys ?? staticKeySet(p.keySetFile!);
    const identities = p.upstreamIdentity === 'per-token' ? perTokenRoles(config, db.pool, policy, audit, revocations) : undefined;
    identities?.start();
    // open sessions are published for the broker's GET /v1/sessions (shared database, heartbeat)
    const registry = createSessionRegistry(db.pool, { log: (m) => logger.warn({ event: 'sessions.registry' }, m) });
    const running = !servesPg ? undefined : await startPgProxy(p, {
      keys,
      revocations,
      audit,
      auditOrdering: config.audit.ordering,
      upstreams,
      logger,
      wrapGate: (gate) => publishedSessions(loggedSessions(gate, logger), registry, { state, revocations }),
      enforcement: enforcementFromPolicy(policy, { dataDir: config.dataDir, desk, ...(config.masking.hmacKey ? { hmacKey: config.masking.hmacKey } : {}) }),
      ...(identities ? { upstreamIdentity: perTokenIdentity(identities.roleForProxy) } : {}),
    });
    const httpRunning = !servesHttp ? undefined : await startHttpProxy(p.http, { keys, revocations, audit, auditOrdering: config.audit.ordering, logger });
    Object.assign(metrics.sources, {
      sessions: () => running?.proxy.sessionCount ?? 0,
      upstreamPool: () => running?.proxy.upstreamStats(),
      auditQueue: () => {
        const h = rawAudit.health();
        return { events: h.events.pending, outcomes: h.outcomes.pending };
      },
      revocationStaleness: () => revocations.ageSeconds(),
      keySetAge: () => remoteKeys?.ageSeconds(),
    });
    let closing = false;
    const checks: ReadinessCheck[] = [
      { name: 'listener', check: () => (closing ? 'shutting down' : undefined) },
      { name: 'keys', check: () => remoteKeys?.staleReason() },
      { name: 'revocations', check: () => revocations.staleReason() },
      {
        name: 'audit',
        check: async () => {
          const h = rawAudit.health();
          if (h.closed) return 'the audit writer is closed';
          if (!h.ok) return `the last audit batch failed${h.events.lastError ? `: ${h.events.lastError.detail}` : ''}`;
          try {
            await db.pool.query('SELECT 1');
            return undefined;
          } catch (e) {
            return `audit database unavailable: ${(e as Error).message}`;
          }
        },
      },
    ];
    const admin = p.admin ? await startAdminServer({ host: p.admin.host, port: p.admin.port, registry: metrics.registry, checks, logger }) : undefined;
    const listening = [running ? `postgres on ${running.host}:${running.port}` : '', httpRunning ? `http on ${httpRunning.url}` : ''].filter(Boolean).join(', ');
    process.stderr.write(
      `baton: proxy listening: ${listening} (audit: ${db.kind}, revocations: ${state.kind})${admin ? `; admin on ${admin.url} (/healthz /readyz /metrics)` : ''}\n`,
    );
    onShutdown(async () => {
      closing = true;
      await httpRunning?.close();
      await running?.close();
      await registry.close();
      await identities?.stop();
      await webhook?.close();
      await admin?.close();
      await revocations.stop();
      await remoteKeys?.stop();
      await audit.close();
      await state.close();
      await db.close();
    });
    return -1;
  },
);

/**
 * proxy.upstreamIdentity: per-token — the roles this proxy makes for token chains, recorded in the
 * audit database (native_pg_roles) and reaped by this process at expiry or revocation.
 */
function perTokenRoles(config: Config, pool: pg.Pool, policy: PolicyFile, audit: AuditWriter, revocations: RevocationSet) {
  const issuing = config.credentials.postgres.upstreams;
  const missing = Object.keys(config.proxy.upstreams).filter((name) => !issuing[name]);
  if (missing.length) {
    throw new Error(`proxy.upstreamIdentity: per-token needs credentials.postgres.upstreams.<name>.adminUrl (a login with CREATEROLE) for ${missing.join(', ')}`);
  }
  return createPostgresCredentials({
    pool,
    upstreams: new Map(Object.entries(issuing)),
    policy: () => policy,
    audit,
    revocations,
    reapIntervalMs: config.credentials.postgres.reapIntervalSeconds * 1000,
    maxLiveRolesPerToken: config.credentials.postgres.maxLiveRolesPerToken,
  });
}
