/** Upstream databases from configuration: client-visible name → where (and as whom) the proxy connects. */
import pg from 'pg';
import type { UpstreamTarget } from './gate.ts';

/**
 * What every upstream session is pinned to, because the SQL classifier resolves names and splits
 * statements under exactly these rules (a database or role default could otherwise differ):
 * unqualified names resolve in `public` (the classifier's starting search_path), backslashes in
 * plain string literals are literal (standard_conforming_strings), and text is UTF-8.
 */
export const PINNED_UPSTREAM_PARAMETERS = Object.freeze({
  search_path: 'public',
  standard_conforming_strings: 'on',
  client_encoding: 'UTF8',
});

/** Parses a postgres:// URL carrying the PROXY's credentials. */
export function upstreamFromUrl(url: string): UpstreamTarget {
  const u = new URL(url);
  const sslmode = u.searchParams.get('sslmode');
  return {
    host: decodeURIComponent(u.hostname) || '127.0.0.1',
    port: u.port ? Number(u.port) : 5432,
    user: decodeURIComponent(u.username) || 'postgres',
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    database: decodeURIComponent(u.pathname.slice(1)) || 'postgres',
    ...(sslmode === 'require' || sslmode === 'verify-full' ? { ssl: { rejectUnauthorized: sslmode === 'verify-full', servername: u.hostname } } : {}),
    parameters: PINNED_UPSTREAM_PARAMETERS,
  };
}

export function upstreamMap(upstreams: Record<string, { url: string }>): Map<string, UpstreamTarget> {
  return new Map(Object.entries(upstreams).map(([name, u]) => [name, upstreamFromUrl(u.url)]));
}

/**
 * Predefined roles that reach beyond the tables the proxy fronts: files and programs on the server,
 * signalling any backend, reading every table or every setting/statistic, bypassing reserved slots.
 */
export const DANGEROUS_PREDEFINED_ROLES: readonly string[] = Object.freeze([
  'pg_read_server_files',
  'pg_write_server_files',
  'pg_execute_server_program',
  'pg_signal_backend',
  'pg_signal_autovacuum_worker',
  'pg_monitor',
  'pg_read_all_settings',
  'pg_read_all_stats',
  'pg_stat_scan_tables',
  'pg_read_all_data',
  'pg_write_all_data',
  'pg_checkpoint',
  'pg_maintain',
  'pg_create_subscription',
  'pg_use_reserved_connections',
]);

const ROLE_SQL = `
  SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolcreatedb, r.rolreplication, r.rolbypassrls,
    ARRAY(SELECT g.rolname::text FROM pg_roles g
          WHERE g.rolname = ANY($1::text[]) AND pg_has_role(r.oid, g.oid, 'MEMBER') ORDER BY 1) AS dangerous,
    current_setting('lo_compat_privileges') AS lo_compat,
    (SELECT count(*) FROM pg_largeobject_metadata l WHERE l.lomowner = r.oid)::int AS large_objects,
    (SELECT d.datdba = r.oid FROM pg_database d WHERE d.datname = current_database()) AS owns_database
  FROM pg_roles r WHERE r.rolname = current_user`;

/**
 * What the upstream login may do beyond the tables it fronts (empty = least-privileged enough).
 * Connects once with the proxy's own credentials and reads pg_roles / pg_auth_members.
 *
 * @example
 * await upstreamRoleProblems(upstreamFromUrl('postgres://postgres@127.0.0.1/appdb'))
 * // → ['is a superuser (rolsuper)']
 */
export async function upstreamRoleProblems(target: UpstreamTarget): Promise<string[]> {
  const client = upstreamClient(target, { connectionTimeoutMillis: 10_000 });
  client.on('error', () => {});
  await client.connect();
  try {
    const { rows } = await client.query(ROLE_SQL, [DANGEROUS_PREDEFINED_ROLES]);
    const r = rows[0] as
      | { rolsuper: boolean; rolcreaterole: boolean; rolcreatedb: boolean; rolreplication: boolean; rolbypassrls: boolean; dangerous: string[]; lo_compat: string; large_objects: number; owns_database: boolean }
      | undefined;
    if (!r) return ['is not a role the server knows'];
    const problems: string[] = [];
    if (r.rolsuper) problems.push('is a superuser (rolsuper)');
    if (r.rolcreaterole) problems.push('may create roles (rolcreaterole)');
    if (r.rolcreatedb) problems.push('may create databases (rolcreatedb)');
    if (r.rolreplication) problems.push('may replicate (rolreplication)');
    if (r.rolbypassrls) problems.push('bypasses row-level security (rolbypassrls)');
    if (r.dangerous.length) problems.push(`is a member of ${r.dangerous.join(', ')}`);
    if (r.owns_database) problems.push('owns the database (may change its settings and schemas)');
    if (r.lo_compat === 'on') problems.push('lo_compat_privileges is on (large objects unprotected)');
    if (r.large_objects > 0) problems.push(`owns ${r.large_objects} large object(s)`);
    return problems;
  } finally {
    await client.end().catch(() => {});
  }
}

/**
 * Refuses to start when an upstream login is more than least-privileged (DESIGN rule 8), unless
 * `allowSuperuserUpstream` says the operator accepts it (then each problem is only logged).
 * Throws an Error whose message says which upstream, why, and what to do.
 */
export async function assertLeastPrivilegedUpstreams(
  upstreams: ReadonlyMap<string, UpstreamTarget>,
  opts: { allowSuperuserUpstream: boolean; warn?: (message: string) => void },
): Promise<void> {
  for (const [name, target] of upstreams) {
    let problems: string[];
    try {
      problems = await upstreamRoleProblems(target);
    } catch (err) {
      if (opts.allowSuperuserUpstream) {
        opts.warn?.(`cannot check the privileges of upstream ${name}'s login: ${(err as Error).message}`);
        continue;
      }
      throw new Error(
        `cannot check the privileges of upstream ${name}'s login (${target.user}): ${(err as Error).message}. ` +
          'The proxy checks at start-up that its upstream login is not a superuser; make the upstream reachable ' +
          '(or set proxy.allowSuperuserUpstream: true to skip the check).',
      );
    }
    if (problems.length === 0) continue;
    const what = `upstream ${name} logs in as ${target.user}, which ${problems.join('; ')}`;
    if (opts.allowSuperuserUpstream) {
      opts.warn?.(`${what} — accepted because proxy.allowSuperuserUpstream is true`);
      continue;
    }
    throw new Error(
      `refusing to start: ${what}. The upstream's own privileges are the proxy's second lock (a statement the ` +
        'classifier misjudges runs with them): log in as a role with LOGIN and only the GRANTs on the tables and ' +
        'sequences this upstream fronts (no superuser, CREATEROLE, CREATEDB, REPLICATION, BYPASSRLS, no pg_* ' +
        'predefined roles, not the database owner), or set proxy.allowSuperuserUpstream: true to accept the risk.',
    );
  }
}

/** A plain `pg` client logged in to the upstream with the proxy's own credentials (start-up checks, catalog reads). */
export function upstreamClient(target: UpstreamTarget, extra: pg.ClientConfig = {}): pg.Client {
  return new pg.Client({
    host: target.host,
    port: target.port,
    user: target.user,
    database: target.database,
    ...(target.password !== undefined ? { password: target.password } : {}),
    ...(target.ssl ? { ssl: target.ssl } : {}),
    ...extra,
  });
}

