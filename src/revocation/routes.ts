/**
 * Broker routes for revocation and introspection, as a plugin the broker mounts (`BrokerDeps.plugins`):
 *
 * - `POST /v1/revoke`       RFC 7009 shape. `token` (possession is the right) or `revocation_id`
 *                           (Bearer caller: its own last block; an un-delegated admin: any id).
 * - `GET  /v1/revocations`  `?since=<cursor>` → entries after the cursor (public: ids are not credentials).
 * - `POST /v1/introspect`   RFC 7662 shape; the caller presents any active Baton token as Bearer.
 *
 * Who may revoke what, and why, is in docs/revocation.md.
 */
import type { AuditEventInput } from '../audit/event.ts';
import { toAuditLineage } from '../audit/lineage.ts';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import type pg from 'pg';
import { z } from 'zod';
import { authenticateRequest, type Caller } from '../broker/bearer.ts';
import { BatonError, asBatonError } from '../errors.ts';
import type { SharedState } from '../store/shared-state.ts';
import type { KeyResolver } from '../token/keys.ts';
import { effectiveRights, readLineage, type LineageLink } from '../token/lineage.ts';
import { failedStandingCheck } from '../token/standing-checks.ts';
import { MAX_TOKEN_BYTES, verifyToken } from '../token/verify.ts';
import { encodeRevocationMessage, REVOCATION_CHANNEL, type RevocationSet } from './set.ts';
import { DEFAULT_REVOCATION_LIMITS, hitRevocationLimits, retryAfterOf, revocationRateLimited, type RevocationLimits } from './limits.ts';
import { issuedToken, latestIssuedExpiry, listSince, revokeBounded, schedulePurge, type RevocationEntry, type RevokeBounds, type RevokeInput } from './store.ts';

export interface RevocationRouteDeps {
  pool: pg.Pool;
  /** A read replica for introspection's issued-token lookup (may lag: only `iat` comes from it); default `pool`. */
  readPool?: pg.Pool;
  /** The broker's keyring (verifies presented tokens). */
  keys: KeyResolver;
  /** Where revocations are published for proxies. */
  state: SharedState;
  /** The broker's own set (started): bearer auth checks it, and local revocations land in it at once. */
  revocations: RevocationSet;
  channel?: string;
  /** Records each revocation in the audit trail (best effort: an audit outage never blocks a revocation). */
  audit?: (event: AuditEventInput) => Promise<unknown>;
  /** Flood limits of POST /v1/revoke (src/revocation/limits.ts); defaults DEFAULT_REVOCATION_LIMITS. */
  limits?: Partial<RevocationLimits>;
  /** Purge expired entries every this many ms (0 disables). Default 60 000. */
  purgeEveryMs?: number;
  now?: () => Date;
}

/** Revocation ids are hex Biscuit block signatures (Ed25519: 128 characters). */
const REVOCATION_ID = /^[0-9a-f]{16,256}$/;

const RevokeRequest = z.object({
  token: z.string().min(1).max(MAX_TOKEN_BYTES).optional(),
  // RFC 7009 §2.1: a hint the server may ignore; we identify the token by its signature anyway
  token_type_hint: z.string().max(100).optional(),
  revocation_id: z.string().trim().toLowerCase().max(256).optional(),
  reason: z.string().max(500).optional(),
});

const IntrospectRequest = z.object({
  token: z.string().min(1).max(MAX_TOKEN_BYTES),
  token_type_hint: z.string().max(100).optional(),
});

const ListQuery = z.object({ since: z.string().max(100).optional() });

/**
 * The plugin the broker passes in `BrokerDeps.plugins`.
 *
 * @example
 * const revocations = new RevocationSet({ source: databaseRevocationSource(db.pool), state });
 * await revocations.start();
 * buildBrokerApp({ …, plugins: [revocationRoutes({ pool: db.pool, keys: keyring, state, revocations })] });
 */
