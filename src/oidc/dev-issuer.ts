/**
 * DEV ONLY — a built-in OIDC issuer so `baton dev` works without an identity provider.
 *
 * Anyone who can reach `POST <prefix>/token` can mint a token for any subject: that is the point in
 * development and a complete authentication bypass anywhere else. Constructing it (or minting through
 * it) with NODE_ENV=production throws.
 *
 * It signs with one ES256 (default) or EdDSA key, generated at start or kept in `<dataDir>/dev-oidc-key.json`
 * (mode 0600) so tokens survive restarts and `baton dev-token` can mint offline with the same key.
 */
import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { link, mkdir, readFile, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { fastifyFormbody } from '@fastify/formbody';
import type { FastifyPluginAsync } from 'fastify';
import {
  calculateJwkThumbprint,
  exportJWK,
  generateKeyPair,
  importJWK,
  SignJWT,
  type CryptoKey,
  type JSONWebKeySet,
  type JWK,
} from 'jose';
import { z } from 'zod';
import { BatonError } from '../errors.ts';

/** Signing algorithms the dev issuer can use. */
export type DevIssuerAlgorithm = 'ES256' | 'EdDSA';

/** File name of the persisted signing key inside `dataDir`. */
export const DEV_ISSUER_KEY_FILE = 'dev-oidc-key.json';

const DEV_DEFAULTS = {
  alg: 'ES256' as DevIssuerAlgorithm,
  audience: 'baton',
  ttlSeconds: 600,
  maxTtlSeconds: 24 * 60 * 60,
};

/** How to build a dev issuer. */
export interface DevIssuerOptions {
  /**
   * The issuer URL, which must be where the plugin is mounted: `http://127.0.0.1:<port>/dev/oidc`.
   * A function is read on every use, so a server listening on port 0 can supply it after `listen()`.
   */
  issuer: string | (() => string);
  /** Directory holding the signing key (created 0700; key file 0600). Absent: an in-memory key. */
  dataDir?: string;
  /** Default `ES256`. Ignored when a persisted key exists (its own `alg` wins). */
  alg?: DevIssuerAlgorithm;
  /** `aud` of tokens whose request names none. Default `baton`. */
  audience?: string;
  /** Lifetime when a request names none. Default 600 s. */
  defaultTtlSeconds?: number;
  /** Upper bound on a requested lifetime. Default 24 h. */
  maxTtlSeconds?: number;
}

/** What a token request may contain (JSON or form body of `POST <prefix>/token`). */
export interface DevTokenRequest {
  sub: string;
  /** Array, or one comma-separated string (`"ops,db-readers"`). */
  groups?: string[] | string;
  /** The agent; written to both `client_id` and `azp`. `azp` is accepted as an alias. */
  client_id?: string;
  azp?: string;
  aud?: string | string[];
  /** Lifetime in seconds. */
  ttl?: number | string;
}

/** Response of `POST <prefix>/token` and of {@link DevIssuer.mint}: an OAuth 2.0 token response (RFC 6749 §5.1). */
export interface DevTokenResponse {
  /** The signed JWT. */
  access_token: string;
  token_type: 'Bearer';
  expires_in: number;
}

/** A running dev issuer. */
export interface DevIssuer {
  /** The issuer URL (resolved now). */
  readonly issuer: string;
  /** The signing algorithm in use. */
  readonly alg: DevIssuerAlgorithm;
  /**
   * Fastify plugin with `GET /.well-known/openid-configuration`, `GET /jwks.json`, `POST /token`,
   * and `GET /authorize` (the authorization-code flow with PKCE, for the console's sign-in: a
   * form that asks whom to mint for). Register it with the prefix that matches the issuer URL's path.
   */
  readonly plugin: FastifyPluginAsync;
  /** The public key set served at `jwks.json`. */
  jwks(): JSONWebKeySet;
  /** Mint a token in-process (same validation as the HTTP endpoint). */
  mint(request: DevTokenRequest): Promise<DevTokenResponse>;
}

const nonEmpty = z.string().trim().min(1).max(256);

function tokenRequestSchema(maxTtl: number) {
  return z
    .strictObject({
      sub: nonEmpty,
      groups: z
        .union([z.array(nonEmpty), z.string()])
        .transform((g) => (typeof g === 'string' ? g.split(',').map((s) => s.trim()).filter(Boolean) : g))
        .optional(),
      client_id: nonEmpty.optional(),
      azp: nonEmpty.optional(),
      aud: z.union([nonEmpty, z.array(nonEmpty).min(1)]).optional(),
      // Form bodies carry numbers as strings.
      ttl: z.coerce.number().int().min(1).max(maxTtl).optional(),
    })
    .refine((r) => !(r.client_id && r.azp && r.client_id !== r.azp), {
      error: 'client_id and azp name different agents',
    });
}

/**
 * Start a dev issuer (loads or creates its key).
 *
 * @throws Error when NODE_ENV=production, or when the persisted key file is unreadable or too open.
 * @example
 * ```ts
 * const dev = await createDevIssuer({ issuer: () => `http://127.0.0.1:${port}/dev/oidc`, dataDir: '.baton' });
 * await app.register(dev.plugin, { prefix: '/dev/oidc' });
 * ```
 */
export async function createDevIssuer(options: DevIssuerOptions): Promise<DevIssuer> {
  refuseProduction();
  const resolveIssuer = typeof options.issuer === 'function' ? options.issuer : () => options.issuer as string;
  const issuerNow = (): string => {
    const value = resolveIssuer();
    if (!URL.canParse(value)) throw new TypeError(`dev issuer URL is not a URL: ${value}`);
    return value.replace(/\/$/, '');
  };
  if (typeof options.issuer === 'string') issuerNow(); // fail fast on a bad literal

  const audience = options.audience ?? DEV_DEFAULTS.audience;
  const defaultTtl = options.defaultTtlSeconds ?? DEV_DEFAULTS.ttlSeconds;
  const maxTtl = options.maxTtlSeconds ?? DEV_DEFAULTS.maxTtlSeconds;
  const key = await loadOrCreateKey(options.dataDir, options.alg ?? DEV_DEFAULTS.alg);
  const jwks: JSONWebKeySet = { keys: [key.publicJwk] };
  const requestSchema = tokenRequestSchema(maxTtl);
  const codes = authorizationCodes();

  async function mint(request: DevTokenRequest): Promise<DevTokenResponse> {
    refuseProduction();
    const parsed = requestSchema.safeParse(request);
    if (!parsed.success) {
      throw new BatonError('BATON_ERR_INVALID_REQUEST', `invalid dev token request: ${z.prettifyError(parsed.error).replace(/\n\s*/g, ' ')}`);
    }
    const r = parsed.data;
    const agent = r.client_id ?? r.azp;
    const ttl = r.ttl ?? defaultTtl;
    const claims = {
      ...(r.groups ? { groups: r.groups } : {}),
      ...(agent ? { client_id: agent, azp: agent } : {}),
    };
    const accessToken = await new SignJWT(claims)
      .setProtectedHeader({ alg: key.alg, kid: key.kid, typ: 'JWT' })
      .setIssuer(issuerNow())
      .setSubject(r.sub)
      .setAudience(r.aud ?? audience)
      .setIssuedAt()
      .setExpirationTime(`${ttl}s`)
      .setJti(randomUUID())
      .sign(key.privateKey);
    return { access_token: accessToken, token_type: 'Bearer', expires_in: ttl };
  }

  const plugin: FastifyPluginAsync = async (app) => {
    // Encapsulated: the form parser exists only under this plugin's prefix unless the app has one.
    if (!app.hasContentTypeParser('application/x-www-form-urlencoded')) await app.register(fastifyFormbody);

    app.get('/.well-known/openid-configuration', async () => {
      const issuer = issuerNow();
      return {
        issuer,
        jwks_uri: `${issuer}/jwks.json`,
        token_endpoint: `${issuer}/token`,
        authorization_endpoint: `${issuer}/authorize`,
        grant_types_supported: ['client_credentials', 'authorization_code'],
        response_types_supported: ['token', 'code'],
        code_challenge_methods_supported: ['S256'],
        subject_types_supported: ['public'],
        id_token_signing_alg_values_supported: [key.alg],
        token_endpoint_auth_methods_supported: ['none'],
        claims_supported: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'groups', 'client_id', 'azp'],
      };
    });

    app.get('/jwks.json', async (_req, reply) => {
      reply.header('content-type', 'application/jwk-set+json');
      return jwks;
    });

    // GET only: the form submits back here with `sub` and `groups` added (no POST to document or guard)
    app.get('/authorize', async (req, reply) => {
      const query = (req.query ?? {}) as Record<string, unknown>;
      const { sub, groups, ...rest } = query;
      const parsed = authorizeRequestSchema.safeParse(rest);
      if (!parsed.success || !sameOrigin(parsed.data.redirect_uri, issuerNow())) return authorizeRefusal(reply, parsed.success ? 'redirect_uri must be on the issuer\'s own origin' : z.prettifyError(parsed.error));
      if (sub === undefined) return sendAuthorizePage(reply, parsed.data, `${new URL(issuerNow()).pathname}/authorize`);
      const who = requestSchema.safeParse({ sub, ...(typeof groups === 'string' && groups.trim() ? { groups } : {}), client_id: parsed.data.client_id });
      if (!who.success) return authorizeRefusal(reply, z.prettifyError(who.error));
      const code = codes.issue({ ...parsed.data, request: { sub: who.data.sub, ...(who.data.groups ? { groups: who.data.groups } : {}), client_id: parsed.data.client_id } });
      const target = new URL(parsed.data.redirect_uri);
      target.searchParams.set('code', code);
      if (parsed.data.state !== undefined) target.searchParams.set('state', parsed.data.state);
      reply.header('cache-control', 'no-store').header('referrer-policy', 'no-referrer');
      return reply.redirect(target.toString(), 303);
    });

    app.post('/token', async (req, reply) => {
      reply.header('cache-control', 'no-store');
      try {
        const body = (req.body ?? {}) as Record<string, unknown>;
        if (body.grant_type === 'authorization_code') return await mint(codes.redeem(body));
        return await mint(body as unknown as DevTokenRequest);
      } catch (err) {
        if (!(err instanceof BatonError)) throw err;
        // RFC 6749 §5.2 error shape, plus Baton's stable code.
        return reply.code(err.http).send({ error: err.oauth, error_description: err.message, code: err.code });
      }
    });
  };

  return {
    get issuer() {
      return issuerNow();
    },
    alg: key.alg,
    plugin,
    jwks: () => structuredClone(jwks),
    mint,
  };
}

