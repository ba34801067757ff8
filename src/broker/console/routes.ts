/**
 * The web console (issue 16, docs/console.md), served by the broker itself:
 *
 * - `GET  /console`, `/console/callback`               the page (one index.html)
 * - `GET  /console/assets/{file}`                      its script and style (content-hashed, immutable)
 * - `GET  /console/api/sign-in`                        how to sign in: the issuer's authorization
 *                                                      endpoint, client id, redirect URI; paste allowed?
 * - `POST /console/api/session`                        `{code, code_verifier, redirect_uri}` of the
 *                                                      authorization-code flow with PKCE → the broker
 *                                                      redeems the code at the issuer (server side: the
 *                                                      page may connect to the broker only) and exchanges
 *                                                      the issuer's token at POST /v1/token → a Baton token
 * - `GET  /console/api/me`                             who the bearer is (roles decide which pages work)
 *
 * Every response under /console carries a strict Content-Security-Policy (no inline script or
 * style), nosniff, no referrer and no framing. No token is ever put in a URL: the page keeps the
 * Baton token in sessionStorage and sends it as `Authorization: Bearer`; the only URL parameter
 * of the flow is the one-time code (with PKCE, useless without the page's verifier).
 */
import type { FastifyInstance, FastifyReply } from 'fastify';
import { z } from 'zod';
import { BatonError } from '../../errors.ts';
import { authenticateRequest, type BearerDeps } from '../bearer.ts';
import type { ConsoleAssets } from './assets.ts';

/** The console's Content-Security-Policy: its own script, style and API only. */
export const CONSOLE_CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/** The issuer the console signs in with. */
export interface ConsoleSignIn {
  issuer: string;
  clientId: string;
  clientSecret?: string;
  scope: string;
  subjectToken: 'access_token' | 'id_token';
}

export interface ConsoleRouteDeps {
  /** The built page, or undefined (not built: /console answers 503 saying so). */
  assets: ConsoleAssets | undefined;
  bearer: BearerDeps;
  /** The broker's public URL: the redirect URI is `<url>/console/callback`. */
  url: string;
  /** Sign-in through an OIDC issuer (authorization code + PKCE); absent: no OIDC sign-in. */
  signIn?: ConsoleSignIn;
  /** Dev mode: a pasted Baton token is accepted as the session. */
  allowPaste: boolean;
  fetch?: typeof fetch;
}

const SessionRequest = z.strictObject({
  code: z.string().min(1).max(2048),
  code_verifier: z.string().regex(/^[A-Za-z0-9._~-]{43,128}$/),
  redirect_uri: z.string().url(),
});

interface Discovery {
  authorization_endpoint: string;
  token_endpoint: string;
}

/**
 * The plugin the broker passes in `BrokerDeps.plugins`.
 *
 * @example
 * consoleRoutes({ assets: loadConsoleAssets(), bearer, url, allowPaste: config.mode === 'dev', signIn })
 */
