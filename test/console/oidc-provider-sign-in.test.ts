/**
 * The console's OIDC sign-in against a real third-party OpenID provider (panva/oidc-provider), not
 * the project's own dev issuer: headless Chromium (playwright-core, as test/console/console.test.ts)
 * opens /console, is sent to the provider's authorization endpoint (found by discovery) with an S256
 * challenge, signs in and consents on the provider's own pages, comes back to /console/callback with
 * the code, and the page posts {code, code_verifier, redirect_uri} to POST /console/api/session; the
 * broker redeems the code at the provider's token endpoint (a confidential client, PKCE required)
 * and exchanges the provider's JWT access token (aud = the broker, `groups` claim) at /v1/token.
 *
 * Asserts: signed in as the provider's subject with the admin role from its groups; the exchange is
 * audited; a code redeemed with a wrong verifier is refused by the provider (and the right one then
 * works); a code the page did not ask for is not redeemed by the page; no token in any URL the
 * browser requested, and no CSP violation.
 */
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EVENT_FROM } from '../../src/audit/rows.ts';
import { freePort } from '../../src/util/free-port.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { BROKER_AUDIENCE, signingJwk, startCodeFlowProvider, type CodeFlowProvider } from '../oidc/provider.ts';

const CHROMIUM = process.env.BATON_CHROMIUM ?? '/usr/bin/chromium';
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const CLIENT_ID = 'baton-console-sso';
const CLIENT_SECRET = 'console-secret-0123456789abcdef0123456789abcdef';
const SCOPE = 'openid baton';
const SUBJECT = 'ops-root';

let provider: CodeFlowProvider;
let broker: TestBroker;
let brokerUrl: string;
let browser: Browser;
let context: BrowserContext;
let page: Page;
const requested: string[] = [];
const consoleMessages: string[] = [];
/** Every Baton token the tests obtained (none may appear in a URL). */
const tokens: string[] = [];

const callback = () => `${brokerUrl}/console/callback`;
const session = (body: Record<string, string>) =>
  fetch(`${brokerUrl}/console/api/session`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
const exchangesAllowed = async (subject: string): Promise<number> =>
  (
    await broker.db.pool.query(
      `SELECT count(*)::int AS n FROM ${EVENT_FROM} WHERE e.action = 'token.exchange' AND e.decision = 'allow' AND coalesce(e.lineage, l.lineage)->0->>'subject' = $1 AND coalesce(e.lineage, l.lineage)->0->>'issuer' = $2`,
      [subject, provider.issuer],
    )
  ).rows[0].n as number;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set BATON_CHROMIUM)`);
  // the redirect URI is registered at the provider before the broker starts: fix the broker's port
  const port = await freePort();
  brokerUrl = `http://127.0.0.1:${port}`;
  provider = await startCodeFlowProvider(await signingJwk('RS256', 'sso-1'), {
    clientId: CLIENT_ID,
    clientSecret: CLIENT_SECRET,
    redirectUri: `${brokerUrl}/console/callback`,
    accounts: { [SUBJECT]: ['admins'] },
  });
  broker = await startTestBroker('console_oidcp', {
    broker: { port },
    oidc: { issuers: [{ issuer: provider.issuer, audiences: [BROKER_AUDIENCE], algorithms: ['RS256'] }] },
    console: { oidc: { issuer: provider.issuer, clientId: CLIENT_ID, clientSecret: CLIENT_SECRET, scope: SCOPE, subjectToken: 'access_token' } },
  });
  expect(broker.url).toBe(brokerUrl);

  browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: CHROMIUM_ARGS });
  context = await browser.newContext({ viewport: { width: 1280, height: 860 } });
  // the provider's built-in pages @import a web font; the test machine has no internet
  await context.route(/^https:\/\/fonts\.googleapis\.com\//, (route) => route.abort());
  context.on('request', (r) => requested.push(r.url()));
  page = await context.newPage();
  page.on('console', (m) => consoleMessages.push(`${m.type()}: ${m.text()}`));
}, 60_000);

afterAll(async () => {
  await context?.close();
  await browser?.close();
  await broker?.stop();
  await provider?.close();
});

