/**
 * The broker's PostgreSQL credential service (issue 14): issue an ephemeral role for a token, and
 * reap roles when they expire (every `reapIntervalMs`) or when any link of their chain is revoked
 * (at once, from the broker's revocation set — revocations made on other brokers arrive through the
 * same fan-out). Every issuance and reap is an audit entry with the lineage; an issuance's entry is
 * durable before the role exists.
 */
import type pg from 'pg';
import type { AuditEventInput } from '../audit/event.ts';
import { toAuditLineage } from '../audit/lineage.ts';
import type { AuditWriter } from '../audit/writer.ts';
import type { Caller } from '../broker/bearer.ts';
import { asBatonError, BatonError } from '../errors.ts';
import type { PolicyFile } from '../policy/schema.ts';
import type { RevocationSet } from '../revocation/set.ts';
import { type OmittedRight, planRole, type RoleGrant } from './postgres-grants.ts';
import {
  connectionUrl,
  createEphemeralRole,
  dropEphemeralRole,
  ephemeralPassword,
  ephemeralRoleName,
  type PgCredentialUpstream,
  readCatalog,
  roleComment,
  withUpstream,
} from './postgres.ts';

export interface PgCredentials {
  url: string;
  role: string;
  expires_at: string;
  grants: Array<Pick<RoleGrant, 'resource' | 'privilege' | 'columns'>>;
  /** Rights of the token the role does not hold, and why (masking, approvals, not a table privilege). */
  omitted: OmittedRight[];
}

export interface PostgresCredentialDeps {
  /** The broker's own database (native_pg_roles). */
  pool: pg.Pool;
  /** Issuing upstreams by name; read at each request (dev mode adds its demo upstream after start). */
  upstreams: ReadonlyMap<string, PgCredentialUpstream>;
  policy: () => PolicyFile;
  audit: Pick<AuditWriter, 'append' | 'recordOutcome'>;
  revocations: Pick<RevocationSet, 'onRevoked'>;
  reapIntervalMs?: number;
  /** Live roles per token lineage (`credentials.postgres.maxLiveRolesPerToken`); default 20. */
  maxLiveRolesPerToken?: number;
  now?: () => Date;
  log?: (event: Record<string, unknown>) => void;
}

/** Whose role it is: the parts of a verified chain the role is made from. */
export type RoleSubject = Pick<Caller, 'effective' | 'lineage' | 'tokenId' | 'revocationIds'>;

interface LiveRole {
  role_name: string;
  upstream: string;
  token_id: string | null;
  lineage: AuditEventInput['lineage'];
}