export function revocationRoutes(deps: RevocationRouteDeps): (app: FastifyInstance) => Promise<void> {
  const now = deps.now ?? (() => new Date());
  const channel = deps.channel ?? REVOCATION_CHANNEL;
  const bearer = { keys: deps.keys, revocations: deps.revocations, now };
  const limits: RevocationLimits = { ...DEFAULT_REVOCATION_LIMITS, ...deps.limits };

  /**
   * Durable first (PostgreSQL), then fast (local set + channel). A failed publish loses nothing.
   * Bounded: a token whose ancestor is already revoked stores nothing (it is dead already), and a
   * lineage holds at most `limits.maxOutstandingPerLineage` rows (429 past it).
   */
  async function persistAndPublish(request: FastifyRequest, input: RevokeInput, lineage: LineageLink[], bounds: RevokeBounds = {}): Promise<RevocationEntry[]> {
    const outcome = await revokeBounded(deps.pool, input, bounds);
    if (outcome.kind === 'covered') {
      request.log.info({ coveredBy: outcome.by, tokenId: input.tokenId }, 'revoke: an ancestor is already revoked; nothing stored');
      return [outcome.entry];
    }
    if (outcome.kind === 'lineage_full') {
      throw revocationRateLimited(`outstanding for this token's lineage (${outcome.outstanding}); revoke the token it was derived from instead, or wait`, outcome.retryAfterSeconds);
    }
    const entries = outcome.entries;
    deps.revocations.apply(entries);
    await deps.state.publish(channel, encodeRevocationMessage(entries)).catch((err: Error) => {
      // Proxies resync from the database on reconnect, and fail closed past their staleness bound
      // while the channel is down, so the revocation still takes effect everywhere.
      request.log.warn({ err: err.message }, 'revocation persisted but not published');
    });
    // after the revocation took effect (persisted, applied, published): an audit outage delays the
    // answer at most, never the revocation
    await deps
      .audit?.({
        source: 'broker',
        action: 'token.revoke',
        decision: 'allow',
        reason: `revoked ${input.revocationIds.join(', ').slice(0, 300)} by ${input.revokedBy}${input.reason ? `: ${input.reason}` : ''}`.slice(0, 1024),
        lineage: toAuditLineage(lineage),
        ...(input.tokenId ? { tokenId: input.tokenId } : {}),
      })
      .catch((err: unknown) => request.log.warn({ code: asBatonError(err).code }, 'revocation not audited'));
    request.log.info({ revocationIds: entries.map((e) => e.revocationId), tokenId: input.tokenId, revokedBy: input.revokedBy }, 'revoked');
    return entries;
  }

  return async (app) => {
    app.post('/v1/revoke', async (request, reply) => {
      try {
        // per address first: before any signature is checked (cheap refusal of a flood)
        await hitRevocationLimits(deps.state, { address: request.ip }, limits, (e) => request.log.warn(e, 'revocation limiter unavailable'));
        const body = parse(RevokeRequest, request.body);
        if (!!body.token === !!body.revocation_id) {
          throw new BatonError('BATON_ERR_INVALID_REQUEST', 'send exactly one of token or revocation_id');
        }
        reply.header('cache-control', 'no-store');
        if (body.token) return await revokeByPossession(request, body.token, body.reason);
        return await revokeById(request, body.revocation_id!, body.reason);
      } catch (err) {
        const retryAfter = retryAfterOf(err);
        if (retryAfter !== undefined) reply.header('retry-after', String(retryAfter));
        throw err;
      }
    });

    app.get('/v1/revocations', async (request, reply) => {
      const { since } = parse(ListQuery, request.query);
      const page = await listSince(deps.pool, since, { now: now() });
      reply.header('cache-control', 'no-store');
      return {
        entries: page.entries.map((e) => ({ revocation_id: e.revocationId, expires_at: e.expiresAt.toISOString() })),
        cursor: page.cursor,
        more: page.more,
      };
    });

    app.post('/v1/introspect', async (request, reply) => {
      authenticateRequest(request, bearer); // RFC 7662 §2.1: the caller must be authorised (401 otherwise)
      const body = parse(IntrospectRequest, request.body);
      reply.header('cache-control', 'no-store');
      return introspect(body.token);
    });

    const stopPurge = deps.purgeEveryMs === 0 ? undefined : schedulePurge(deps.pool, { everyMs: deps.purgeEveryMs, log: (m) => app.log.warn(m) });
    app.addHook('onClose', async () => stopPurge?.());
  };

  /**
   * Possession is the right: whoever holds a token may kill it (and so its descendants). Its LAST
   * block's id is revoked, never an ancestor's: holding a child must not kill the parent.
   */
  async function revokeByPossession(request: FastifyRequest, token: string, reason?: string) {
    let v;
    try {
      v = verifyToken(token, deps.keys);
    } catch (err) {
      // RFC 7009 §2.2: an invalid token is not an error (the client can do nothing about it). We say
      // `revoked: false` so tooling can warn, and store nothing: an id from a token we cannot verify
      // (garbage, foreign or retired key) must not enter the list.
      request.log.info({ code: asBatonError(err).code }, 'revoke: token not verifiable; nothing revoked');
      return { revoked: false };
    }
    let lastId: string, tokenId: string | undefined, expiresAt: Date | undefined, lineage: LineageLink[];
    const chain = v.revocationIds;
    try {
      lastId = chain.at(-1)!;
      lineage = readLineage(v.decoded);
      tokenId = lineage[0]?.tokenId;
      const exp = effectiveRights(v.decoded).expiresAt; // an expired token may still be revoked
      expiresAt = exp ? new Date(exp) : undefined;
    } finally {
      v.biscuit.free();
    }
    // the lineage's root (the issued token itself) is never refused per lineage: its holder must be
    // able to kill the whole lineage however much a descendant flooded it (and it stores one row)
    if (chain.length > 1) await hitRevocationLimits(deps.state, { lineage: tokenId ?? chain[0] }, limits, (e) => request.log.warn(e, 'revocation limiter unavailable'));
    // Every token expires; one without a readable expiry is bounded by the latest issued token.
    expiresAt ??= await latestIssuedExpiry(deps.pool, now());
    const [entry] = await persistAndPublish(request, { revocationIds: [lastId], tokenId, expiresAt, revokedBy: 'possession', reason }, lineage, {
      ancestorIds: chain.slice(0, -1),
      maxOutstandingPerLineage: limits.maxOutstandingPerLineage,
      isRoot: chain.length === 1,
    });
    // the id in the list that kills this token: its own, or an ancestor's already there
    return { revoked: true, revocation_id: entry?.revocationId ?? lastId };
  }

  async function revokeById(request: FastifyRequest, id: string, reason?: string) {
    const caller = authenticateRequest(request, bearer);
    if (!REVOCATION_ID.test(id)) throw new BatonError('BATON_ERR_INVALID_REQUEST', 'revocation_id must be a hex Biscuit revocation id');
    const { expiresAt, tokenId } = await authorizeRevocation(caller, id);
    // an admin revoking any id is bounded per address only; anyone else revokes their own chain
    const own = !caller.isAdmin || caller.revocationIds.includes(id);
    if (own && caller.revocationIds.length > 1) await hitRevocationLimits(deps.state, { lineage: caller.tokenId ?? caller.revocationIds[0] }, limits, (e) => request.log.warn(e, 'revocation limiter unavailable'));
    const at = caller.revocationIds.indexOf(id);
    const [entry] = await persistAndPublish(
      request,
      { revocationIds: [id], tokenId, expiresAt, revokedBy: caller.tokenId ?? 'unknown', reason },
      caller.lineage,
      own ? { ancestorIds: caller.revocationIds.slice(0, Math.max(at, 0)), maxOutstandingPerLineage: limits.maxOutstandingPerLineage, isRoot: at === 0 } : { isRoot: tokenId !== undefined }, // an admin's id has a tokenId only when it is an issued token's root
    );
    return { revoked: true, revocation_id: entry?.revocationId ?? id };
  }

  /**
   * Decides whether `caller` may revoke `id`; returns the entry's expiry and the token id of the
   * chain it belongs to (when known). @throws BatonError 403
   */
  async function authorizeRevocation(caller: Caller, id: string): Promise<{ expiresAt: Date; tokenId?: string }> {
    const chain = caller.revocationIds;
    const at = chain.indexOf(id);
    if (at === chain.length - 1) {
      return { expiresAt: prefixExpiry(caller.lineage, at) ?? (await latestIssuedExpiry(deps.pool, now())), tokenId: caller.tokenId };
    }
    if (at >= 0) {
      const holder = caller.lineage[at]?.delegatedTo ?? caller.lineage[at]?.agent ?? 'its holder';
      throw new BatonError(
        'BATON_ERR_FORBIDDEN',
        `revocation_id belongs to an ancestor of your token (link ${at} of ${chain.length}, held by ${holder}): a delegate cannot revoke the token it was derived from; that token's holder or an admin can`,
      );
    }
    // Admin power is the authority block's role, and it does not travel through delegation: a helper
    // holding an attenuated admin token must not be able to revoke arbitrary tokens (or its delegator).
    if (caller.isAdmin) {
      // an issued token's authority id: its exact expiry; any other id: the latest any token can live
      const issued = await issuedToken(deps.pool, id);
      return issued ?? { expiresAt: await latestIssuedExpiry(deps.pool, now()) };
    }
    throw new BatonError(
      'BATON_ERR_FORBIDDEN',
      caller.lineage[0]?.roles?.includes('admin')
        ? 'revocation_id is not in your token\'s chain, and admin rights do not pass through delegation: use the un-delegated admin token'
        : 'revocation_id is not in your token\'s chain: descendants are made offline, so the broker cannot tell one from a stranger\'s token. Revoke a descendant by presenting it (token=…), revoke your own token (which kills all its descendants), or ask an admin',
    );
  }

  /** RFC 7662 §2.2 response; `{ active: false }` for anything not currently usable. */
  async function introspect(token: string): Promise<Record<string, unknown>> {
    let v;
    try {
      v = verifyToken(token, deps.keys);
    } catch {
      return { active: false };
    }
    try {
      const effective = effectiveRights(v.decoded);
      const exp = effective.expiresAt ? new Date(effective.expiresAt) : undefined;
      if (!exp || now() > exp) return { active: false };
      // the token's own checks too: a hand-written time limit lineage does not read as the expiry
      if (failedStandingCheck(v.biscuit, v.decoded, now())) return { active: false };
      if (deps.revocations.firstRevoked(v.revocationIds)) return { active: false };
      const lineage = readLineage(v.decoded);
      const root = lineage[0]!;
      const issuedAt = root.tokenId ? await (deps.readPool ?? deps.pool).query<{ issued_at: Date }>('SELECT issued_at FROM issued_tokens WHERE token_id = $1', [root.tokenId]) : undefined;
      const iat = issuedAt?.rows[0]?.issued_at;
      return {
        active: true,
        token_type: 'Bearer',
        sub: root.subject,
        agent: root.agent,
        // the current holder: the last delegation, or the agent itself
        ...(lineage.length > 1 ? { delegated_to: lineage.at(-1)!.delegatedTo } : {}),
        token_id: root.tokenId,
        // the authority block's `issuer`: who vouched for the subject (the OIDC issuer)
        iss: root.issuer,
        exp: Math.floor(exp.getTime() / 1000),
        ...(iat ? { iat: Math.floor(iat.getTime() / 1000) } : {}),
        revocation_id: v.revocationIds.at(-1),
        lineage: lineage.map(publicLink),
        effective: {
          rights: effective.rights,
          resources: effective.resources,
          operations: effective.operations,
          // true when some link has checks outside the vocabulary: the proxy's authorizer decides
          approximate: effective.approximate,
        },
      };
    } finally {
      v.biscuit.free();
    }
  }
}