/**
 * Mint a dev token in-process with the key persisted in `dataDir` (for `baton dev-token`), so it
 * verifies against a running `baton dev` that uses the same data directory and issuer URL.
 *
 * @example
 * ```ts
 * const { access_token } = await mintDevToken(
 *   { issuer: 'http://127.0.0.1:8080/dev/oidc', dataDir: '.baton' },
 *   { sub: 'alice@example.com', groups: ['analysts'], client_id: 'planner' },
 * );
 * ```
 */
export async function mintDevToken(
  options: DevIssuerOptions & { dataDir: string },
  request: DevTokenRequest,
): Promise<DevTokenResponse> {
  return (await createDevIssuer(options)).mint(request);
}

/** An authorization request (RFC 6749 §4.1.1) with PKCE (RFC 7636 §4.3): S256 only. */
const authorizeRequestSchema = z.strictObject({
  response_type: z.literal('code'),
  client_id: nonEmpty,
  redirect_uri: z.url({ protocol: /^https?$/ }),
  state: z.string().max(512).optional(),
  scope: z.string().max(512).optional(),
  code_challenge: z.string().regex(/^[A-Za-z0-9_-]{43,128}$/),
  code_challenge_method: z.literal('S256'),
});
type AuthorizeRequest = z.infer<typeof authorizeRequestSchema>;

