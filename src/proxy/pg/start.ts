/** Starting the Postgres enforcement proxy: gate (token, classifier, revocations, audit) + listener. */
import { readFileSync } from 'node:fs';
import type { AuditWriter } from '../../audit/writer.ts';
import type { Config } from '../../config/schema.ts';
import type { RevocationView } from '../../revocation/view.ts';
import { createBatonGate, type BatonGateDeps } from './baton-gate.ts';
import { createClassifierCache, initClassifier } from './classify/index.ts';
import { createClassifierPool } from './classify/pool.ts';
import type { SessionGate, UpstreamTarget } from './gate.ts';
import type { UpstreamIdentity } from './upstream-identity.ts';
import type { KeySetSource } from './keyset.ts';
import { upstreamObjectsSource, type UpstreamObjectsSource } from './upstream-objects.ts';
import type { ProxyLogger } from './log.ts';
import { createPgProxy, PG_PROXY_DEFAULTS, type PgProxy } from './server.ts';

export interface PgProxyDeps {
  keys: KeySetSource;
  revocations: RevocationView;
  audit: AuditWriter;
  upstreams: ReadonlyMap<string, UpstreamTarget>;
  /** PEM certificate + key; default from config.tls files. */
  tls?: { cert: string; key: string };
  /** `config.audit.ordering`; default `default` (reads overlap their entry, answers held). */
  auditOrdering?: 'default' | 'strict';
  /** Structured logger (pino/fastify shape); never given tokens or SQL text. Default: silent. */
  logger?: ProxyLogger;
  /** proxy.upstreamIdentity: per-token — the login each token chain's sessions use upstream (upstream-identity.ts). */
  upstreamIdentity?: UpstreamIdentity;
  /** Wraps the gate before the listener uses it (e.g. src/proxy/admin/session-log.ts). */
  wrapGate?: (gate: SessionGate) => SessionGate;
  /** Inline masking and just-in-time approvals (src/enforce/; built from the policy by `enforcementFromPolicy`). */
  enforcement?: Pick<BatonGateDeps, 'masking' | 'approvals'>;
}

export interface RunningPgProxy {
  proxy: PgProxy;
  host: string;
  port: number;
  close(): Promise<void>;
}

type ProxyConfig = Config['proxy'];
/** `config.proxy`; the keys with defaults may be omitted (programmatic use, tests). */
export type PgProxyConfig = Omit<ProxyConfig, 'limits' | 'statementTimeoutMs' | 'allowSuperuserUpstream' | 'upstreamIdentity' | 'http' | 'pooling' | 'pool'> &
  Partial<Pick<ProxyConfig, 'statementTimeoutMs' | 'allowSuperuserUpstream' | 'pooling'>> & { limits?: Partial<ProxyConfig['limits']>; pool?: Partial<ProxyConfig['pool']> };

/** Defaults of the keys `PgProxyConfig` may omit (the config schema has the same). */
export const PG_PROXY_CONFIG_DEFAULTS = Object.freeze({
  statementTimeoutMs: 30_000,
  pool: Object.freeze({ size: 20, acquireTimeoutMs: 30_000, idleTimeoutMs: 60_000, maxStatementsPerConnection: 256, idleInTransactionTimeoutMs: 60_000 }),
  offThreadClassifyChars: 16 * 1024,
  classifyWorkers: 2,
  classifyTimeoutMs: 5_000,
});

/**
 * The pinned `statement_timeout` added to every upstream's start-up parameters (0 = not pinned: the
 * server's own default applies).
 */
export function withStatementTimeout(upstreams: ReadonlyMap<string, UpstreamTarget>, ms: number): Map<string, UpstreamTarget> {
  return new Map(
    [...upstreams].map(([name, u]) => [name, ms > 0 ? { ...u, parameters: { ...u.parameters, statement_timeout: String(ms) } } : u] as const),
  );
}