/** The expiry of the token made of links 0..at: the earliest expiry among them. */
function prefixExpiry(lineage: readonly LineageLink[], at: number): Date | undefined {
  const times = lineage.slice(0, at + 1).flatMap((l) => (l.expiresAt ? [new Date(l.expiresAt).getTime()] : []));
  return times.length ? new Date(Math.min(...times)) : undefined;
}

function publicLink(link: LineageLink): Record<string, unknown> {
  return {
    depth: link.depth,
    ...(link.agent !== undefined ? { agent: link.agent } : {}),
    ...(link.delegatedTo !== undefined ? { delegated_to: link.delegatedTo } : {}),
    ...(link.purpose !== undefined ? { purpose: link.purpose } : {}),
    ...(link.tokenId !== undefined ? { token_id: link.tokenId } : {}),
    ...(link.resources ? { resources: link.resources } : {}),
    ...(link.operations ? { operations: link.operations } : {}),
    ...(link.expiresAt ? { expires_at: link.expiresAt } : {}),
    revocation_id: link.revocationId,
    ...(link.opaque ? { opaque: link.opaque } : {}),
  };
}

/** Validates a body/query; names the fields at fault, never echoing values (they may be tokens). */
function parse<T>(schema: z.ZodType<T>, input: unknown): T {
  const r = schema.safeParse(input ?? {});
  if (r.success) return r.data;
  const fields = [...new Set(r.error.issues.map((i) => i.path.join('.') || 'body'))];
  throw new BatonError('BATON_ERR_INVALID_REQUEST', `invalid parameter(s): ${fields.join(', ')}`);
}
