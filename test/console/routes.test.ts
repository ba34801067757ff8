/**
 * The console's server side without a browser: the sign-in redeems an authorization code at the
 * issuer and exchanges the result at /v1/token (audited like any exchange), refuses a foreign
 * redirect URI or a bad code, and the broker refuses a console issuer it does not trust.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startBroker } from '../../src/broker/server.ts';
import { startTestBroker, testBrokerConfig, type TestBroker } from '../helpers/broker.ts';
import { TEST_DATABASE_URL } from '../helpers/database.ts';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker('console_routes');
});
afterAll(async () => broker?.stop());

async function code(verifier: string, sub = 'root', groups = 'admins'): Promise<string> {
  const q = new URLSearchParams({
    response_type: 'code',
    client_id: 'baton-console',
    redirect_uri: `${broker.url}/console/callback`,
    state: 's',
    code_challenge: createHash('sha256').update(verifier).digest('base64url'),
    code_challenge_method: 'S256',
    sub,
    groups,
  });
  const res = await fetch(`${broker.url}/dev/oidc/authorize?${q}`, { redirect: 'manual' });
  return new URL(res.headers.get('location')!).searchParams.get('code')!;
}

const session = (body: Record<string, string>) =>
  fetch(`${broker.url}/console/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });

describe('console sign-in (server side)', () => {
  it('offers the dev issuer and paste in dev mode', async () => {
    const res = await fetch(`${broker.url}/console/api/sign-in`);
    expect(res.headers.get('cache-control')).toBe('no-store');
    expect(await res.json()).toEqual({
      oidc: { issuer: `${broker.url}/dev/oidc`, authorizationEndpoint: `${broker.url}/dev/oidc/authorize`, clientId: 'baton-console', scope: 'openid', redirectUri: `${broker.url}/console/callback` },
      paste: true,
    });
  });

  it('redeems the code with the verifier and returns a Baton token from an audited exchange', async () => {
    const v = randomBytes(32).toString('base64url');
    const res = await session({ code: await code(v), code_verifier: v, redirect_uri: `${broker.url}/console/callback` });
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const { access_token } = (await res.json()) as { access_token: string };
    const me = await (await fetch(`${broker.url}/console/api/me`, { headers: { authorization: `Bearer ${access_token}` } })).json();
    expect(me).toMatchObject({ subject: 'root', agent: 'baton-console', admin: true, approver: true, depth: 0 });
    const { rows } = await broker.db.pool.query(`SELECT count(*)::int AS n FROM audit_events WHERE action = 'token.exchange' AND decision = 'allow'`);
    expect(rows[0].n).toBeGreaterThanOrEqual(1);
  });

  it('refuses a foreign redirect URI, a malformed verifier, a used or unknown code', async () => {
    const v = randomBytes(32).toString('base64url');
    const c = await code(v);
    const foreign = await session({ code: c, code_verifier: v, redirect_uri: 'http://evil.example/console/callback' });
    expect(((await foreign.json()) as { code: string; title: string })).toMatchObject({ code: 'BATON_ERR_INVALID_REQUEST', title: "invalid sign-in: redirect_uri is not this console's" });
    expect(((await (await session({ code: c, code_verifier: 'short', redirect_uri: `${broker.url}/console/callback` })).json()) as { code: string }).code).toBe('BATON_ERR_INVALID_REQUEST');
    const ok = await session({ code: c, code_verifier: v, redirect_uri: `${broker.url}/console/callback` });
    expect(ok.status).toBe(200);
    const again = await session({ code: c, code_verifier: v, redirect_uri: `${broker.url}/console/callback` });
    expect(again.status).toBe(400);
    expect(((await again.json()) as { code: string }).code).toBe('BATON_ERR_OIDC_INVALID');
  });

  it('a token without admin or approver is identified, and the pages would refuse it', async () => {
    const v = randomBytes(32).toString('base64url');
    const res = await session({ code: await code(v, 'alice', 'engineers'), code_verifier: v, redirect_uri: `${broker.url}/console/callback` });
    const { access_token } = (await res.json()) as { access_token: string };
    const me = await (await fetch(`${broker.url}/console/api/me`, { headers: { authorization: `Bearer ${access_token}` } })).json();
    expect(me).toMatchObject({ subject: 'alice', admin: false, approver: false });
    const sessions = await fetch(`${broker.url}/v1/sessions`, { headers: { authorization: `Bearer ${access_token}` } });
    expect(sessions.status).toBe(403);
    expect((await fetch(`${broker.url}/console/api/me`)).status).toBe(401);
  });

  it('refuses to start with a console issuer that is not a trusted OIDC issuer; console.enabled: false serves none', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'baton-console-cfg-'));
    const untrusted = testBrokerConfig(dataDir, TEST_DATABASE_URL, { console: { oidc: { issuer: 'https://idp.example.com', clientId: 'baton-console' } } });
    await expect(startBroker(untrusted)).rejects.toThrow(/console\.oidc\.issuer https:\/\/idp\.example\.com is not one of oidc\.issuers/);
    const off = await startBroker(testBrokerConfig(dataDir, broker.testDb.url, { console: { enabled: false } }));
    try {
      expect((await fetch(`${off.url}/console`)).status).toBe(404);
    } finally {
      await off.close();
    }
  });
});
