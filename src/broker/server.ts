/**
 * Starting the broker from a validated Config: stores, keys, policy, OIDC issuers, HTTP listener,
 * graceful shutdown. `baton serve` and `baton dev` both come through here.
 */
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance } from 'fastify';
import type { Config } from '../config/schema.ts';
import { followKeyring } from '../keys/follow.ts';
import { Keyring } from '../keys/keyring.ts';
import { createDevIssuer } from '../oidc/dev-issuer.ts';
import { createOidcVerifier } from '../oidc/verify.ts';
import type { OidcIssuerInput } from '../oidc/config.ts';
import { loadPolicyFile } from '../policy/load.ts';
import { logDatabase, openDatabase, type Database } from '../store/database.ts';
import pg from 'pg';
import { redisTopology } from '../config/load.ts';
import { openSharedState, type SharedState } from '../store/shared-state.ts';
import { warmUpAuthorizer } from '../token/warmup.ts';
import { createAuditWriter, type AuditWriter } from '../audit/writer.ts';
import { checkpointChannel, checkpointPublisher, startAnchorWitness } from '../audit/witness.ts';
import { BatonError } from '../errors.ts';
import { revocationRoutes } from '../revocation/routes.ts';
import { RevocationSet } from '../revocation/set.ts';
import { databaseRevocationSource } from '../revocation/sources.ts';
import { buildBrokerApp, LOG_REDACT } from './app.ts';
import { exchangeDenied, exchangeGranted } from './audit-events.ts';
import { approvalRoutes } from './routes/approvals.ts';
import { auditRoutes } from './routes/audit.ts';
import { sessionRoutes } from './routes/sessions.ts';
import { loadConsoleAssets } from './console/assets.ts';
import { consoleRoutes, type ConsoleSignIn } from './console/routes.ts';
import { createAwsIssuer } from '../credentials/aws.ts';
import { credentialRoutes } from '../credentials/routes.ts';
import type { PgCredentialUpstream } from '../credentials/postgres.ts';
import { createPostgresCredentials, type PostgresCredentials } from '../credentials/postgres-service.ts';
import { DEV_AWS_ROLES } from '../dev/demo-aws.ts';
import { createApprovalDesk, type ApprovalStore } from '../approvals/store.ts';
import { createWebhookNotifier } from '../approvals/webhook.ts';
import { issuedTokenRecorder } from './issued-tokens.ts';
import { createMetrics, type Metrics } from './metrics.ts';
import { freePort } from '../util/free-port.ts';

export const DEV_POLICY_FILE = fileURLToPath(new URL('../../config/dev-policy.yaml', import.meta.url));
/** Audience the dev issuer puts in its tokens and the broker expects in dev mode. */
export const DEV_AUDIENCE = 'baton';
/** The console's client id at the dev issuer (the agent of a console session's token). */
export const DEV_CONSOLE_CLIENT_ID = 'baton-console';

export interface BrokerHandle {
  app: FastifyInstance;
  url: string;
  db: Database;
  state: SharedState;
  keyring: Keyring;
  audit: AuditWriter;
  /** The broker's own revocation set, fed from its database and the shared channel. */
  revocations: RevocationSet;
  /** Its Prometheus registry and metrics (`baton dev` feeds the in-process proxy's into them too). */
  metrics: Metrics;
  /**
   * The approvals store on the broker's database, with the grant policy's `approvals` timings and
   * the webhook of `config.approvals.webhook` (if any): an in-process proxy (`baton dev`) uses it as
   * its ApprovalDesk.
   */
  approvals: ApprovalStore;
  /** Ephemeral PostgreSQL roles (POST /v1/credentials/postgres; an in-process proxy's per-token identity). */
  pgCredentials: PostgresCredentials;
  close(): Promise<void>;
}

export interface StartBrokerOptions {
  /** Mount the dev OIDC issuer at /dev/oidc and trust it (dev mode only). */
  devIssuer?: boolean;
  /** Use this shared state (and leave closing it to the caller), e.g. one with its own key prefix. */
  state?: SharedState;
  /** Where the log goes (default stdout, JSON); `baton dev` passes its readable stream. */
  logStream?: NodeJS.WritableStream;
  /**
   * Upstreams where POST /v1/credentials/postgres creates roles, besides `credentials.postgres`'s;
   * read at each request (`baton dev` adds its demo upstream once it exists).
   */
  pgCredentialUpstreams?: Map<string, PgCredentialUpstream>;
}

