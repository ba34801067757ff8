/**
 * Baton's decisions for the HTTP proxy: whose request it is (the Bearer token's verified chain, from
 * the cache), whether it is alive, whether each (resource, operation) it touches is allowed, and the
 * audit entry that records it. The HTTP counterpart of src/proxy/pg/baton-gate.ts, on the same core
 * (src/enforce/token-chain.ts); it knows tokens and no sockets — server.ts knows sockets and no tokens.
 */
import type { AuditEventInput } from '../../audit/event.ts';
import type { AuditReceipt, AuditWriter } from '../../audit/writer.ts';
import { TokenChain } from '../../enforce/token-chain.ts';
import { asBatonError, type ErrorCode } from '../../errors.ts';
import type { RevocationView } from '../../revocation/view.ts';
import type { KeyResolver } from '../../token/keys.ts';
import type { Access } from './access.ts';
import { type ChainLease, TokenChainCache } from '../../enforce/token-cache.ts';

export interface HttpGateDeps {
  /** The broker's keys; `wantedKeyId` lets a source refetch for a token's root key id. */
  keys: (wantedKeyId?: number) => KeyResolver | Promise<KeyResolver>;
  /** The current keys from memory, for key-retirement checks per request; absent = not checked. */
  currentKeys?: () => KeyResolver | undefined;
  revocations: RevocationView;
  audit: AuditWriter;
  tokenCacheSize: number;
  now?: () => Date;
  log?: (event: Record<string, unknown>) => void;
}

/** A refusal as the client sees it: RFC 9457 problem details, plus a WWW-Authenticate on 401. */
export interface Problem {
  status: number;
  code: ErrorCode;
  title: string;
  /** Extra members of the problem document (`resource`, `operation`, `link` …). */
  extra?: Record<string, unknown>;
  wwwAuthenticate?: string;
}

/** Where a request is going and what the audit says of it (never a header, body or query value). */
export type HttpAuditContext = NonNullable<AuditEventInput['http']>;

const REALM = 'Bearer realm="baton"';

export type Authenticated = { ok: true; lease: ChainLease } | { ok: false; problem: Problem };

export type Decision = { allow: true } | { allow: false; problem: Problem; reason: string; access: Access };

