/**
 * One verified token chain as every enforcer holds it (the Postgres gate per session, the HTTP gate
 * per cached token): its lineage, expiry, liveness and per-(resource, operation) decisions. The
 * proxies differ in what they touch and how they answer; what a token allows is decided here only.
 */
import { toAuditLineage } from '../audit/lineage.ts';
import { asBatonError } from '../errors.ts';
import { isPublished } from '../proxy/pg/keyset.ts';
import type { RevocationView } from '../revocation/view.ts';
import { authorize, type AuthorizationResult } from '../token/authorize.ts';
import type { KeyResolver } from '../token/keys.ts';
import { effectiveRights, readLineage, type EffectiveRights, type LineageLink } from '../token/lineage.ts';
import type { Right } from '../token/mint.ts';
import { verifyToken, type VerifiedToken } from '../token/verify.ts';
import { covers } from '../token/vocabulary.ts';
import { decodeToken } from '../token/wire/index.ts';

/** Why a chain may not be used right now; `kind` picks the wire's answer (SQLSTATE, HTTP status). */
export interface ChainRefusal {
  kind: 'expired' | 'revoked' | 'key-retired' | 'unavailable';
  /** Safe to show the caller (no token material). */
  message: string;
}

/** Decisions kept per chain before the cache starts over (a chain touching more is unusual). */
const MAX_CACHED_DECISIONS = 10_000;

export class TokenChain {
  readonly token: VerifiedToken;
  readonly lineage: readonly LineageLink[];
  readonly auditLineage: ReturnType<typeof toAuditLineage>;
  readonly expiresAt: Date | undefined;
  /** The rights left after every link, the earliest expiry, and whether that view is exact. */
  readonly effective: EffectiveRights;
  /** The rights left after every link (exact unless `approximate`). */
  readonly rights: readonly Right[];
  /** Operations some link requires a just-in-time approval for (`require_approval` facts). */
  readonly approvalOps: readonly string[];
  /** The authority token id: every attenuated child of one exchange shares it (per-token limits). */
  readonly limitKey: string | undefined;
  readonly #decisions = new Map<string, AuthorizationResult>();
  /**
   * Decisions are cached until expiry or revocation, which `liveness` checks on every use. A token
   * with checks outside the vocabulary (hand-written Datalog, e.g. a time check of another shape)
   * could change its answer over time: those are authorized every time.
   */
  readonly #cacheDecisions: boolean;
  #freed = false;

  constructor(token: VerifiedToken) {
    this.token = token;
    this.lineage = readLineage(token.decoded);
    this.auditLineage = toAuditLineage(this.lineage as LineageLink[]);
    const effective = effectiveRights(token.decoded);
    this.effective = effective;
    this.expiresAt = effective.expiresAt ? new Date(effective.expiresAt) : undefined;
    this.rights = effective.rights;
    this.#cacheDecisions = !effective.approximate;
    this.approvalOps = [...new Set(this.lineage.flatMap((l) => l.requireApproval ?? []))];
    this.limitKey = this.lineage[0]?.tokenId ?? token.revocationIds[0];
  }

  /**
   * Verifies `text` against the keys (which may be fetched for its root key id) and wraps it.
   * @throws BatonError from {@link verifyToken} (malformed, unknown key, bad signature, too complex …)
   * @example const chain = await TokenChain.verify(bearer, (id) => keySource.resolver(id));
   */
  static async verify(text: string, keys: (rootKeyId?: number) => KeyResolver | Promise<KeyResolver>): Promise<TokenChain> {
    const decoded = decodeToken(text.trim());
    return new TokenChain(verifyToken(text, await keys(decoded.rootKeyId), decoded));
  }

  get tokenId(): string | undefined {
    return this.lineage[0]?.tokenId;
  }

  /** The last link's revocation id: what a just-in-time approval is bound to. */
  get lastRevocationId(): string {
    return this.token.revocationIds.at(-1)!;
  }

  /**
   * May the chain be used at `now`? Expiry, the revocation set's freshness (fail closed when it
   * cannot be confirmed), revocation of any link, and — given the current keys — retirement of
   * the root key that signed it. Memory only.
   */
  liveness(now: Date, revocations: RevocationView, keys?: KeyResolver): ChainRefusal | undefined {
    if (this.expiresAt && now > this.expiresAt) return { kind: 'expired', message: 'the token has expired' };
    try {
      revocations.assertCurrent();
    } catch (err) {
      return { kind: 'unavailable', message: asBatonError(err).message };
    }
    if (revocations.firstRevoked(this.token.revocationIds)) return { kind: 'revoked', message: 'the token (or one of its ancestors) has been revoked' };
    if (keys && !isPublished(keys, this.token.rootKeyId)) {
      return { kind: 'key-retired', message: `the token's root key (${this.token.rootKeyId}) has been retired` };
    }
    return undefined;
  }

  /**
   * One (resource, operation) pair (DESIGN.md rule 1). A resource outside the grammar matches no
   * right: denied. Engine errors propagate (the caller refuses).
   */
  authorize(resource: string, operation: string, now: Date): AuthorizationResult {
    const key = `${resource}\u0000${operation}`;
    let decision = this.#decisions.get(key);
    if (!decision) {
      try {
        decision = authorize(this.token.biscuit, resource, operation, now);
      } catch (err) {
        if (!(err instanceof TypeError)) throw err;
        decision = { allow: false, failedBlock: 0, reason: 'resource outside the vocabulary' };
      }
      if (this.#cacheDecisions) {
        if (this.#decisions.size >= MAX_CACHED_DECISIONS) this.#decisions.clear();
        this.#decisions.set(key, decision);
      }
    }
    return decision;
  }

  /** `authorize(...).allow`, with any failure counted as no. */
  allows(resource: string, operation: string, now: Date): boolean {
    try {
      return this.authorize(resource, operation, now).allow;
    } catch {
      return false;
    }
  }

  /**
   * True when some effective right names something under `prefix` (`pg:appdb/`, `mcp:tools/`) AND
   * the token's own checks allow it. With an exact lineage the effective rights are the truth; with an
   * approximate one each candidate is confirmed by the authorizer (a hand-written check may deny all).
   */
  grantsSomethingUnder(prefix: string, now: Date, probeOperation: string): boolean {
    const here = this.rights.filter((r) => r.resource.startsWith(prefix) || covers(r.resource, `${prefix}x`));
    return here.slice(0, 32).some((r) => this.allows(r.resource.startsWith(prefix) ? r.resource : `${prefix}*`, r.operation === '*' ? probeOperation : r.operation, now));
  }

  /** Names the link that forbade something: who holds that link and what it was for. */
  explain(failedBlock: number | undefined): string {
    const link = failedBlock !== undefined ? this.lineage[failedBlock] : undefined;
    if (!link || failedBlock === 0) {
      const root = this.lineage[0];
      return `not granted to ${root?.subject ?? 'the subject'} via agent ${root?.agent ?? '?'} (link 0)`;
    }
    return `forbidden by link ${failedBlock} (delegated to ${link.delegatedTo ?? '?'})`;
  }

  /** Releases the verified biscuit (wasm memory). Idempotent. */
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    this.token.biscuit.free();
  }
}