/** The dev issuer's codes: random, single-use, 60 s, bound to client, redirect URI and challenge. */
function authorizationCodes() {
  const TTL_MS = 60_000;
  const pending = new Map<string, AuthorizeRequest & { request: DevTokenRequest; expiresAt: number }>();
  const invalidGrant = (why: string) => new BatonError('BATON_ERR_INVALID_REQUEST', `invalid authorization code grant: ${why}`);
  return {
    issue(grant: AuthorizeRequest & { request: DevTokenRequest }): string {
      const now = Date.now();
      for (const [c, g] of pending) if (g.expiresAt <= now) pending.delete(c);
      const code = randomBytes(32).toString('base64url');
      pending.set(code, { ...grant, expiresAt: now + TTL_MS });
      return code;
    },
    /** The token request of a valid code (RFC 6749 §4.1.3, RFC 7636 §4.6); the code is spent either way. */
    redeem(body: Record<string, unknown>): DevTokenRequest {
      const code = typeof body.code === 'string' ? body.code : '';
      const grant = pending.get(code);
      pending.delete(code);
      if (!grant || grant.expiresAt <= Date.now()) throw invalidGrant('unknown, used or expired code');
      if (body.client_id !== grant.client_id || body.redirect_uri !== grant.redirect_uri) throw invalidGrant('client_id or redirect_uri differ from the authorization request');
      const verifier = typeof body.code_verifier === 'string' ? body.code_verifier : '';
      if (!/^[A-Za-z0-9._~-]{43,128}$/.test(verifier)) throw invalidGrant('code_verifier missing or malformed');
      const computed = Buffer.from(createHash('sha256').update(verifier).digest('base64url'));
      const expected = Buffer.from(grant.code_challenge);
      if (computed.length !== expected.length || !timingSafeEqual(computed, expected)) throw invalidGrant('code_verifier does not match the code_challenge');
      return grant.request;
    },
  };
}

function sameOrigin(url: string, issuer: string): boolean {
  return URL.canParse(url) && new URL(url).origin === new URL(issuer).origin;
}

