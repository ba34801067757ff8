/**
 * Defense in depth for security rule 5 (no token ever in the audit): refuse any event whose string
 * fields contain something shaped like a bearer credential. Callers build events from token ids and
 * revocation ids only; this guard catches a mistake (or a hostile `purpose`) before it is committed
 * forever to an append-only log.
 *
 * Heuristic: a run of at least 80 base64url characters (`A-Z a-z 0-9 _ -`) that mixes upper case,
 * lower case and digits. Biscuit tokens (base64url, hundreds of characters) and JWT segments match;
 * lowercase-hex revocation ids, SHA-256 fingerprints, slugs and SQL identifiers (≤ 63 chars) do not.
 */
import { BatonError } from '../errors.ts';

const RUN = /[A-Za-z0-9_-]{80,}/g;

function looksLikeCredential(s: string): boolean {
  if (s.length < 80) return false;
  for (const [run] of s.matchAll(RUN)) {
    if (/[A-Z]/.test(run) && /[a-z]/.test(run) && /[0-9]/.test(run)) return true;
  }
  return false;
}

/** Path (e.g. `lineage[1].purpose`) of the first string that looks like a credential, if any. */
function findCredential(value: unknown, path: string): string | undefined {
  if (typeof value === 'string') return looksLikeCredential(value) ? path : undefined;
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const hit = findCredential(value[i], `${path}[${i}]`);
      if (hit) return hit;
    }
    return undefined;
  }
  if (value !== null && typeof value === 'object') {
    for (const [k, v] of Object.entries(value)) {
      const hit = findCredential(v, path ? `${path}.${k}` : k);
      if (hit) return hit;
    }
  }
  return undefined;
}

/**
 * Throws `BATON_ERR_AUDIT_REJECTED` if any string in `event` looks like a token. The offending
 * field's path goes to `detail`; its value is never echoed anywhere.
 *
 * @example
 * assertNoCredentials({ lineage: [{ purpose: 'summarise orders' }] }); // passes
 */
export function assertNoCredentials(event: unknown): void {
  const path = findCredential(event, '');
  if (path !== undefined) {
    throw new BatonError('BATON_ERR_AUDIT_REJECTED', 'audit event refused: a field looks like a credential', {
      detail: `credential-like value in ${path}`,
    });
  }
}