describe('console sign-in through a third-party OpenID provider (oidc-provider)', () => {
  it('signs in with the authorization code and PKCE on the provider\'s own login and consent pages', async () => {
    const offered = (await (await fetch(`${brokerUrl}/console/api/sign-in`)).json()) as { oidc: Record<string, string> };
    expect(offered.oidc).toEqual({ issuer: provider.issuer, authorizationEndpoint: `${provider.issuer}/auth`, clientId: CLIENT_ID, scope: SCOPE, redirectUri: callback() });

    await page.goto(`${brokerUrl}/console`);
    expect(await page.locator('main').textContent()).toContain(provider.issuer);
    await page.getByRole('button', { name: 'Sign in with your identity provider' }).click();
    // the provider's login page (its interaction, behind the authorization endpoint)
    await page.waitForURL((u) => u.href.startsWith(`${provider.issuer}/interaction/`));
    const authorize = new URL(requested.find((u) => u.startsWith(`${provider.issuer}/auth?`))!);
    expect(Object.fromEntries(authorize.searchParams)).toMatchObject({ response_type: 'code', client_id: CLIENT_ID, redirect_uri: callback(), scope: SCOPE, code_challenge_method: 'S256' });
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(authorize.searchParams.get('state')).toBeTruthy();
    await page.locator('input[name=login]').fill(SUBJECT);
    await page.locator('input[name=password]').fill('any password');
    await page.getByRole('button', { name: 'Sign-in' }).click();
    // its consent page
    await page.getByRole('button', { name: 'Continue' }).click();

    await expect.poll(() => page.locator('#who').textContent(), { timeout: 10_000 }).toContain(`Signed in as ${SUBJECT}`);
    expect(page.url()).toMatch(new RegExp(`^${brokerUrl}/console(#/tree)?$`)); // the code left the address bar
    expect(requested.some((u) => u.startsWith(`${callback()}?code=`))).toBe(true);
    // the code was redeemed by the broker, server side: the browser never spoke to the token endpoint
    expect(provider.requests).toContain('/token');
    expect(requested.filter((u) => u.startsWith(`${provider.issuer}/token`))).toEqual([]);

    const token = (await page.evaluate(() => sessionStorage.getItem('baton.console.token')))!;
    expect(token).toBeTruthy();
    tokens.push(token);
    const me = (await (await fetch(`${brokerUrl}/console/api/me`, { headers: { authorization: `Bearer ${token}` } })).json()) as Record<string, unknown>;
    // subject from the provider's `sub`, agent from its `client_id`, roles from its `groups` (admins)
    expect(me).toMatchObject({ subject: SUBJECT, agent: CLIENT_ID, depth: 0, admin: true, approver: true });
    // the exchange is audited like any other, naming the provider as the issuer
    const { rows } = await broker.db.pool.query(
      `SELECT coalesce(e.lineage, l.lineage)->0->>'issuer' AS issuer, coalesce(e.lineage, l.lineage)->0->>'agent' AS agent, e.reason FROM ${EVENT_FROM} WHERE e.action = 'token.exchange' AND e.decision = 'allow' AND e.token_id = $1`,
      [me.tokenId],
    );
    expect(rows).toEqual([{ issuer: provider.issuer, agent: CLIENT_ID, reason: expect.stringContaining('admins') }]);
  });

  it('refuses a code redeemed with a wrong code_verifier; a code the page did not ask for is not redeemed by the page', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => page.getByRole('heading', { name: 'Sign in' }).count()).toBe(1);
    // a flow the page did not start: the provider (session and consent already there) answers at once
    const verifier = randomBytes(32).toString('base64url');
    const q = new URLSearchParams({
      response_type: 'code',
      client_id: CLIENT_ID,
      redirect_uri: callback(),
      scope: SCOPE,
      state: 'not-the-page-s',
      code_challenge: createHash('sha256').update(verifier).digest('base64url'),
      code_challenge_method: 'S256',
    });
    const [back] = await Promise.all([page.waitForRequest((r) => r.url().startsWith(`${callback()}?`)), page.goto(`${provider.issuer}/auth?${q}`)]);
    const code = new URL(back.url()).searchParams.get('code')!;
    expect(code).toBeTruthy();
    // the page sees a response it did not ask for (state) and redeems nothing
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('does not belong to a sign-in started here');
    expect(page.url()).toBe(`${brokerUrl}/console`);

    const before = await exchangesAllowed(SUBJECT);
    const wrong = await session({ code, code_verifier: randomBytes(32).toString('base64url'), redirect_uri: callback() });
    expect(wrong.status).toBe(400);
    expect(wrong.headers.get('cache-control')).toBe('no-store');
    expect((await wrong.json()) as Record<string, unknown>).toMatchObject({ code: 'BATON_ERR_OIDC_INVALID', title: 'the issuer refused the sign-in code' });
    expect(await exchangesAllowed(SUBJECT)).toBe(before); // nothing was exchanged
    // the same code with its verifier: accepted (the refusal was the verifier's), then used up
    const right = await session({ code, code_verifier: verifier, redirect_uri: callback() });
    expect(right.status).toBe(200);
    tokens.push(((await right.json()) as { access_token: string }).access_token);
    expect(await exchangesAllowed(SUBJECT)).toBe(before + 1);
    expect((await session({ code, code_verifier: verifier, redirect_uri: callback() })).status).toBe(400);
  });

  it('never put a token in a URL the browser requested, and the console\'s CSP reported no violation', () => {
    expect(tokens.length).toBe(2);
    expect(requested.length).toBeGreaterThan(5);
    for (const url of requested) {
      expect(url).not.toMatch(/[?&#](access_token|id_token|token)=/);
      for (const token of tokens) expect(url).not.toContain(token.slice(0, 40));
    }
    expect(consoleMessages.filter((m) => /Content Security Policy|Refused to/i.test(m))).toEqual([]);
  });
});
