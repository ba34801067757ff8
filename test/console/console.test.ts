/**
 * The web console in a real browser (issue 16): Debian's headless Chromium driven by playwright-core
 * against a real `baton dev` (its own embedded PostgreSQL, as a person runs it). Covers sign-in
 * (OIDC authorization code + PKCE through the dev issuer, and a pasted token), the delegation tree of
 * a 3-link chain with its timeline, ending a live session, revoking a node (its subtree turns
 * revoked), approving a held statement (and the server refusing the requester's own approval), and
 * the audit search with histogram, export and chain verification. No token may appear in any URL the
 * browser requests, and the strict CSP must hold (no violation reported).
 *
 * Screenshots of each page are taken every run; with BATON_CONSOLE_SCREENSHOTS=1 they are written to
 * docs/console/ (committed), otherwise to a temporary directory.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CONSOLE_CSP } from '../../src/broker/console/routes.ts';
import { attenuate } from '../../src/token/attenuate.ts';
import { spawnBaton, type BatonProcess } from '../helpers/baton-process.ts';
import { REPO_ROOT } from '../helpers/cli.ts';

const CHROMIUM = process.env.BATON_CHROMIUM ?? '/usr/bin/chromium';
/** Chromium with nothing that reaches out (the test machine has no internet), on a fresh profile. */
const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const shots = process.env.BATON_CONSOLE_SCREENSHOTS === '1' ? join(REPO_ROOT, 'docs/console') : mkdtempSync(join(tmpdir(), 'baton-console-shots-'));

const dataDir = mkdtempSync(join(tmpdir(), 'baton-console-dev-'));
const profile = mkdtempSync(join(tmpdir(), 'baton-console-chromium-'));
let dev: BatonProcess;
let broker: string;
let proxyPort: number;
let context: BrowserContext;
let page: Page;
/** The live session the sessions page ends. */
let liveClient: pg.Client;
const clients: pg.Client[] = [];
/** Every URL the browser asked for, and every console message (CSP violations are reported there). */
const requested: string[] = [];
const consoleMessages: string[] = [];

async function devToken(sub: string, groups: string[], clientId: string): Promise<string> {
  const res = await fetch(`${broker}/dev/oidc/token`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ sub, groups, client_id: clientId }) });
  const body = (await res.json()) as { access_token: string };
  const exchanged = await fetch(`${broker}/v1/token`, {
    method: 'POST',
    body: new URLSearchParams({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: body.access_token, subject_token_type: 'urn:ietf:params:oauth:token-type:jwt' }),
  });
  const t = (await exchanged.json()) as { access_token: string };
  if (!exchanged.ok) throw new Error(`exchange: ${JSON.stringify(t)}`);
  return t.access_token;
}

async function connect(token: string): Promise<pg.Client> {
  const c = new pg.Client({ host: '127.0.0.1', port: proxyPort, user: 'agent', database: 'appdb', password: token });
  c.on('error', () => {});
  await c.connect();
  clients.push(c);
  return c;
}

async function failure(p: Promise<unknown>): Promise<{ code?: string; message: string } | undefined> {
  try {
    await p;
    return undefined;
  } catch (e) {
    return e as { code?: string; message: string };
  }
}

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

/** The family of tokens the tests build, named once. */
const chain: { alice: string; helper1: string; helper2: string; live: string; root: string; heldByAlice: string; heldByRoot: string } = {} as never;

