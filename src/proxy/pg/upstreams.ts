/** Upstream databases from configuration: client-visible name → where (and as whom) the proxy connects. */
import type { UpstreamTarget } from './gate.ts';

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
  };
}

export function upstreamMap(upstreams: Record<string, { url: string }>): Map<string, UpstreamTarget> {
  return new Map(Object.entries(upstreams).map(([name, u]) => [name, upstreamFromUrl(u.url)]));
}
