/** Upstream databases from configuration: client-visible name → where (and as whom) the proxy connects. */
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
