/**
 * `proxy.upstreamIdentity: per-token` (issue 14, the second lock): the proxy logs in upstream as an
 * ephemeral role holding exactly the token chain's table rights (src/credentials/), so PostgreSQL
 * itself refuses what the token does not allow even if the classifier were wrong. One role per
 * (upstream, chain), created at the chain's first session and reused until it expires; the reaper
 * drops it at expiry or when any link of the chain is revoked.
 */
import type { RoleSubject } from '../../credentials/postgres-service.ts';
import type { TokenChain } from '../../enforce/token-chain.ts';

export interface UpstreamLogin {
  user: string;
  password: string;
}

/** The login a session of `chain` on `database` uses upstream. Rejects when the role cannot be made. */
export type UpstreamIdentity = (database: string, chain: TokenChain) => Promise<UpstreamLogin>;

interface Cached extends UpstreamLogin {
  expiresAt: Date;
}

/** Roles cached per (upstream, chain); an entry past its expiry is made again (not reused). */
export function perTokenIdentity(
  roleForProxy: (subject: RoleSubject, upstream: string) => Promise<Cached>,
  now: () => Date = () => new Date(),
): UpstreamIdentity {
  const cache = new Map<string, Promise<Cached>>();
  const sweep = () => {
    const at = now();
    for (const [key, entry] of cache) void entry.then((c) => c.expiresAt <= at && cache.get(key) === entry && cache.delete(key), () => cache.delete(key));
  };
  return async (database, chain) => {
    const key = `${database}\u0000${chain.lastRevocationId}`;
    const cached = cache.get(key);
    if (cached) {
      const c = await cached.catch(() => undefined);
      if (c && c.expiresAt > now()) return { user: c.user, password: c.password };
      if (cache.get(key) === cached) cache.delete(key);
    }
    if (cache.size >= 1024) sweep();
    const subject: RoleSubject = { effective: chain.effective, lineage: [...chain.lineage], tokenId: chain.tokenId, revocationIds: [...chain.token.revocationIds] };
    const made = roleForProxy(subject, database);
    cache.set(key, made);
    made.catch(() => cache.get(key) === made && cache.delete(key));
    const c = await made;
    return { user: c.user, password: c.password };
  };
}