export function createPostgresCredentials(deps: PostgresCredentialDeps) {
  const now = deps.now ?? (() => new Date());
  const log = deps.log ?? (() => {});
  const upstreamOf = (name: string): PgCredentialUpstream => {
    const up = deps.upstreams.get(name);
    if (up) return up;
    const names = [...deps.upstreams.keys()];
    if (names.length === 0) throw new BatonError('BATON_ERR_CREDENTIALS_UNAVAILABLE', 'PostgreSQL credentials are not configured on this broker: add credentials.postgres.upstreams.<name>.adminUrl');
    throw new BatonError('BATON_ERR_NOT_FOUND', `no PostgreSQL upstream named "${name.slice(0, 64)}" (configured: ${names.join(', ')})`);
  };

  /** A client's own role (`direct`): the URL to connect with. */
  async function issue(caller: Caller, name: string): Promise<PgCredentials> {
    if (caller.effective.approximate) throw new BatonError('BATON_ERR_CREDENTIALS_UNREPRESENTABLE', 'the token carries checks Baton cannot translate into database privileges; mint from a token without them');
    const { role, password, expiresAt, plan } = await createRole(caller, name, 'direct');
    return {
      url: connectionUrl(upstreamOf(name), role, password),
      role,
      expires_at: expiresAt.toISOString(),
      grants: plan.grants.map((g) => ({ resource: g.resource, privilege: g.privilege, ...(g.columns ? { columns: g.columns } : {}) })),
      omitted: plan.omitted,
    };
  }

  /**
   * The role the proxy logs in as for a token's sessions (`proxied`). Its table privileges come from
   * the token's rights as read from the lineage (for a token with checks outside the vocabulary that
   * view may be wider than the truth: still a lock, and the proxy's authorizer decides exactly).
   */
  async function roleForProxy(subject: RoleSubject, name: string): Promise<{ user: string; password: string; expiresAt: Date }> {
    const { role, password, expiresAt } = await createRole(subject, name, 'proxied');
    return { user: role, password, expiresAt };
  }

  async function createRole(caller: RoleSubject, name: string, mode: 'direct' | 'proxied') {
    const upstream = upstreamOf(name);
    if (!caller.effective.expiresAt) throw new BatonError('BATON_ERR_CREDENTIALS_UNREPRESENTABLE', 'the token has no expiry; a database role must end with it');
    const expiresAt = new Date(caller.effective.expiresAt);
    if (!(expiresAt > now())) throw new BatonError('BATON_ERR_TOKEN_EXPIRED', 'the token has expired');
    // children are made offline without limit, and each could ask for a role (or connect through a
    // per-token proxy): a cap per lineage keeps a runaway helper from filling the upstream's catalog
    const max = deps.maxLiveRolesPerToken ?? 20;
    const live = await deps.pool.query<{ n: number }>('SELECT count(*)::int AS n FROM native_pg_roles WHERE dropped_at IS NULL AND token_id = $1 AND expires_at > $2', [caller.tokenId ?? null, now()]);
    if ((live.rows[0]?.n ?? 0) >= max) {
      throw new BatonError('BATON_ERR_RATE_LIMITED', `this token's lineage already holds ${max} live database roles (credentials.postgres.maxLiveRolesPerToken); they end with it or when revoked`);
    }
    const policy = deps.policy();

    return withUpstream(upstream, name, async (client) => {
      const plan = planRole({ mode, upstream: name, effective: caller.effective, lineage: caller.lineage, catalog: await readCatalog(client), masking: policy.masking, approvals: policy.approvals.rules });
      if (plan.grants.length === 0) {
        const why = plan.omitted.slice(0, 3).map((o) => `${o.operation} on ${o.resource}: ${o.why}`).join('; ');
        throw new BatonError('BATON_ERR_FORBIDDEN', `the token grants nothing on pg:${name}/ that a database role may hold${why ? ` (${why})` : ''}`);
      }
      const role = ephemeralRoleName();
      const password = ephemeralPassword();
      const lineage = toAuditLineage(caller.lineage);
      // recorded first: whatever happens next, the reaper knows the role may exist
      await deps.pool.query('INSERT INTO native_pg_roles (role_name, upstream, token_id, revocation_ids, lineage, expires_at) VALUES ($1, $2, $3, $4, $5, $6)', [
        role,
        name,
        caller.tokenId ?? null,
        caller.revocationIds,
        JSON.stringify(lineage),
        expiresAt,
      ]);
      const started = performance.now();
      const receipt = await deps.audit.append(issueEvent(caller, name, role, expiresAt, plan.grants, mode)).catch((err: unknown) => {
        throw new BatonError('BATON_ERR_AUDIT_UNAVAILABLE', 'audit store unavailable; no role was created', { detail: asBatonError(err).detail });
      });
      const outcome = (status: number, tag: string) => void deps.audit.recordOutcome(receipt, { status, tag, durationMs: performance.now() - started }).catch(() => {});
      try {
        // behind the proxy, sessions per token are the proxy's limit (proxy.limits.maxSessionsPerToken)
        const connectionLimit = mode === 'proxied' ? -1 : upstream.connectionLimit;
        await createEphemeralRole(client, { name: role, password, expiresAt, connectionLimit, comment: roleComment(caller.tokenId, caller.lineage, expiresAt) }, plan);
      } catch (err) {
        outcome(503, 'role not created');
        await deps.pool.query(`UPDATE native_pg_roles SET dropped_at = now(), dropped_reason = 'creation failed' WHERE role_name = $1`, [role]).catch(() => {});
        throw new BatonError('BATON_ERR_CREDENTIALS_UNAVAILABLE', `could not create the role on upstream ${name}`, { detail: (err as Error).message });
      }
      outcome(200, 'created');
      return { role, password, expiresAt, plan };
    });
  }

  /** Drops one live role (claimed first, so brokers racing on it drop it once). */
  async function reap(row: LiveRole, reason: 'expired' | 'revoked'): Promise<void> {
    const claimed = await deps.pool.query('UPDATE native_pg_roles SET dropped_at = now(), dropped_reason = $2 WHERE role_name = $1 AND dropped_at IS NULL', [row.role_name, reason]);
    if (claimed.rowCount === 0) return;
    try {
      const upstream = upstreamOf(row.upstream);
      const { sessionsEnded } = await withUpstream(upstream, row.upstream, (client) => dropEphemeralRole(client, row.role_name));
      await deps.audit.append({
        source: 'broker',
        action: 'credentials.postgres.reap',
        decision: 'allow',
        reason: `role ${row.role_name} dropped on ${row.upstream}: ${reason === 'revoked' ? 'a link of its chain was revoked' : 'its token expired'}; ${sessionsEnded} session(s) ended`,
        lineage: row.lineage,
        ...(row.token_id ? { tokenId: row.token_id } : {}),
        resource: `pg:${row.upstream}/`,
        operation: 'reap',
      });
    } catch (err) {
      // left for the next tick: the role may still exist
      await deps.pool.query('UPDATE native_pg_roles SET dropped_at = NULL, dropped_reason = NULL WHERE role_name = $1', [row.role_name]).catch(() => {});
      log({ event: 'credentials.reap_failed', role: row.role_name, detail: asBatonError(err).detail ?? (err as Error).message });
    }
  }

  let reaping: Promise<void> = Promise.resolve();
  /** One reap pass at a time; passes queue rather than overlap. */
  const serially = (fn: () => Promise<void>) => (reaping = reaping.then(fn, fn).catch((err: unknown) => log({ event: 'credentials.reap_failed', detail: (err as Error).message })));

  const reapExpired = () =>
    serially(async () => {
      if (deps.upstreams.size === 0) return; // nothing this process could reap: no query every tick
      const { rows } = await deps.pool.query<LiveRole>('SELECT role_name, upstream, token_id, lineage FROM native_pg_roles WHERE dropped_at IS NULL AND expires_at <= $1 AND upstream = ANY($2) LIMIT 100', [now(), [...deps.upstreams.keys()]]);
      for (const row of rows) await reap(row, 'expired');
    });
  const reapRevoked = (ids: readonly string[]) =>
    serially(async () => {
      if (deps.upstreams.size === 0) return;
      const { rows } = await deps.pool.query<LiveRole>('SELECT role_name, upstream, token_id, lineage FROM native_pg_roles WHERE dropped_at IS NULL AND revocation_ids && $1 AND upstream = ANY($2)', [ids, [...deps.upstreams.keys()]]);
      for (const row of rows) await reap(row, 'revoked');
    });

  let timer: NodeJS.Timeout | undefined;
  let unsubscribe: (() => void) | undefined;
  return {
    issue,
    roleForProxy,
    /** Starts the reaper: expiry every reapIntervalMs, revocations as they arrive. */
    start() {
      timer = setInterval(() => void reapExpired(), deps.reapIntervalMs ?? 1_000);
      timer.unref();
      unsubscribe = deps.revocations.onRevoked((ids) => void reapRevoked(ids));
    },
    /** Runs one expiry pass now (tests, shutdown). */
    reapExpired,
    async stop() {
      clearInterval(timer);
      unsubscribe?.();
      await reaping;
    },
  };
}