beforeAll(async () => {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (or set BATON_CHROMIUM)`);
  mkdirSync(shots, { recursive: true });
  // zero-setup `baton dev`: embedded PostgreSQL and in-process state of its own (no DATABASE_URL, REDIS_URL)
  dev = spawnBaton(['dev', '--broker-port', '0', '--proxy-port', '0', '--http-port', '0', '--data-dir', dataDir], { HOME: dataDir });
  await dev.waitFor(/DEV MODE[\s\S]*HTTP proxy/, 'baton dev');
  broker = /broker\s+(http:\/\/\S+)/.exec(dev.output())![1]!;
  proxyPort = Number(/proxy\s+postgres:\/\/127\.0\.0\.1:(\d+)\//.exec(dev.output())![1]);
  expect(dev.output()).toContain(`console  ${broker}/console `);

  // a 3-link chain: alice (agent planner) → helper-1 → helper-2, each narrower, with statements
  chain.alice = await devToken('alice', ['engineers'], 'planner');
  chain.helper1 = attenuate(chain.alice, { delegateTo: 'helper-1', purpose: "summarise yesterday's orders", resources: ['pg:appdb/public.*'], operations: ['read'], ttl: '10m' });
  chain.helper2 = attenuate(chain.helper1, { delegateTo: 'helper-2', purpose: 'count the orders', resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m' });
  await (await connect(chain.helper1)).query('SELECT count(*) FROM customers');
  const h2 = await connect(chain.helper2);
  await h2.query('SELECT count(*) FROM orders');
  expect((await failure(h2.query('SELECT * FROM customers')))?.code).toBe('42501');
  await h2.end();
  // a live session of another delegate, held open for the sessions page
  chain.live = attenuate(chain.alice, { delegateTo: 'helper-live', purpose: 'watch new orders', resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '10m' });
  liveClient = await connect(chain.live);
  await liveClient.query('SELECT 1 FROM orders LIMIT 1');
  // two held statements: alice's, and root's own (which root may not approve)
  const held = async (token: string) => {
    const err = await failure((await connect(token)).query('DELETE FROM audit_notes'));
    expect(err?.code).toBe('55W01');
    return /apr_[A-Za-z0-9_-]+/.exec(err!.message)![0];
  };
  chain.heldByAlice = await held(chain.alice);
  chain.root = await devToken('root', ['admins'], 'cli');
  chain.heldByRoot = await held(chain.root);

  context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 860 },
    acceptDownloads: true,
    colorScheme: 'light',
  });
  page = context.pages()[0] ?? (await context.newPage());
  context.on('request', (r) => requested.push(r.url()));
  page.on('console', (m) => consoleMessages.push(`${m.type()}: ${m.text()}`));
}, 120_000);

afterAll(async () => {
  for (const c of clients) await c.end().catch(() => {});
  await context?.close();
  await dev?.stop();
  rmSync(dataDir, { recursive: true, force: true });
  rmSync(profile, { recursive: true, force: true });
});

describe('the web console', () => {
  it('is served with a strict Content-Security-Policy, immutable hashed assets, and refuses a token in the query', async () => {
    const res = await fetch(`${broker}/console`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toBe(CONSOLE_CSP);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('referrer-policy')).toBe('no-referrer');
    const html = await res.text();
    expect(html).not.toMatch(/<script(?![^>]*\bsrc=)|\sstyle=|<style/); // no inline script or style
    const js = /src="(\/console\/assets\/app-[A-Za-z0-9]+\.js)"/.exec(html)![1]!;
    const asset = await fetch(`${broker}${js}`);
    expect(asset.headers.get('content-type')).toBe('text/javascript; charset=utf-8');
    expect(asset.headers.get('cache-control')).toBe('public, max-age=31536000, immutable');
    expect((await fetch(`${broker}/console/assets/nope.js`)).status).toBe(404);
  });

  it('signs in through the OIDC issuer with the authorization code and PKCE', async () => {
    await page.goto(`${broker}/console`);
    await shot('sign-in');
    await page.getByRole('button', { name: 'Sign in with your identity provider' }).click();
    // the dev issuer's page: whom to mint for
    await page.waitForURL(/\/dev\/oidc\/authorize\?/);
    const authorize = new URL(page.url());
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('code_challenge')).toMatch(/^[A-Za-z0-9_-]{43}$/);
    await page.getByLabel('Subject').fill('root');
    await page.getByLabel('Groups (comma-separated)').fill('admins');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await expect.poll(() => page.locator('#who').textContent()).toContain('Signed in as root');
    // the code left the address bar; the token is in this tab's sessionStorage only
    expect(page.url()).toMatch(new RegExp(`^${broker}/console(#/tree)?$`));
    const token = await page.evaluate(() => sessionStorage.getItem('baton.console.token'));
    expect(token).toBeTruthy();
    expect(await page.evaluate(() => document.cookie)).toBe('');
    expect(requested.some((u) => u.includes('/console/callback?code='))).toBe(true);
    // the console session is an audited exchange by the console's client (agent baton-console)
    const me = (await (await fetch(`${broker}/console/api/me`, { headers: { authorization: `Bearer ${token}` } })).json()) as { subject: string; agent: string; admin: boolean };
    expect(me).toMatchObject({ subject: 'root', agent: 'baton-console', admin: true });
  });

  it('shows the delegation tree of a 3-link chain, keyboard-operable, with each node\'s timeline', async () => {
    await page.goto(`${broker}/console#/tree`);
    await page.getByLabel('Find by').selectOption('subject');
    await page.getByLabel('Value').fill('alice');
    await page.getByRole('button', { name: 'Show trees' }).click();
    const tree = page.getByRole('tree').first();
    await expect.poll(() => tree.getByRole('treeitem').count()).toBe(4); // alice, helper-1, helper-2, helper-live
    const items = tree.getByRole('treeitem');
    await expect.poll(() => items.nth(0).getAttribute('aria-level')).toBe('1');
    expect(await items.nth(0).locator(':scope > .node').textContent()).toContain('alice · planner');
    expect(await items.nth(1).locator(':scope > .node').textContent()).toContain('→ helper-1');
    expect(await items.nth(1).getAttribute('aria-level')).toBe('2');
    expect(await items.nth(2).locator(':scope > .node').textContent()).toContain('→ helper-2');
    expect(await items.nth(2).getAttribute('aria-level')).toBe('3');
    // keyboard: the first node has focus after a click; ↓ ↓ reaches helper-2
    await items.nth(0).locator(':scope > .node').click();
    await page.keyboard.press('ArrowDown');
    await page.keyboard.press('ArrowDown');
    await expect.poll(() => items.nth(2).getAttribute('aria-selected')).toBe('true');
    expect(await page.evaluate(() => document.activeElement?.getAttribute('data-rid'))).toBe(await items.nth(2).getAttribute('data-rid'));
    const panel = page.getByRole('region', { name: 'Details of helper-2' });
    await expect.poll(() => panel.textContent()).toContain('count the orders');
    const text = (await panel.textContent())!;
    expect(text).toContain('pg:appdb/public.orders');
    expect(text).toMatch(/SELECT count\(\*\) FROM orders/i);
    expect(text).toContain('customers'); // the denied statement is on the timeline too
    expect(await panel.locator('.timeline li').count()).toBeGreaterThanOrEqual(2);
    await shot('tree');
  });

  it('lists the live session and ends it (its last block revoked)', async () => {
    await page.goto(`${broker}/console#/sessions`);
    const row = page.locator('tr', { hasText: 'helper-live' });
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(1);
    expect(await row.textContent()).toContain('watch new orders');
    expect(await row.textContent()).toContain('pg:appdb');
    await shot('sessions');
    await row.getByRole('button', { name: /End the session/ }).click();
    const dialog = page.getByRole('dialog', { name: 'End this session?' });
    await dialog.getByLabel('Reason (recorded in the audit trail)').fill('review: no longer needed');
    await dialog.getByRole('button', { name: 'End session' }).click();
    await expect.poll(() => row.count(), { timeout: 10_000 }).toBe(0);
    // the proxy ended it at once (it sat idle): the client's connection is gone, and the token refused
    expect(await failure(liveClient.query('SELECT 1'))).toBeDefined();
    expect((await failure(connect(chain.live)))?.message).toMatch(/revoked/);
  });

  it('revokes a node from the tree, with confirmation, and its subtree turns revoked', async () => {
    await page.goto(`${broker}/console#/tree?by=subject&q=alice`);
    const items = page.getByRole('tree').first().getByRole('treeitem');
    await expect.poll(() => items.count()).toBe(4);
    await items.nth(1).locator(':scope > .node').click(); // helper-1
    const panel = page.getByRole('region', { name: 'Details of helper-1' });
    await panel.getByRole('button', { name: 'Revoke this token…' }).click();
    const dialog = page.getByRole('dialog', { name: 'Revoke helper-1?' });
    expect(await dialog.textContent()).toContain('1 token derived from it');
    // cancelling revokes nothing
    await dialog.getByRole('button', { name: 'Cancel' }).click();
    expect(await items.nth(1).getAttribute('data-revoked')).toBe('false');
    await panel.getByRole('button', { name: 'Revoke this token…' }).click();
    await page.getByRole('dialog', { name: 'Revoke helper-1?' }).getByRole('button', { name: 'Revoke' }).click();
    await expect.poll(() => items.nth(1).getAttribute('data-revoked')).toBe('true');
    expect(await items.nth(2).getAttribute('data-revoked')).toBe('true'); // helper-2, below it
    expect(await items.nth(2).textContent()).toContain('revoked (ancestor)');
    expect(await items.nth(0).getAttribute('data-revoked')).toBe('false'); // alice's own token stays
    expect((await failure(connect(chain.helper2)))?.message).toMatch(/revoked/);
    await (await connect(chain.alice)).query('SELECT 1');
    await shot('tree-revoked');
  });

  it('approves a held statement with a reason; the requester\'s own approval is refused by the server', async () => {
    await page.goto(`${broker}/console#/approvals`);
    const mine = page.locator(`article[data-approval="${chain.heldByRoot}"]`);
    const alices = page.locator(`article[data-approval="${chain.heldByAlice}"]`);
    await expect.poll(() => alices.count()).toBe(1);
    const text = (await alices.textContent())!;
    expect(text).toContain('DELETE FROM audit_notes');
    expect(text).toContain('alice · planner');
    await shot('approvals');
    // root's own request: the broker refuses, the page says why
    await mine.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => mine.getByRole('alert').textContent()).toMatch(/Refused by the broker: .*requester/);
    // alice's: approved with a reason
    await alices.getByLabel('Reason (required to deny)').fill('cleanup agreed in ticket OPS-12');
    await alices.getByRole('button', { name: 'Approve' }).click();
    await expect.poll(() => alices.count()).toBe(0); // no longer pending
    const decided = (await (await fetch(`${broker}/v1/approvals/${chain.heldByAlice}`, { headers: { authorization: `Bearer ${chain.root}` } })).json()) as { state: string; decidedBy: string; reason: string };
    expect(decided).toMatchObject({ state: 'approved', decidedBy: 'root', reason: 'cleanup agreed in ticket OPS-12' });
    // alice retries: it runs now
    await (await connect(chain.alice)).query('DELETE FROM audit_notes');
  });

  it('searches the audit trail with a histogram, exports the filtered set, and verifies the chain', async () => {
    await page.goto(`${broker}/console#/audit`);
    await page.getByLabel('Subject').fill('alice');
    await page.getByLabel('Decision').selectOption('deny');
    await page.getByRole('button', { name: 'Search' }).click();
    const rows = page.locator('table.audit tbody tr');
    await expect.poll(() => rows.count()).toBeGreaterThan(0);
    const n = await rows.count();
    for (let i = 0; i < n; i++) expect(await rows.nth(i).textContent()).toContain('deny');
    expect(await page.locator('.histogram svg[role=img]').getAttribute('aria-label')).toMatch(new RegExp(`Histogram of ${n} entries.*0 allowed, ${n} denied`));
    expect(page.url()).toContain('subject=alice'); // the filters are in the address (ids and names, never a token)
    await page.getByRole('button', { name: 'Verify the chain' }).click();
    await expect.poll(() => page.locator('.verify').textContent()).toContain('chain intact');
    await shot('audit');
    const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: /Export the filtered set/ }).click()]);
    const lines = readFileSync((await download.path())!, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { decision: string; lineage: { subject?: string }[] });
    expect(lines.length).toBe(n);
    for (const l of lines) expect([l.decision, l.lineage[0]?.subject]).toEqual(['deny', 'alice']);
  });

  it('switches to the dark theme (kept across reloads)', async () => {
    await page.goto(`${broker}/console#/tree?by=subject&q=alice`);
    const toggle = page.getByRole('button', { name: 'Dark theme' });
    expect(await toggle.getAttribute('aria-pressed')).toBe('false');
    await toggle.click();
    expect(await toggle.getAttribute('aria-pressed')).toBe('true');
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('dark');
    await page.reload();
    await expect.poll(() => page.getByRole('tree').first().getByRole('treeitem').count()).toBe(4);
    expect(await page.evaluate(() => getComputedStyle(document.documentElement).backgroundColor)).toBe('rgb(18, 20, 23)');
    await shot('tree-dark');
    await page.getByRole('button', { name: 'Dark theme' }).click();
    expect(await page.evaluate(() => document.documentElement.dataset.theme)).toBe('light');
  });

  it('accepts a pasted token in dev mode, and turns away one without the admin or approver role', async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await expect.poll(() => page.getByRole('heading', { name: 'Sign in' }).count()).toBe(1);
    expect(await page.evaluate(() => sessionStorage.getItem('baton.console.token'))).toBeNull();
    await page.getByLabel('Baton token').fill(chain.alice);
    await page.getByRole('button', { name: 'Use this token' }).click();
    await expect.poll(() => page.getByRole('alert').textContent()).toContain('neither the admin nor the approver role');
    await page.getByLabel('Baton token').fill(chain.root);
    await page.getByRole('button', { name: 'Use this token' }).click();
    await expect.poll(() => page.locator('#who').textContent()).toContain('Signed in as root');
  });

  it('never put a token in a URL, and the CSP reported no violation', () => {
    for (const token of Object.values(chain).filter((t) => t.length > 100)) {
      for (const url of requested) expect(url).not.toContain(token.slice(0, 40));
    }
    expect(consoleMessages.filter((m) => /Content Security Policy|Refused to/i.test(m))).toEqual([]);
  });
});
