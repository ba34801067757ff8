import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { authorize } from '../../src/token/authorize.ts';
import { keySetResolver, KeySetDocument } from '../../src/token/keys.ts';
import { readLineage } from '../../src/token/lineage.ts';
import { verifyToken } from '../../src/token/verify.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker('exchange', { broker: { rateLimit: { perSubject: 20, perClient: 1000 } } });
});
afterAll(async () => broker?.stop());

async function keySet() {
  const res = await fetch(`${broker.url}/.well-known/baton-keys.json`);
  return keySetResolver(KeySetDocument.parse(await res.json()));
}

async function json(res: Response) {
  return { status: res.status, body: (await res.json()) as Record<string, unknown>, headers: res.headers };
}

describe('POST /v1/token (RFC 8693)', () => {
  it('exchanges a dev OIDC token for a Biscuit that verifies with the published key', async () => {
    const jwt = await broker.devToken('alice@example.com', ['engineers'], { client_id: 'planner' });
    const { status, body, headers } = await json(await broker.exchange(jwt));
    expect(status).toBe(200);
    expect(headers.get('cache-control')).toBe('no-store');
    expect(body.issued_token_type).toBe('urn:baton:params:token-type:biscuit');
    expect(body.token_type).toBe('Bearer');
    expect(body.expires_in).toBeGreaterThan(800);
    const v = verifyToken(body.access_token as string, await keySet());
    try {
      const [link] = readLineage(v.decoded);
      expect(link).toMatchObject({ depth: 0, subject: 'alice@example.com', agent: 'planner', issuer: `${broker.url}/dev/oidc` });
      expect(link!.tokenId).toMatch(/^tok_/);
      // the dev policy's engineers: pg read/insert/update/delete, http:billing/ read/write/delete, mcp:tools/ call, aws:reports/s3:reports-bucket/ read
      expect(new Set(link!.operations)).toEqual(new Set(['read', 'insert', 'update', 'delete', 'write', 'call']));
      expect(authorize(v.biscuit, 'http:billing/invoices', 'write', new Date()).allow).toBe(true);
      expect(authorize(v.biscuit, 'mcp:tools/refund_order', 'call', new Date()).allow).toBe(true);
      expect(authorize(v.biscuit, 'pg:appdb/public.orders', 'delete', new Date()).allow).toBe(true);
      expect(authorize(v.biscuit, 'pg:appdb/public.orders', 'truncate', new Date()).allow).toBe(false);
      expect(authorize(v.biscuit, 'pg:otherdb/public.orders', 'read', new Date()).allow).toBe(false);
      // the issued-token record holds ids and claims, never the token
      const rec = await broker.testDb.pool.query('SELECT * FROM issued_tokens WHERE token_id = $1', [link!.tokenId]);
      expect(rec.rows[0]).toMatchObject({ subject: 'alice@example.com', agent: 'planner', revocation_id: v.revocationIds[0] });
      expect(JSON.stringify(rec.rows[0])).not.toContain(body.access_token as string);
    } finally {
      v.biscuit.free();
    }
  });

  it('accepts JSON bodies too', async () => {
    const jwt = await broker.devToken('bob', ['analysts']);
    const res = await fetch(`${broker.url}/v1/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange', subject_token: jwt, subject_token_type: 'urn:ietf:params:oauth:token-type:id_token' }),
    });
    expect(res.status).toBe(200);
  });

  it('narrows by resource and scope and clamps the lifetime', async () => {
    const jwt = await broker.devToken('carol', ['engineers']);
    const { status, body } = await json(
      await broker.exchange(jwt, { resource: 'pg:appdb/public.orders', scope: 'read', requested_lifetime: '48h' }),
    );
    expect(status).toBe(200);
    expect(body.expires_in).toBeLessThanOrEqual(3600);
    expect(body.expires_in).toBeGreaterThan(3500);
    const v = verifyToken(body.access_token as string, await keySet());
    try {
      expect(readLineage(v.decoded)[0]).toMatchObject({ resources: ['pg:appdb/public.orders'], operations: ['read'] });
    } finally {
      v.biscuit.free();
    }
  });

  it.each([
    ['invalid_target', { resource: 'pg:otherdb/public.x' }],
    ['invalid_scope', { scope: 'truncate' }],
  ])('answers %s for a request outside the grant', async (error, extra) => {
    const jwt = await broker.devToken('dave', ['analysts']);
    const { status, body } = await json(await broker.exchange(jwt, extra));
    expect(status).toBe(400);
    expect(body.error).toBe(error);
  });

  it('answers unauthorized_client when no policy rule matches', async () => {
    const jwt = await broker.devToken('eve', ['visitors']);
    const { status, body } = await json(await broker.exchange(jwt));
    expect([status, body.error]).toEqual([400, 'unauthorized_client']);
  });

  it.each([
    ['a tampered signature', async () => { const j = await broker.devToken('x', ['analysts']); const s = j.split('.'); return `${s[0]}.${s[1]}.${s[2]!.startsWith('A') ? 'B' : 'A'}${s[2]!.slice(1)}`; }],
    ['garbage', async () => 'garbage'],
    ['an alg:none token', async () => `${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from('{"sub":"x"}').toString('base64url')}.`],
  ])('answers invalid_grant for %s and keeps serving', async (_name, make) => {
    const { status, body } = await json(await broker.exchange(await make()));
    expect([status, body.error]).toEqual([400, 'invalid_grant']);
    expect(typeof body.error_description).toBe('string');
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200);
  });

  it('rejects malformed requests with precise RFC 6749 errors', async () => {
    const post = (body: BodyInit, type = 'application/x-www-form-urlencoded') =>
      fetch(`${broker.url}/v1/token`, { method: 'POST', headers: { 'content-type': type }, body }).then(json);
    let r = await post(new Uint8Array([0, 0xff, 0x20, 0x67]));
    expect([r.status, r.body.error]).toEqual([400, 'invalid_request']);
    r = await post('grant_type=password&subject_token=x&subject_token_type=urn:ietf:params:oauth:token-type:jwt');
    expect([r.status, r.body.error]).toEqual([400, 'unsupported_grant_type']);
    r = await post('grant_type=urn:ietf:params:oauth:grant-type:token-exchange');
    expect([r.status, r.body.error]).toEqual([400, 'invalid_request']);
    expect(r.body.error_description).toMatch(/subject_token/);
    r = await post('{"grant_type": ', 'application/json');
    expect([r.status, r.body.error]).toEqual([400, 'invalid_request']);
    r = await post(`grant_type=x&subject_token=${'a'.repeat(70_000)}`);
    expect(r.status).toBe(413);
    r = await post('<xml/>', 'application/xml');
    expect(r.status).toBe(415);
  });

  it('rate-limits per subject with 429 and Retry-After', async () => {
    const jwt = await broker.devToken('rate-limited', ['analysts']);
    const statuses: number[] = [];
    let retryAfter: string | null = null;
    for (let i = 0; i < 25; i++) {
      const res = await broker.exchange(jwt);
      statuses.push(res.status);
      if (res.status === 429) retryAfter = res.headers.get('retry-after');
      await res.arrayBuffer();
    }
    expect(statuses.filter((s) => s === 200)).toHaveLength(20);
    expect(statuses.slice(20)).toEqual([429, 429, 429, 429, 429]);
    expect(Number(retryAfter)).toBeGreaterThan(0);
  });
});

describe('keys', () => {
  it('publishes Ed25519 keys; a rotated-out key still verifies until retired', async () => {
    const jwt = await broker.devToken('frank', ['analysts']);
    const old = (await json(await broker.exchange(jwt))).body.access_token as string;
    const newId = broker.keyring.rotate();
    const doc = KeySetDocument.parse(await (await fetch(`${broker.url}/.well-known/baton-keys.json`)).json());
    expect(doc.keys.map((k) => k.status)).toEqual(['verify', 'active']);
    const fresh = (await json(await broker.exchange(await broker.devToken('frank', ['analysts'])))).body.access_token as string;
    const v1 = verifyToken(old, await keySet());
    const v2 = verifyToken(fresh, await keySet());
    expect(v2.rootKeyId).toBe(newId);
    v1.biscuit.free();
    v2.biscuit.free();
    broker.keyring.retire(newId - 1);
    expect(() => verifyToken(old, broker.keyring)).toThrow(expect.objectContaining({ code: 'BATON_ERR_TOKEN_UNKNOWN_KEY' }));
  });
});

describe('ops', () => {
  it('serves health, readiness and Prometheus metrics', async () => {
    expect((await fetch(`${broker.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${broker.url}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${broker.url}/metrics`)).text();
    expect(metrics).toMatch(/^# TYPE baton_token_exchanges_total counter$/m);
    expect(metrics).toMatch(/baton_token_exchanges_total\{outcome="granted"\} [1-9]/);
  });
});