const html = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Pages of the dev sign-in: no script, no style, no framing, forms posted only back here. */
function devPageHeaders(reply: import('fastify').FastifyReply): void {
  reply
    .header('content-type', 'text/html; charset=utf-8')
    .header('cache-control', 'no-store')
    .header('content-security-policy', "default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
    .header('x-content-type-options', 'nosniff')
    .header('referrer-policy', 'no-referrer');
}

function authorizeRefusal(reply: import('fastify').FastifyReply, why: string) {
  devPageHeaders(reply);
  return reply.code(400).send(`<!doctype html><title>Invalid sign-in request</title><h1>Invalid sign-in request</h1><p>${html(why)}</p>`);
}

function sendAuthorizePage(reply: import('fastify').FastifyReply, req: AuthorizeRequest, action: string) {
  devPageHeaders(reply);
  const hidden = Object.entries(req)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => `<input type="hidden" name="${html(k)}" value="${html(String(v))}">`)
    .join('');
  return reply.send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1"><title>Baton dev sign-in</title></head>
<body>
<main>
<h1>Baton DEV MODE sign-in</h1>
<p><strong>This development issuer signs a token for whoever you type. Never expose it.</strong></p>
<p>Signing in to <code>${html(req.client_id)}</code>.</p>
<form method="get" action="${html(action)}">${hidden}
<p><label for="sub">Subject</label><br><input id="sub" name="sub" required autocomplete="username" value=""></p>
<p><label for="groups">Groups (comma-separated)</label><br><input id="groups" name="groups" value="admins"></p>
<p><button type="submit">Sign in</button></p>
</form>
</main>
</body></html>`);
}

function refuseProduction(): void {
  if (process.env.NODE_ENV === 'production') {
    throw new Error(
      'the built-in dev OIDC issuer mints tokens for anyone and is disabled when NODE_ENV=production; configure a real issuer',
    );
  }
}

interface SigningKey {
  alg: DevIssuerAlgorithm;
  kid: string;
  privateKey: CryptoKey;
  publicJwk: JWK;
}

async function loadOrCreateKey(dataDir: string | undefined, alg: DevIssuerAlgorithm): Promise<SigningKey> {
  if (!dataDir) return fromPrivateJwk(await generatePrivateJwk(alg));
  const file = join(dataDir, DEV_ISSUER_KEY_FILE);
  try {
    return await readKeyFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  await mkdir(dataDir, { recursive: true, mode: 0o700 });
  const jwk = await generatePrivateJwk(alg);
  // Write a temp file, then hard-link it into place: the key file appears complete or not at all,
  // and if another process won the race (EEXIST) we use its key instead of overwriting it.
  const tmp = `${file}.${process.pid}.${randomUUID()}.tmp`;
  await writeFile(tmp, `${JSON.stringify(jwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
  try {
    await link(tmp, file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    return readKeyFile(file);
  } finally {
    await unlink(tmp);
  }
  return fromPrivateJwk(jwk);
}

async function readKeyFile(file: string): Promise<SigningKey> {
  const { mode } = await stat(file);
  if (mode & 0o077) {
    throw new Error(`refusing dev issuer key ${file}: permissions ${(mode & 0o777).toString(8)} are too open (need 600)`);
  }
  let jwk: JWK;
  try {
    jwk = JSON.parse(await readFile(file, 'utf8')) as JWK;
  } catch (err) {
    throw new Error(`dev issuer key ${file} is not valid JSON`, { cause: err });
  }
  if (jwk.alg !== 'ES256' && jwk.alg !== 'EdDSA') {
    throw new Error(`dev issuer key ${file} has unsupported alg ${String(jwk.alg)}`);
  }
  return fromPrivateJwk(jwk);
}

async function generatePrivateJwk(alg: DevIssuerAlgorithm): Promise<JWK> {
  const { privateKey } = await generateKeyPair(alg, { extractable: true });
  const jwk = await exportJWK(privateKey);
  // The RFC 7638 thumbprint is a stable, content-derived kid.
  return { ...jwk, alg, use: 'sig', kid: await calculateJwkThumbprint(jwk) };
}

async function fromPrivateJwk(jwk: JWK): Promise<SigningKey> {
  const alg = jwk.alg as DevIssuerAlgorithm;
  const privateKey = (await importJWK(jwk, alg)) as CryptoKey;
  const { d: _d, ...publicPart } = jwk; // EC and OKP private JWKs differ from the public one only by `d`
  const kid = jwk.kid ?? (await calculateJwkThumbprint(publicPart));
  return { alg, kid, privateKey, publicJwk: { ...publicPart, kid, alg, use: 'sig' } };
}