export async function startPgProxy(config: PgProxyConfig, deps: PgProxyDeps): Promise<RunningPgProxy> {
  await initClassifier();
  const limits = config.limits ?? {};
  const classifier = createClassifierCache({ maxEntries: 10_000 });
  const offThread = limits.offThreadClassifyChars ?? PG_PROXY_CONFIG_DEFAULTS.offThreadClassifyChars;
  const log = deps.logger ? (event: Record<string, unknown>) => deps.logger!.warn(event, String(event.event ?? 'gate')) : undefined;
  const pool = createClassifierPool({
    workers: limits.classifyWorkers ?? PG_PROXY_CONFIG_DEFAULTS.classifyWorkers,
    timeoutMs: limits.classifyTimeoutMs ?? PG_PROXY_CONFIG_DEFAULTS.classifyTimeoutMs,
    ...(log ? { log } : {}),
  });
  const statementTimeoutMs = config.statementTimeoutMs ?? PG_PROXY_CONFIG_DEFAULTS.statementTimeoutMs;
  const upstreams = withStatementTimeout(deps.upstreams, statementTimeoutMs);
  const objects = new Map<string, UpstreamObjectsSource>([...upstreams].map(([name, target]) => [name, upstreamObjectsSource(target)]));
  const gate = createBatonGate({
    // per statement (no id) from memory when the source can; at connect it may refetch
    keys: (id) => (id === undefined && deps.keys.current ? deps.keys.current() : deps.keys.resolver(id)),
    revocations: deps.revocations,
    audit: deps.audit,
    // Large statements are parsed in a worker thread so that they never stall other sessions.
    classify: (sql, ctx) => (sql.length >= offThread ? pool.classify(sql, ctx) : classifier.classify(sql, ctx)),
    upstreams,
    objects: (database) => {
      const source = objects.get(database);
      if (!source) throw new TypeError(`no upstream named ${database}`);
      return source.current();
    },
    objectsMayHaveChanged: (database) => objects.get(database)?.markStale(),
    ...(statementTimeoutMs > 0 ? { maxStatementTimeoutMs: statementTimeoutMs } : {}),
    ordering: deps.auditOrdering ?? 'default',
    ...deps.enforcement,
    ...(deps.upstreamIdentity ? { upstreamIdentity: deps.upstreamIdentity } : {}),
    ...(config.pooling === 'transaction' ? { pooling: 'transaction' as const } : {}),
    ...(log ? { log } : {}),
  });
  const tls = deps.tls ?? (config.tls ? { cert: readFileSync(config.tls.certFile, 'utf8'), key: readFileSync(config.tls.keyFile, 'utf8') } : undefined);
  const proxy = createPgProxy({
    gate: deps.wrapGate ? deps.wrapGate(gate) : gate,
    host: config.host,
    port: config.port,
    allowInsecure: config.allowInsecure,
    limits: {
      ...PG_PROXY_DEFAULTS.limits,
      ...pick(limits, ['maxSessionsPerToken', 'maxConnectionsPerAddress', 'maxStartingConnections', 'maxConnections', 'startupTimeoutMs', 'idleSessionTimeoutMs', 'maxStatementBytes']),
    },
    ...(tls ? { tls } : {}),
    ...(config.pooling === 'transaction' ? { pooling: { ...PG_PROXY_CONFIG_DEFAULTS.pool, ...config.pool } } : {}),
    ...(deps.logger ? { logger: deps.logger } : {}),
  });
  const address = await proxy.listen();
  return {
    proxy,
    host: config.host,
    port: address.port,
    async close() {
      await proxy.close();
      await pool.close();
      for (const source of objects.values()) source.close();
    },
  };
}

function pick<T extends object, K extends keyof T>(o: T, keys: readonly K[]): Partial<Pick<T, K>> {
  const out: Partial<Pick<T, K>> = {};
  for (const k of keys) if (o[k] !== undefined) out[k] = o[k];
  return out;
}