export function consoleRoutes(deps: ConsoleRouteDeps): (app: FastifyInstance) => Promise<void> {
  const doFetch = deps.fetch ?? fetch;
  const redirectUri = `${deps.url.replace(/\/$/, '')}/console/callback`;
  let discovery: Promise<Discovery> | undefined;

  /** The issuer's endpoints (OpenID Connect Discovery 1.0 §4), fetched once; a failure is retried next time. */
  function discover(signIn: ConsoleSignIn): Promise<Discovery> {
    discovery ??= (async () => {
      const res = await doFetch(`${signIn.issuer.replace(/\/$/, '')}/.well-known/openid-configuration`, { signal: AbortSignal.timeout(5_000) });
      if (!res.ok) throw new Error(`discovery answered ${res.status}`);
      const doc = (await res.json()) as Partial<Discovery>;
      if (typeof doc.authorization_endpoint !== 'string' || typeof doc.token_endpoint !== 'string') throw new Error('discovery names no authorization or token endpoint');
      return { authorization_endpoint: doc.authorization_endpoint, token_endpoint: doc.token_endpoint };
    })().catch((err: Error) => {
      discovery = undefined;
      throw new BatonError('BATON_ERR_OIDC_JWKS_UNAVAILABLE', 'the sign-in issuer cannot be reached; retry later', { detail: err.message });
    });
    return discovery;
  }

  const page = (reply: FastifyReply) => {
    if (!deps.assets) throw new BatonError('BATON_ERR_NOT_FOUND', 'the console is not built: run `npm run build`');
    return reply.type('text/html; charset=utf-8').header('cache-control', 'no-cache').send(deps.assets.index);
  };

  return async (app) => {
    await app.register(async (scoped) => {
      scoped.addHook('onSend', async (_request, reply, payload) => {
        reply
          .header('content-security-policy', CONSOLE_CSP)
          .header('x-content-type-options', 'nosniff')
          .header('referrer-policy', 'no-referrer')
          .header('x-frame-options', 'DENY')
          .header('cross-origin-opener-policy', 'same-origin');
        return payload;
      });

      scoped.get('/console', async (_request, reply) => page(reply));
      // the code arrives here; the page reads it, removes it from the address bar and redeems it
      scoped.get('/console/callback', async (_request, reply) => page(reply));

      scoped.get<{ Params: { file: string } }>('/console/assets/:file', async (request, reply) => {
        const asset = deps.assets?.files.get(request.params.file);
        if (!asset) throw new BatonError('BATON_ERR_NOT_FOUND', 'no such console asset');
        reply.type(asset.type).header('cache-control', asset.immutable ? 'public, max-age=31536000, immutable' : 'no-cache');
        return reply.send(asset.body);
      });

      scoped.get('/console/api/sign-in', async (_request, reply) => {
        reply.header('cache-control', 'no-store');
        const signIn = deps.signIn;
        const oidc = signIn
          ? { issuer: signIn.issuer, authorizationEndpoint: (await discover(signIn)).authorization_endpoint, clientId: signIn.clientId, scope: signIn.scope, redirectUri }
          : null;
        return { oidc, paste: deps.allowPaste };
      });

      scoped.post('/console/api/session', async (request, reply) => {
        reply.header('cache-control', 'no-store').header('pragma', 'no-cache');
        const signIn = deps.signIn;
        if (!signIn) throw new BatonError('BATON_ERR_NOT_FOUND', 'the console has no OIDC sign-in configured (console.oidc)');
        const parsed = SessionRequest.safeParse(request.body ?? {});
        if (!parsed.success) throw new BatonError('BATON_ERR_INVALID_REQUEST', `invalid sign-in: ${[...new Set(parsed.error.issues.map((i) => i.path.join('.')))].join(', ')}`);
        if (parsed.data.redirect_uri !== redirectUri) throw new BatonError('BATON_ERR_INVALID_REQUEST', 'invalid sign-in: redirect_uri is not this console\'s');
        // RFC 6749 §4.1.3 with RFC 7636 §4.5: the code and the page's verifier, at the issuer's token endpoint
        const { token_endpoint } = await discover(signIn);
        const form = new URLSearchParams({
          grant_type: 'authorization_code',
          code: parsed.data.code,
          redirect_uri: redirectUri,
          client_id: signIn.clientId,
          code_verifier: parsed.data.code_verifier,
          ...(signIn.clientSecret ? { client_secret: signIn.clientSecret } : {}),
        });
        let issued: Record<string, unknown>;
        try {
          const res = await doFetch(token_endpoint, { method: 'POST', body: form, headers: { accept: 'application/json' }, signal: AbortSignal.timeout(10_000) });
          issued = (await res.json()) as Record<string, unknown>;
          if (!res.ok) throw new BatonError('BATON_ERR_OIDC_INVALID', 'the issuer refused the sign-in code', { detail: `${res.status} ${String(issued.error ?? '')}: ${String(issued.error_description ?? '')}` });
        } catch (err) {
          if (err instanceof BatonError) throw err;
          throw new BatonError('BATON_ERR_OIDC_JWKS_UNAVAILABLE', 'the sign-in issuer cannot be reached; retry later', { detail: (err as Error).message });
        }
        const subjectToken = issued[signIn.subjectToken];
        if (typeof subjectToken !== 'string') throw new BatonError('BATON_ERR_OIDC_INVALID', `the issuer returned no ${signIn.subjectToken}`);
        // RFC 8693 at our own /v1/token: the same checks, policy, rate limits and audit as any exchange
        const exchanged = await app.inject({
          method: 'POST',
          url: '/v1/token',
          headers: { 'content-type': 'application/x-www-form-urlencoded' },
          payload: new URLSearchParams({
            grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
            subject_token: subjectToken,
            subject_token_type: signIn.subjectToken === 'id_token' ? 'urn:ietf:params:oauth:token-type:id_token' : 'urn:ietf:params:oauth:token-type:jwt',
          }).toString(),
        });
        const body = exchanged.json() as Record<string, unknown>;
        if (exchanged.statusCode !== 200) {
          return reply
            .status(exchanged.statusCode)
            .type('application/problem+json')
            .send({ type: `https://baton.dev/errors/${String(body.code)}`, title: String(body.error_description ?? 'the token exchange was refused'), status: exchanged.statusCode, code: body.code });
        }
        return { access_token: body.access_token, token_type: body.token_type, expires_in: body.expires_in };
      });

      scoped.get('/console/api/me', async (request, reply) => {
        reply.header('cache-control', 'no-store');
        const caller = authenticateRequest(request, deps.bearer);
        const root = caller.lineage[0];
        return {
          subject: root?.subject ?? null,
          agent: root?.agent ?? null,
          tokenId: caller.tokenId ?? null,
          depth: caller.lineage.length - 1,
          roles: root?.roles ?? [],
          admin: caller.isAdmin,
          approver: caller.isApprover,
          expiresAt: caller.effective.expiresAt ?? null,
        };
      });
    });
  };
}
