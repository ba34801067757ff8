/**
 * `baton proxy` as its own process serving only HTTP upstreams (proxy.http.upstreams, no Postgres):
 * production config with the upstream credential from the environment (`${VAR}`), keys from the
 * broker's key set, revocations by fan-out + resync, audit into the broker's database.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryAudit } from '../../../src/audit/query.ts';
import { startDemoHttpUpstreams, type DemoHttpUpstreams } from '../../../src/dev/demo-http.ts';
import { attenuate } from '../../../src/token/attenuate.ts';
import { exchange } from '../../../src/sdk/exchange.ts';
import { freePort } from '../../../src/util/free-port.ts';
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts';
import { spawnStandaloneProxy, type StandaloneProxy } from '../../helpers/standalone-proxy.ts';

let broker: TestBroker;
let demo: DemoHttpUpstreams;
let standalone: StandaloneProxy;
let url: string;

beforeAll(async () => {
  broker = await startTestBroker('http_standalone');
  demo = await startDemoHttpUpstreams();
  const billing = demo.upstreams.get('billing')!;
  const secret = billing.credential.type === 'bearer' ? billing.credential.token : '';
  const port = await freePort();
  standalone = await spawnStandaloneProxy(
    broker,
    {},
    { http: { host: '127.0.0.1', port, upstreams: { billing: { url: billing.url, credential: { type: 'bearer', token: '${BILLING_TOKEN}' } } } } },
    { BILLING_TOKEN: secret },
  );
  url = `http://127.0.0.1:${port}`;
});

afterAll(async () => {
  await standalone?.stop();
  await demo?.close();
  await broker?.stop();
});

describe('baton proxy (own process) with HTTP upstreams only', () => {
  it('names the HTTP listener on start-up', () => {
    expect(standalone.stderr).toMatch(new RegExp(`proxy listening: http on ${url.replace(/[.]/g, '\\.')}`));
  });

  it('enforces, injects the credential from the environment, audits, and learns revocations within a second', async () => {
    const token = await exchange({ broker: broker.url, subjectToken: await broker.devToken('alice', ['engineers']) });
    const child = attenuate(token, { resources: ['http:billing/invoices/'], operations: ['read'], delegateTo: 'helper-http' });
    const get = (path: string, init: RequestInit = {}) => fetch(`${url}${path}`, { ...init, headers: { authorization: `Bearer ${child}` } });

    const ok = await get('/billing/invoices');
    expect(ok.status).toBe(200);
    const body = (await ok.json()) as { received_authorization: string; invoices: unknown[] };
    expect(body.invoices.length).toBeGreaterThan(0);
    expect(body.received_authorization).toMatch(/^Bearer demo-/); // the proxy's credential, not the token
    expect((await get('/billing/customers')).status).toBe(403);
    expect((await get('/billing/invoices', { method: 'POST' })).status).toBe(403);

    const { events } = await queryAudit(broker.db.pool, { delegate: 'helper-http' });
    expect(events.some((e) => e.decision === 'allow' && e.resource === 'http:billing/invoices' && e.http?.method === 'GET')).toBe(true);
    expect(events.some((e) => e.decision === 'deny' && e.resource === 'http:billing/customers')).toBe(true);

    const t0 = Date.now();
    await fetch(`${broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token }) });
    let status = 200;
    while (status === 200 && Date.now() - t0 < 3000) {
      status = (await get('/billing/invoices')).status;
      if (status === 200) await new Promise((r) => setTimeout(r, 20));
    }
    expect(status).toBe(401);
    expect(Date.now() - t0).toBeLessThan(1000);
  });
});