export function createHttpGate(deps: HttpGateDeps) {
  const now = deps.now ?? (() => new Date());
  const cache = new TokenChainCache(deps.tokenCacheSize, (token) => TokenChain.verify(token, deps.keys));

  return {
    cache,

    /**
     * The request's chain: `Authorization: Bearer <token>`, verified (cached) and alive. No token or
     * a bad one → 401 with `WWW-Authenticate` (RFC 6750 §3); state that cannot be confirmed → 503.
     */
    async authenticate(authorization: string | undefined): Promise<Authenticated> {
      const token = bearerToken(authorization);
      if (token === undefined) {
        return { ok: false, problem: { status: 401, code: 'BATON_ERR_UNAUTHENTICATED', title: 'a Baton token is required: send Authorization: Bearer <token>', wwwAuthenticate: REALM } };
      }
      let lease: ChainLease;
      try {
        lease = await cache.lease(token);
      } catch (err) {
        const e = asBatonError(err);
        deps.log?.({ event: 'http.token_refused', code: e.code, detail: e.detail });
        const unavailable = e.http >= 500;
        return {
          ok: false,
          problem: {
            status: unavailable ? 503 : 401,
            code: e.code,
            title: e.message,
            ...(unavailable ? {} : { wwwAuthenticate: `${REALM}, error="invalid_token", error_description="${quoteSafe(e.message)}"` }),
          },
        };
      }
      const refusal = this.liveness(lease);
      if (refusal) {
        lease.release();
        return { ok: false, problem: refusal };
      }
      return { ok: true, lease };
    },

    /** Expiry, revocation, key retirement; memory only (also re-run while a response streams). */
    liveness(lease: ChainLease): Problem | undefined {
      let keys: KeyResolver | undefined;
      try {
        keys = deps.currentKeys?.();
      } catch (err) {
        // the key source cannot confirm its set is current: fail closed
        return { status: 503, code: 'BATON_ERR_REVOCATION_STALE', title: asBatonError(err).message };
      }
      const refusal = lease.chain.liveness(now(), deps.revocations, keys);
      if (!refusal) return undefined;
      if (refusal.kind === 'unavailable') return { status: 503, code: 'BATON_ERR_REVOCATION_STALE', title: refusal.message };
      const code: ErrorCode = refusal.kind === 'expired' ? 'BATON_ERR_TOKEN_EXPIRED' : 'BATON_ERR_TOKEN_REVOKED';
      return { status: 401, code, title: refusal.message, wwwAuthenticate: `${REALM}, error="invalid_token", error_description="${quoteSafe(refusal.message)}"` };
    },

    /**
     * Every pair on its own; the first denied one names the link that forbade it. An upstream scope
     * (`mcp:tools/`) with no pairs needs *some* right there: a token for one service may not even
     * list another's tools.
     */
    decide(chain: TokenChain, accesses: readonly Access[], scope?: { prefix: string; probe: string }): Decision {
      const at = now();
      if (scope && !chain.grantsSomethingUnder(scope.prefix, at, scope.probe)) {
        const access = { resource: scope.prefix, operation: scope.probe };
        const reason = `the token grants nothing on ${scope.prefix}`;
        return { allow: false, reason, access, problem: forbidden(reason, access, undefined) };
      }
      for (const access of accesses) {
        let decision;
        try {
          decision = chain.authorize(access.resource, access.operation, at);
        } catch (err) {
          const e = asBatonError(err);
          deps.log?.({ event: 'http.authorize_failed', code: e.code, detail: e.detail });
          return { allow: false, reason: 'authorization failed', access, problem: { status: 503, code: 'BATON_ERR_SERVER', title: 'authorization could not be completed; request refused' } };
        }
        if (!decision.allow) {
          const reason = `permission denied for ${access.operation} on ${access.resource}: ${chain.explain(decision.failedBlock)}`;
          return { allow: false, reason, access, problem: forbidden(reason, access, decision.failedBlock) };
        }
      }
      return { allow: true };
    },

    /** The audit entry of one request (DESIGN.md rule 6: the caller awaits it as the rule requires). */
    event(chain: TokenChain, decision: 'allow' | 'deny', accesses: readonly Access[], http: HttpAuditContext, reason?: string, denied?: Access): AuditEventInput {
      const first = denied ?? accesses[0];
      return {
        source: 'proxy-http',
        action: 'request',
        decision,
        ...(reason ? { reason: reason.slice(0, 1024) } : {}),
        lineage: chain.auditLineage,
        ...(chain.tokenId ? { tokenId: chain.tokenId } : {}),
        ...(first ? { resource: first.resource.slice(0, 1024), operation: first.operation } : {}),
        accesses: uniqueAccesses(accesses).slice(0, 256),
        http,
      };
    },

    append(event: AuditEventInput): Promise<AuditReceipt> {
      return deps.audit.append(event);
    },

    /** What happened: status and body bytes delivered, how long it took. Never awaited by a response. */
    outcome(receipt: Promise<AuditReceipt>, outcome: { status: number; bytes: number; durationMs: number; tag?: string }): void {
      receipt
        .then((r) => deps.audit.recordOutcome({ id: r.id }, { status: outcome.status, bytes: outcome.bytes, durationMs: outcome.durationMs, ...(outcome.tag ? { tag: outcome.tag } : {}) }))
        .catch((err: unknown) => deps.log?.({ event: 'audit.outcome_failed', detail: asBatonError(err).detail }));
    },

    close(): void {
      cache.clear();
    },
  };
}

export type HttpGate = ReturnType<typeof createHttpGate>;

function forbidden(reason: string, access: Access, failedBlock: number | undefined): Problem {
  return {
    status: 403,
    code: 'BATON_ERR_FORBIDDEN',
    title: `baton: ${reason}`,
    extra: { resource: access.resource, operation: access.operation, ...(failedBlock !== undefined ? { link: failedBlock } : {}) },
  };
}

/** The token of `Authorization: Bearer <token>` (scheme case-insensitive, RFC 6750 §2.1), else undefined. */
export function bearerToken(authorization: string | undefined): string | undefined {
  if (typeof authorization !== 'string') return undefined;
  const m = /^Bearer[ ]+([!-~]+)[ ]*$/i.exec(authorization);
  return m?.[1];
}

function uniqueAccesses(accesses: readonly Access[]): Access[] {
  return [...new Map(accesses.map((a) => [`${a.resource}\u0000${a.operation}`, { resource: a.resource.slice(0, 1024), operation: a.operation }])).values()];
}

/** Text for a quoted-string header parameter: printable ASCII without `"` or `\`. */
function quoteSafe(text: string): string {
  return text.replace(/[^ -~]|["\\]/g, '?').slice(0, 200);
}
