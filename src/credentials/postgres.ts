/**
 * Ephemeral PostgreSQL login roles for token holders (issue 14): one role per request, with a random
 * password, `VALID UNTIL` the token's expiry, exactly the privileges of postgres-grants.ts and no
 * other, and a COMMENT naming the chain. The broker's table `native_pg_roles` records each one; the
 * reaper drops a role (ending its sessions) when it expires or any link of its chain is revoked.
 *
 * The issuing login (`credentials.postgres.upstreams.<name>.adminUrl`) needs CREATEROLE and the
 * grant option on the tables it hands out; on PostgreSQL ≥ 16 CREATEROLE gives it ADMIN on exactly
 * the roles it creates, which is what dropping them needs.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { BatonError } from '../errors.ts';
import type { LineageLink } from '../token/lineage.ts';
import type { CatalogRelation, RolePlan } from './postgres-grants.ts';

export interface PgCredentialUpstream {
  /** The issuing login (CREATEROLE + grant option), on the upstream database. */
  adminUrl: string;
  /** Where clients connect (host, port, database); default: adminUrl's. */
  connectUrl?: string;
  /** CONNECTION LIMIT of each role. */
  connectionLimit: number;
}

/** The tables, views and their columns and owned sequences (system schemas left out). */
export async function readCatalog(client: pg.ClientBase): Promise<CatalogRelation[]> {
  const { rows } = await client.query<CatalogRelation>(`
    SELECT n.nspname AS schema, c.relname AS name, c.relkind AS kind,
      coalesce((SELECT array_agg(a.attname::text ORDER BY a.attnum) FROM pg_attribute a
                WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped), '{}') AS columns,
      coalesce((SELECT array_agg(quote_ident(sn.nspname) || '.' || quote_ident(s.relname)) FROM pg_depend d
                JOIN pg_class s ON s.oid = d.objid AND s.relkind = 'S' JOIN pg_namespace sn ON sn.oid = s.relnamespace
                WHERE d.classid = 'pg_class'::regclass AND d.refobjid = c.oid AND d.deptype IN ('a', 'i')), '{}') AS sequences
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'
    ORDER BY 1, 2`);
  return rows;
}

/** A fresh role name: `baton_` + 16 random hex characters (never derived from caller text). */
export function ephemeralRoleName(): string {
  return `baton_${randomBytes(8).toString('hex')}`;
}

/** Creates the role with exactly the plan's grants, in one transaction (all or nothing). */
export async function createEphemeralRole(
  client: pg.ClientBase,
  role: { name: string; password: string; expiresAt: Date; connectionLimit: number; comment: string },
  plan: RolePlan,
): Promise<void> {
  const r = pg.escapeIdentifier(role.name);
  const database = (await client.query<{ db: string }>('SELECT current_database() AS db')).rows[0]!.db;
  await client.query('BEGIN');
  try {
    await client.query(
      `CREATE ROLE ${r} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS CONNECTION LIMIT ${Math.trunc(role.connectionLimit)} ` +
        `PASSWORD ${pg.escapeLiteral(role.password)} VALID UNTIL ${pg.escapeLiteral(role.expiresAt.toISOString())}`,
    );
    await client.query(`COMMENT ON ROLE ${r} IS ${pg.escapeLiteral(role.comment)}`);
    await client.query(`GRANT CONNECT ON DATABASE ${pg.escapeIdentifier(database)} TO ${r}`);
    for (const schema of new Set(plan.grants.map((g) => g.schema))) await client.query(`GRANT USAGE ON SCHEMA ${pg.escapeIdentifier(schema)} TO ${r}`);
    for (const g of plan.grants) {
      const columns = g.columns ? ` (${g.columns.map((c) => pg.escapeIdentifier(c)).join(', ')})` : '';
      await client.query(`GRANT ${g.privilege}${columns} ON TABLE ${pg.escapeIdentifier(g.schema)}.${pg.escapeIdentifier(g.name)} TO ${r}`);
      // sequence names come from the catalog already quoted (quote_ident)
      for (const seq of g.sequences ?? []) await client.query(`GRANT USAGE ON SEQUENCE ${seq} TO ${r}`);
    }
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/**
 * Ends the role: no new logins, its sessions terminated, what it owns dropped, the role dropped, and
 * sessions that raced in between terminated again. Idempotent (a role already gone is fine).
 */
export async function dropEphemeralRole(client: pg.ClientBase, name: string): Promise<{ sessionsEnded: number }> {
  const exists = await client.query('SELECT 1 FROM pg_roles WHERE rolname = $1', [name]);
  const terminate = async () => (await client.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [name])).rowCount ?? 0;
  if (exists.rowCount === 0) return { sessionsEnded: await terminate() };
  const r = pg.escapeIdentifier(name);
  await client.query(`ALTER ROLE ${r} NOLOGIN`);
  let ended = await terminate();
  await client.query(`DROP OWNED BY ${r}`);
  await client.query(`DROP ROLE IF EXISTS ${r}`);
  ended += await terminate();
  return { sessionsEnded: ended };
}

/** The role's comment: who it is for, in one line (shows in `\du+`). */
export function roleComment(tokenId: string | undefined, lineage: readonly LineageLink[], expiresAt: Date): string {
  const root = lineage[0];
  const chain = [root?.subject, root?.agent, ...lineage.slice(1).map((l) => l.delegatedTo)].filter(Boolean).join(' -> ');
  return `baton ephemeral role for token ${tokenId ?? '?'}: ${chain}; until ${expiresAt.toISOString()}`.slice(0, 1000);
}

/** `postgres://<role>:<password>@<host>:<port>/<db>` from the upstream's connect (or admin) URL. */
export function connectionUrl(upstream: PgCredentialUpstream, role: string, password: string): string {
  const url = new URL(upstream.connectUrl ?? upstream.adminUrl);
  url.username = role;
  url.password = password;
  url.search = '';
  return url.toString();
}

/** A random password: 32 bytes, base64url (no quoting issues in URLs or SQL). */
export function ephemeralPassword(): string {
  return randomBytes(32).toString('base64url');
}

/** Connects the issuing login, runs `fn`, always disconnects. */
export async function withUpstream<T>(upstream: PgCredentialUpstream, name: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: upstream.adminUrl, connectionTimeoutMillis: 5_000 });
  client.on('error', () => {});
  try {
    await client.connect();
  } catch (err) {
    throw new BatonError('BATON_ERR_CREDENTIALS_UNAVAILABLE', `upstream ${name} is unreachable for issuing roles`, { detail: (err as Error).message });
  }
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}