export type PostgresCredentials = ReturnType<typeof createPostgresCredentials>;

function issueEvent(caller: RoleSubject, upstream: string, role: string, expiresAt: Date, grants: readonly RoleGrant[], mode: 'direct' | 'proxied'): AuditEventInput {
  const ops: Record<RoleGrant['privilege'], string> = { SELECT: 'read', INSERT: 'insert', UPDATE: 'update', DELETE: 'delete', TRUNCATE: 'truncate' };
  return {
    source: 'broker',
    action: 'credentials.postgres.issue',
    decision: 'allow',
    reason: `role ${role} on ${upstream} until ${expiresAt.toISOString()}${mode === 'proxied' ? ', the proxy’s upstream identity for this chain' : ''}`,
    lineage: toAuditLineage(caller.lineage),
    ...(caller.tokenId ? { tokenId: caller.tokenId } : {}),
    resource: `pg:${upstream}/`,
    operation: 'login',
    accesses: grants.map((g) => ({ resource: g.resource, operation: ops[g.privilege] })).slice(0, 256),
  };
}

/** The deny entry of a refused issuance (the caller is known; the refusal is part of the trail). */
export function postgresDenied(caller: Caller, upstream: string, error: BatonError): AuditEventInput {
  return {
    source: 'broker',
    action: 'credentials.postgres.issue',
    decision: 'deny',
    reason: `${error.code}: ${error.message}`.slice(0, 1024),
    lineage: toAuditLineage(caller.lineage),
    ...(caller.tokenId ? { tokenId: caller.tokenId } : {}),
    resource: `pg:${upstream.slice(0, 64)}/`,
    operation: 'login',
  };
}
