/**
 * RFC 8693 token exchange: OIDC token(s) in, Baton token out. The pipeline is an ordered list of
 * small steps so the order of checks is visible in one place.
 */
import type { Identity, OidcVerifier } from '../oidc/verify.ts';
import { BatonError } from '../errors.ts';
import { evaluatePolicy, type Grant } from '../policy/evaluate.ts';
import type { PolicyFile } from '../policy/schema.ts';
import type { Keyring } from '../keys/keyring.ts';
import { mintToken, type MintedToken } from '../token/mint.ts';
import type { SharedState } from '../store/shared-state.ts';
import { GRANT_TYPE_TOKEN_EXCHANGE, TOKEN_TYPE_BATON, type TokenExchangeRequest, type TokenExchangeResponse } from './exchange-request.ts';
import type { IssuedToken } from './issued-tokens.ts';

export interface ExchangeDeps {
  oidc: OidcVerifier;
  policy: () => PolicyFile;
  keyring: Keyring;
  state: SharedState;
  rateLimit: { perSubject: number; perClient: number };
  /**
   * Persists the issued-token record and the audit entry (in parallel: two durable writes, one wait);
   * the token is returned only after this succeeds.
   */
  persist: (issued: IssuedToken, result: ExchangeResult) => Promise<void>;
  now?: () => Date;
}

interface ExchangeContext {
  req: TokenExchangeRequest;
  subject?: Identity;
  actor?: Identity;
  agent?: string;
  grant?: Grant;
  minted?: MintedToken;
  rootKeyId?: number;
}

type Step = (ctx: ExchangeContext, deps: ExchangeDeps) => Promise<void> | void;

const checkGrantType: Step = ({ req }) => {
  if (req.grant_type !== GRANT_TYPE_TOKEN_EXCHANGE) {
    throw new BatonError('BATON_ERR_UNSUPPORTED_GRANT_TYPE', `grant_type must be ${GRANT_TYPE_TOKEN_EXCHANGE}`);
  }
};

const verifySubject: Step = async (ctx, { oidc }) => {
  ctx.subject = await oidc.verify(ctx.req.subject_token);
};

/** RFC 8693 §1.1 delegation: the actor acts for the subject; the actor becomes the token's agent. */
const verifyActor: Step = async (ctx, { oidc }) => {
  if (ctx.req.actor_token) ctx.actor = await oidc.verify(ctx.req.actor_token);
  const agentOf = (id: Identity) => id.clientId ?? id.subject;
  ctx.agent = ctx.actor ? agentOf(ctx.actor) : agentOf(ctx.subject!);
};

const rateLimit: Step = async (ctx, { state, rateLimit: limits }) => {
  const checks = [state.hit(`sub:${ctx.subject!.issuer}|${ctx.subject!.subject}`, limits.perSubject, 60), state.hit(`client:${ctx.agent}`, limits.perClient, 60)];
  // fail closed: without the limiter's answer, no token
  const results = await Promise.all(checks).catch((err: unknown) => {
    throw new BatonError('BATON_ERR_STORE_UNAVAILABLE', 'the rate limiter (shared state) is unavailable; retry later', { detail: String((err as Error)?.message ?? err) });
  });
  for (const r of results) {
    if (!r.allowed) {
      throw new BatonError('BATON_ERR_RATE_LIMITED', `too many token exchanges; retry after ${r.retryAfter} s`, {
        detail: `retry-after=${r.retryAfter}`,
      });
    }
  }
};

const applyPolicy: Step = (ctx, { policy }) => {
  const s = ctx.subject!;
  ctx.grant = evaluatePolicy(
    policy(),
    { issuer: s.issuer, subject: s.subject, groups: [...s.groups], clientId: ctx.agent },
    {
      targets: [...(ctx.req.resource ?? []), ...(ctx.req.audience ?? [])],
      operations: ctx.req.scope,
      ttlSeconds: ctx.req.requested_lifetime,
    },
  );
};

const mint: Step = (ctx, { keyring, now }) => {
  const signer = keyring.signingKey();
  ctx.rootKeyId = signer.id;
  const g = ctx.grant!;
  const issuedAt = (now ?? (() => new Date()))();
  ctx.minted = mintToken(
    {
      subject: ctx.subject!.subject,
      issuer: ctx.subject!.issuer,
      agent: ctx.agent!,
      rights: g.rights,
      roles: g.roles,
      expiresAt: new Date(issuedAt.getTime() + g.ttlSeconds * 1000),
    },
    signer,
  );
};

const persist: Step = async (ctx, deps) => {
  const m = ctx.minted!;
  await deps.persist(
    {
      tokenId: m.tokenId,
      revocationId: m.revocationId,
      subject: ctx.subject!.subject,
      issuer: ctx.subject!.issuer,
      agent: ctx.agent!,
      rights: ctx.grant!.rights,
      roles: ctx.grant!.roles,
      rootKeyId: ctx.rootKeyId!,
      expiresAt: m.expiresAt,
    },
    resultOf(ctx, deps),
  );
};

/** The exchange, in order. */
export const EXCHANGE_STEPS: readonly Step[] = [checkGrantType, verifySubject, verifyActor, rateLimit, applyPolicy, mint, persist];

export interface ExchangeResult {
  response: TokenExchangeResponse;
  tokenId: string;
  subject: Identity;
  agent: string;
  grant: Grant;
  revocationId: string;
  expiresAt: Date;
}

export async function exchangeToken(req: TokenExchangeRequest, deps: ExchangeDeps): Promise<ExchangeResult> {
  const ctx: ExchangeContext = { req };
  for (const step of EXCHANGE_STEPS) await step(ctx, deps);
  return resultOf(ctx, deps);
}

function resultOf(ctx: ExchangeContext, deps: ExchangeDeps): ExchangeResult {
  const m = ctx.minted!;
  const now = (deps.now ?? (() => new Date()))();
  return {
    response: {
      access_token: m.token,
      issued_token_type: TOKEN_TYPE_BATON,
      token_type: 'Bearer',
      expires_in: Math.max(0, Math.round((m.expiresAt.getTime() - now.getTime()) / 1000)),
      scope: [...new Set(ctx.grant!.rights.map((r) => r.operation))].join(' '),
    },
    tokenId: m.tokenId,
    subject: ctx.subject!,
    agent: ctx.agent!,
    grant: ctx.grant!,
    revocationId: m.revocationId,
    expiresAt: m.expiresAt,
  };
}
