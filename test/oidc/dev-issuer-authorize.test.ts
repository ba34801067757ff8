/**
 * The dev issuer's authorization-code flow with PKCE (RFC 6749 §4.1, RFC 7636), which the console
 * signs in through in dev mode: S256 only, redirect URIs on the issuer's own origin, codes single-use
 * and bound to client, redirect URI and challenge.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Fastify, { type FastifyInstance } from 'fastify';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDevIssuer } from '../../src/oidc/dev-issuer.ts';

const PREFIX = '/dev/oidc';
let app: FastifyInstance;
let base = '';
const issuer = () => `${base}${PREFIX}`;

beforeAll(async () => {
  const dev = await createDevIssuer({ issuer });
  app = Fastify();
  await app.register(dev.plugin, { prefix: PREFIX });
  await app.listen({ port: 0, host: '127.0.0.1' });
  base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;
});
afterAll(async () => app?.close());

const verifier = () => randomBytes(32).toString('base64url');
const challenge = (v: string) => createHash('sha256').update(v).digest('base64url');

function authorizeUrl(v: string, extra: Record<string, string> = {}): string {
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: 'baton-console',
    redirect_uri: `${base}/console/callback`,
    state: 'st-1',
    code_challenge: challenge(v),
    code_challenge_method: 'S256',
    ...extra,
  });
  return `${issuer()}/authorize?${q}`;
}

/** The code the form's submission redirects with. */
async function codeFor(v: string, who: Record<string, string> = { sub: 'root', groups: 'admins,ops' }): Promise<string> {
  const res = await fetch(`${authorizeUrl(v)}&${new URLSearchParams(who)}`, { redirect: 'manual' });
  expect(res.status).toBe(303);
  const to = new URL(res.headers.get('location')!);
  expect(`${to.origin}${to.pathname}`).toBe(`${base}/console/callback`);
  expect(to.searchParams.get('state')).toBe('st-1');
  return to.searchParams.get('code')!;
}

function redeem(body: Record<string, string>): Promise<Response> {
  return fetch(`${issuer()}/token`, { method: 'POST', body: new URLSearchParams({ grant_type: 'authorization_code', client_id: 'baton-console', redirect_uri: `${base}/console/callback`, ...body }) });
}

describe('dev issuer: authorization code with PKCE', () => {
  it('advertises the authorization endpoint and S256', async () => {
    const d = (await (await fetch(`${issuer()}/.well-known/openid-configuration`)).json()) as Record<string, unknown>;
    expect(d).toMatchObject({ authorization_endpoint: `${issuer()}/authorize`, code_challenge_methods_supported: ['S256'] });
    expect(d.grant_types_supported).toContain('authorization_code');
  });

  it('asks whom to sign in as on a page without script or style, posting nowhere else', async () => {
    const res = await fetch(authorizeUrl(verifier()));
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBe("default-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'");
    const html = await res.text();
    expect(html).toContain('DEV MODE');
    expect(html).not.toMatch(/<script|style=/);
    expect(html).toContain('name="code_challenge"');
  });

  it('issues a token for the subject and groups typed, to the client, once', async () => {
    const v = verifier();
    const code = await codeFor(v);
    const res = await redeem({ code, code_verifier: v });
    expect(res.status).toBe(200);
    const { access_token } = (await res.json()) as { access_token: string };
    expect(decodeJwt(access_token)).toMatchObject({ iss: issuer(), sub: 'root', groups: ['admins', 'ops'], client_id: 'baton-console', aud: 'baton' });
    // single use
    const again = await redeem({ code, code_verifier: v });
    expect(again.status).toBe(400);
    expect(((await again.json()) as { error_description: string }).error_description).toMatch(/unknown, used or expired code/);
  });

  it('refuses a wrong verifier, another client or redirect URI — and the code is spent by the attempt', async () => {
    const v = verifier();
    const wrong = await redeem({ code: await codeFor(v), code_verifier: verifier() });
    expect(((await wrong.json()) as { error_description: string }).error_description).toMatch(/code_verifier does not match/);
    const code = await codeFor(v);
    const other = await redeem({ code, code_verifier: v, redirect_uri: `${base}/elsewhere` });
    expect(((await other.json()) as { error_description: string }).error_description).toMatch(/client_id or redirect_uri differ/);
    expect((await redeem({ code, code_verifier: v })).status).toBe(400);
    const noVerifier = await redeem({ code: await codeFor(v) });
    expect(((await noVerifier.json()) as { error_description: string }).error_description).toMatch(/code_verifier missing/);
  });

  it('refuses plain PKCE, a missing challenge, and redirect URIs off the issuer\'s origin', async () => {
    const cases: Record<string, string>[] = [{ code_challenge_method: 'plain' }, { code_challenge: '' }, { redirect_uri: 'http://evil.example/console/callback' }, { response_type: 'token' }];
    for (const extra of cases) {
      const res = await fetch(`${authorizeUrl(verifier(), extra)}&sub=root`, { redirect: 'manual' });
      expect(res.status, JSON.stringify(extra)).toBe(400);
      expect(res.headers.get('location')).toBeNull();
    }
  });
});