export async function startBroker(config: Config, opts: StartBrokerOptions = {}): Promise<BrokerHandle> {
  if (opts.devIssuer && config.mode !== 'dev') throw new Error('the dev OIDC issuer runs only in dev mode');
  const port = config.broker.port || (await freePort(config.broker.host));
  const url = config.broker.publicUrl ?? `http://${config.broker.host}:${port}`;
  await warmUpAuthorizer();

  const db = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, log: logDatabase });
  const state = opts.state ?? openSharedState({ redis: redisTopology(config) });
  const keyring = Keyring.open(config.broker.keysFile ?? join(config.dataDir, 'keys.json'));
  const policyFile = config.broker.policyFile ?? (config.mode === 'dev' ? DEV_POLICY_FILE : undefined);
  if (!policyFile) throw new Error('no grant policy: set broker.policyFile or BATON_POLICY_FILE');
  const policy = loadPolicyFile(policyFile);

  const issuers: OidcIssuerInput[] = [...config.oidc.issuers];
  const devIssuer = opts.devIssuer
    ? await createDevIssuer({ issuer: `${url}/dev/oidc`, dataDir: config.dataDir, audience: DEV_AUDIENCE })
    : undefined;
  if (devIssuer) issuers.push({ issuer: devIssuer.issuer, audiences: [DEV_AUDIENCE], algorithms: [devIssuer.alg] });
  const oidc = createOidcVerifier(issuers);
  // the console signs in through a trusted issuer (authorization code + PKCE); in dev mode, the dev issuer
  const consoleSignIn: ConsoleSignIn | undefined =
    config.console.oidc ?? (devIssuer ? { issuer: devIssuer.issuer, clientId: DEV_CONSOLE_CLIENT_ID, scope: 'openid', subjectToken: 'access_token' } : undefined);
  if (config.console.oidc && !issuers.some((i) => i.issuer.replace(/\/$/, '') === config.console.oidc!.issuer.replace(/\/$/, ''))) {
    throw new Error(`console.oidc.issuer ${config.console.oidc.issuer} is not one of oidc.issuers: the broker would not accept its tokens`);
  }
  const metrics = createMetrics();
  // Chain heads are signed into the database AND published; the broker witnesses every writer's
  // (its own and the proxies') and keeps the newest outside the database, so a truncation that also
  // deletes the checkpoints in the database is still caught by verify.
  const channel = await checkpointChannel(db.pool);
  const witness = await startAnchorWitness(state, {
    channel,
    file: join(config.dataDir, 'audit-anchors.json'),
    // the app (and its logger) exists by the time a flush can fail (≥ 1 s later)
    onError: (err) => logAnchorError(err),
  });
  let logAnchorError = (err: Error): void => void process.stderr.write(`baton: audit anchors could not be written (${err.message}); kept in memory, retrying\n`);
  const audit = createAuditWriter(db.pool, { description: 'broker', onCheckpoint: checkpointPublisher(state, channel) });
  metrics.sources.auditQueue = () => {
    const h = audit.health();
    return { events: h.events.pending, outcomes: h.outcomes.pending };
  };
  const revocations = new RevocationSet({ source: databaseRevocationSource(db.pool), state, stalenessMs: config.proxy.revocationStalenessSeconds * 1000 });
  // not awaited to be current: bearer endpoints and the proxy fail closed (503/57P03) until it is
  await revocations.start();
  const bearer = { keys: keyring, revocations };
  const webhook = config.approvals.webhook
    ? createWebhookNotifier({ ...config.approvals.webhook, log: (level, message, fields) => app.log[level](fields, message) })
    : undefined;
  const approvals = createApprovalDesk({ pool: db.pool, policy: policy.approvals, publicUrl: url, ...(webhook ? { notify: webhook.notify } : {}) });
  const recordIssued = issuedTokenRecorder(db.pool);
  // read paths that may lag (audit queries, introspection's iat): a replica when configured
  const readPool = config.databaseReadUrl ? new pg.Pool({ connectionString: config.databaseReadUrl, max: 10 }) : undefined;
  readPool?.on('error', (err) => logDatabase(`read replica pool: ${err.message}`));
  const pgUpstreams = opts.pgCredentialUpstreams ?? new Map<string, PgCredentialUpstream>();
  for (const [name, up] of Object.entries(config.credentials.postgres.upstreams)) pgUpstreams.set(name, up);
  const pgCredentials = createPostgresCredentials({
    pool: db.pool,
    upstreams: pgUpstreams,
    policy: () => policy,
    audit,
    revocations,
    reapIntervalMs: config.credentials.postgres.reapIntervalSeconds * 1000,
    maxLiveRolesPerToken: config.credentials.postgres.maxLiveRolesPerToken,
  });

  const app = await buildBrokerApp(
    {
      oidc,
      policy: () => policy,
      keyring,
      state,
      rateLimit: config.broker.rateLimit,
      // the issued-token record and the audit entry are both durable before the token is returned
      persist: async (issued, result) => {
        const record = recordIssued(issued).catch((err: Error) => {
          throw new BatonError('BATON_ERR_STORE_UNAVAILABLE', 'the token store (database) is unavailable; retry later', { detail: err.message });
        });
        await Promise.all([record, audit.append(exchangeGranted(result))]);
      },
      metrics,
      onRefused: async (error) => void (await audit.append(exchangeDenied(error)).catch(() => {})),
      ready: async () => {
        await db.pool.query('SELECT 1').catch((e: Error) => {
          throw new Error(`database unavailable: ${e.message}`);
        });
      },
      plugins: [
        auditRoutes({ pool: db.pool, ...(readPool ? { readPool } : {}), bearer, anchors: () => witness.anchors() }),
        approvalRoutes({ desk: approvals, bearer, audit: (e) => audit.append(e) }),
        sessionRoutes({ pool: db.pool, bearer, state }),
        ...(config.console.enabled
          ? [consoleRoutes({ assets: loadConsoleAssets(), bearer, url, allowPaste: config.mode === 'dev', ...(consoleSignIn ? { signIn: consoleSignIn } : {}) })]
          : []),
        revocationRoutes({ pool: db.pool, ...(readPool ? { readPool } : {}), keys: keyring, state, revocations, audit: (e) => audit.append(e), limits: config.broker.revocationLimits }),
        credentialRoutes({ bearer, audit, aws: createAwsIssuer(awsRoles(config)), postgres: pgCredentials, limiter: { state, perTokenPerMinute: config.credentials.perTokenPerMinute } }),
        ...(devIssuer ? [async (a: FastifyInstance) => void (await a.register(devIssuer.plugin, { prefix: '/dev/oidc' }))] : []),
      ],
    },
    { level: config.logLevel, redact: LOG_REDACT, ...(opts.logStream ? { stream: opts.logStream } : {}) },
  );
  logAnchorError = (err) => {
    app.log.error({ event: 'audit.anchors_unwritable', detail: err.message }, 'audit anchors could not be written; kept in memory, retrying');
  };
  await app.listen({ host: config.broker.host, port });
  pgCredentials.start();

  // `baton keys rotate|retire` edits the key file from another process: follow it, audit rotations,
  // and announce every change of the published set so proxies refetch it at once
  const stopFollowingKeys = followKeyring(keyring, {
    state,
    onRotated: (rotated) => {
      app.log.info(rotated, 'root key rotated');
      audit
        .append({ source: 'broker', action: 'key.rotate', decision: 'allow', reason: `active root key ${rotated.from} -> ${rotated.to}`, lineage: [] })
        .catch((err: Error) => app.log.error({ err: err.message }, 'key rotation not audited'));
    },
    log: (e) => app.log.error(e, String(e.event)),
  });

  return {
    app,
    url,
    db,
    state,
    keyring,
    audit,
    revocations,
    metrics,
    approvals,
    pgCredentials,
    async close() {
      stopFollowingKeys();
      webhook?.close();
      await app.close();
      await pgCredentials.stop();
      await revocations.stop();
      await audit.close();
      await readPool?.end().catch(() => {});
      await witness.close();
      if (!opts.state) await state.close();
      await db.close();
    },
  };
}

/** The configured AWS roles; in dev mode with none configured, the demo role `reports`. */
function awsRoles(config: Config): Config['aws']['roles'] {
  return config.mode === 'dev' && Object.keys(config.aws.roles).length === 0 ? DEV_AWS_ROLES : config.aws.roles;
}
