/**
 * The HTTP enforcement proxy end to end (issue 13): real broker, real demo upstreams and test
 * upstreams on loopback, fetch (undici) and curl as clients, the audit trail read back from PostgreSQL.
 */
import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import http, { type IncomingMessage } from 'node:http';
import net from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenOnLoopback } from '../../helpers/loopback.ts';
import { queryAudit } from '../../../src/audit/query.ts';
import { httpUpstream, startHttpTestStack, type HttpTestStack } from '../../helpers/http-stack.ts';

const run = promisify(execFile);

/** What the echo upstream saw of the last request. */
interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  bodyBytes: number;
}

/**
 * An upstream that answers with what it saw; `/slow` never answers, `/stream/<n>` streams n bytes with
 * a Content-Length, `/chunked/<n>` without one, `/drip` forever.
 */
async function startEcho(): Promise<{ url: string; seen: Seen[]; close(): Promise<void> }> {
  const seen: Seen[] = [];
  const server = http.createServer((req, res) => {
    let bodyBytes = 0;
    req.on('data', (c: Buffer) => (bodyBytes += c.length));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, bodyBytes });
      const stream = /\/(stream|chunked)\/(\d+)$/.exec(req.url!);
      if (req.url!.endsWith('/slow')) return; // never answers
      if (stream) {
        let left = Number(stream[2]);
        res.writeHead(200, { 'content-type': 'application/octet-stream', ...(stream[1] === 'stream' ? { 'content-length': String(left) } : {}) });
        const chunk = Buffer.alloc(64 * 1024, 7);
        const pump = () => {
          while (left > 0) {
            const n = Math.min(left, chunk.length);
            left -= n;
            if (!res.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void res.once('drain', pump);
          }
          res.end();
        };
        return pump();
      }
      if (req.url!.endsWith('/drip')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const t = setInterval(() => res.write('tick\n'), 50);
        res.on('close', () => clearInterval(t));
        return;
      }
      const body = JSON.stringify({ method: req.method, url: req.url, headers: req.headers, bodyBytes });
      res.writeHead(200, { 'content-type': 'application/json', connection: 'keep-alive, x-secret-hop', 'x-secret-hop': 'leak', 'keep-alive': 'timeout=5' });
      res.end(body);
    });
  });
  return { ...(await listenOnLoopback(server)), seen };
}

let s: HttpTestStack;
let echo: Awaited<ReturnType<typeof startEcho>>;
let root: string;
let child: string;
const HMAC_SECRET = 'x'.repeat(40);

beforeAll(async () => {
  echo = await startEcho();
  s = await startHttpTestStack('http_proxy', {
    upstreams: {
      echo: httpUpstream(`${echo.url}/base`, { credential: { type: 'header', name: 'X-Api-Key', value: 'k-123' }, hosts: ['echo.internal'] }),
      echobasic: httpUpstream(echo.url, { credential: { type: 'basic', username: 'svc', password: 'pw' } }),
      echohmac: httpUpstream(echo.url, { credential: { type: 'hmac', keyId: 'k1', secret: HMAC_SECRET, header: 'X-Baton-Signature' } }),
      tight: httpUpstream(echo.url, { timeouts: { connectMs: 1000, responseMs: 300, idleMs: 0 }, maxRequestBytes: 1024, maxResponseBytes: 4096 }),
      down: httpUpstream('http://127.0.0.1:9', {}),
      routed: httpUpstream(echo.url, { routes: [{ methods: ['POST'], path: '/search', operation: 'read' }, { path: '/admin/*', resource: 'http:routed/admin/' }] }),
    },
  });
  // the dev policy grants engineers http:billing/; the admins' "*" covers the test upstreams
  root = await s.token('root', ['admins']);
  child = s.attenuate(await s.token('alice', ['engineers']), { resources: ['http:billing/invoices/'], operations: ['read'], ttl: '5m', delegateTo: 'helper-h' });
}, 60_000);

afterAll(async () => {
  await s?.stop();
  await echo?.close();
});

describe('the demo billing upstream through the proxy (acceptance http.sh, and more)', () => {
  it('a child read-only on http:billing/invoices/ reads invoices; the upstream sees the proxy credential, never the token', async () => {
    const res = await s.fetch('/billing/invoices', child);
    expect(res.status).toBe(200);
    const body = (await res.json()) as { invoices: unknown[]; received_authorization: string };
    expect(body.invoices.length).toBeGreaterThan(0);
    expect(body.received_authorization).toMatch(/^Bearer demo-/);
    expect(body.received_authorization).not.toContain(child);
    expect((await s.fetch('/billing/invoices/2', child)).status).toBe(200);
  });

  it('everything else is 403 problem+json naming the resource, the operation and the link', async () => {
    const customers = await s.fetch('/billing/customers', child);
    expect(customers.status).toBe(403);
    expect(customers.headers.get('content-type')).toBe('application/problem+json');
    const problem = (await customers.json()) as Record<string, unknown>;
    expect(problem).toMatchObject({ status: 403, code: 'BATON_ERR_FORBIDDEN', resource: 'http:billing/customers', operation: 'read', link: 1 });
    expect(problem.title).toMatch(/forbidden by link 1 \(delegated to helper-h\)/);
    const post = await s.fetch('/billing/invoices', child, { method: 'POST', body: '{"amount":1}', headers: { 'content-type': 'application/json' } });
    expect(post.status).toBe(403);
    expect(((await post.json()) as { operation: string }).operation).toBe('write');
    expect((await s.fetch('/billing/invoices/1', child, { method: 'DELETE' })).status).toBe(403);
    // a sibling that shares the prefix as a string is not under the directory
    expect((await s.fetch('/billing/invoices-archive', child)).status).toBe(403);
  });

  it('no token, a bad token, another scheme: 401 with WWW-Authenticate', async () => {
    const none = await s.fetch('/billing/invoices', undefined);
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toBe('Bearer realm="baton"');
    const bad = await s.fetch('/billing/invoices', 'not-a-token');
    expect(bad.status).toBe(401);
    expect(bad.headers.get('www-authenticate')).toMatch(/error="invalid_token"/);
    expect(((await bad.json()) as { code: string }).code).toBe('BATON_ERR_TOKEN_MALFORMED');
    const tampered = await s.fetch('/billing/invoices', child.slice(0, -8) + 'AAAAAAAA');
    expect(tampered.status).toBe(401);
    const basic = await fetch(`${s.url}/billing/invoices`, { headers: { authorization: `Basic ${Buffer.from('a:b').toString('base64')}` } });
    expect(basic.status).toBe(401);
  });

  it('the parent (engineers) reads customers, creates and deletes invoices', async () => {
    const parent = await s.token('alice', ['engineers']);
    expect((await s.fetch('/billing/customers', parent)).status).toBe(200);
    const created = await s.fetch('/billing/invoices', parent, { method: 'POST', body: '{"amount":1250}', headers: { 'content-type': 'application/json' } });
    expect(created.status).toBe(201);
    const { invoice } = (await created.json()) as { invoice: { id: number } };
    expect((await s.fetch(`/billing/invoices/${invoice.id}`, parent, { method: 'DELETE' })).status).toBe(200);
    expect((await s.fetch(`/billing/invoices/${invoice.id}`, parent)).status).toBe(404);
  });

  it('unknown upstreams are 404, unsupported methods 405', async () => {
    expect((await s.fetch('/nope/x', root)).status).toBe(404);
    const trace = await s.fetch('/echo/x', root, { method: 'PROPFIND' });
    expect(trace.status).toBe(405);
  });

  it('works with curl', async () => {
    const { stdout } = await run('curl', ['-sS', '-w', '\n%{http_code}', '-H', `authorization: Bearer ${child}`, `${s.url}/billing/invoices`]);
    const lines = stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('200');
    expect(lines.slice(0, -1).join('\n')).toContain('"received_authorization"');
    const { stdout: denied } = await run('curl', ['-sS', '-o', '/dev/null', '-w', '%{http_code}', '-H', `authorization: Bearer ${child}`, `${s.url}/billing/customers`]);
    expect(denied).toBe('403');
  });
});

describe('paths are normalised once, before authorization', () => {
  it.each([
    ['/billing/invoices/..%2fcustomers', 'encoded-slash'],
    ['/billing/invoices/%2e%2e/customers', 'dot-segment'],
    ['/billing/invoices/%252e%252e/customers', 'double-encoding'],
    ['/billing/invoices;x=1', 'path-parameter'],
    ['/billing/invoices\\..\\customers', 'backslash'],
  ])('%s is refused (400 %s), never forwarded', async (path, reason) => {
    // raw request-target: fetch would normalise some of these itself
    const { stdout } = await run('curl', ['-sS', '--path-as-is', '-w', '\n%{http_code}', '-H', `authorization: Bearer ${child}`, `${s.url}${path}`]);
    const lines = stdout.trim().split('\n');
    expect(lines.at(-1)).toBe('400');
    expect(JSON.parse(lines.slice(0, -1).join('\n'))).toMatchObject({ code: 'BATON_ERR_INVALID_REQUEST', reason });
  });

  it('duplicate slashes and unreserved escapes are normalised, then authorized as what the upstream reads', async () => {
    expect((await rawStatus('/billing//invoices', child))).toBe(200);
    expect((await rawStatus('/billing/%69nvoices', child))).toBe(200); // %69 = i
    expect((await rawStatus('/billing//customers', child))).toBe(403);
    expect((await rawStatus('/billing/INVOICES', child))).toBe(403); // case-sensitive upstream: another resource
  });
});

async function rawStatus(path: string, token: string): Promise<number> {
  const { stdout } = await run('curl', ['-sS', '--path-as-is', '-o', '/dev/null', '-w', '%{http_code}', '-H', `authorization: Bearer ${token}`, `${s.url}${path}`]);
  return Number(stdout);
}

/** A GET through the proxy with exactly these headers (node:http sends what fetch would refuse). */
function rawRequest(path: string, headers: Record<string, string>): Promise<{ status: number; headers: IncomingMessage['headers']; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${s.url}${path}`, { headers }, (r) => {
      let body = '';
      r.on('data', (c) => (body += c));
      r.on('end', () => resolve({ status: r.statusCode!, headers: r.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/** Raw bytes to the proxy; resolves with everything it answered before closing (or after 2 s). */
function rawWire(bytes: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(new URL(s.url).port), '127.0.0.1', () => socket.write(bytes));
    let answer = '';
    socket.on('data', (d) => (answer += d));
    socket.on('error', reject);
    socket.on('close', () => resolve(answer));
    socket.setTimeout(2_000, () => socket.end());
  });
}

describe('what crosses to the upstream', () => {
  it('strips the token and hop-by-hop headers, sets X-Forwarded-*, injects the configured header credential, keeps the query', async () => {
    // node:http, not fetch: fetch refuses to send a Connection header naming other headers
    const res = await rawRequest('/echo/a/b?x=1&token=s3cr3t', { authorization: `Bearer ${root}`, connection: 'x-private', 'x-private': 'p', 'keep-alive': 'timeout=1', 'x-forwarded-for': '6.6.6.6', 'x-custom': 'kept' });
    expect(res.status).toBe(200);
    const seen = JSON.parse(res.body) as { url: string; headers: Record<string, string> };
    expect(seen.url).toBe('/base/a/b?x=1&token=s3cr3t');
    expect(seen.headers.authorization).toBeUndefined();
    expect(seen.headers['x-api-key']).toBe('k-123');
    expect(seen.headers['x-private']).toBeUndefined();
    expect(seen.headers['keep-alive']).toBeUndefined();
    expect(seen.headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(seen.headers['x-forwarded-proto']).toBe('http');
    expect(seen.headers['x-custom']).toBe('kept');
    expect(JSON.stringify(seen)).not.toContain(root);
    // the upstream's hop-by-hop answer headers do not reach the client
    expect(res.headers['x-secret-hop']).toBeUndefined();
  });

  it('basic and HMAC credentials', async () => {
    const basic = (await (await s.fetch('/echobasic/x', root)).json()) as { headers: Record<string, string> };
    expect(basic.headers.authorization).toBe(`Basic ${Buffer.from('svc:pw').toString('base64')}`);
    const signed = (await (await s.fetch('/echohmac/p/q?z=9', root, { method: 'PUT', body: 'x' })).json()) as { headers: Record<string, string> };
    const m = /^t=(\d+),kid=k1,v1=([0-9a-f]{64})$/.exec(signed.headers['x-baton-signature']!);
    expect(m).not.toBeNull();
    const expected = createHmac('sha256', HMAC_SECRET).update(`${m![1]}\nPUT\n/p/q?z=9`).digest('hex');
    expect(m![2]).toBe(expected);
    expect(signed.headers.authorization).toBeUndefined();
  });

  it('routes by Host for real deployments: the whole path goes to that upstream', async () => {
    const res = await rawRequest('/a/b', { host: 'echo.internal', authorization: `Bearer ${root}` });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).url).toBe('/base/a/b');
  });

  it('refuses absolute-form and * targets, with or without Host routing, and smuggling-shaped framing', async () => {
    const before = echo.seen.length;
    const auth = `authorization: Bearer ${root}\r\n`;
    expect(await rawWire(`GET http://evil.example/a HTTP/1.1\r\nhost: echo.internal\r\n${auth}connection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 /);
    expect(await rawWire(`GET http://127.0.0.1/echo/a HTTP/1.1\r\nhost: x\r\n${auth}connection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 /);
    expect(await rawWire(`OPTIONS * HTTP/1.1\r\nhost: echo.internal\r\n${auth}connection: close\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 /);
    // Content-Length and Transfer-Encoding together: refused by the parser before any step runs
    expect(await rawWire(`POST /echo/a HTTP/1.1\r\nhost: x\r\n${auth}content-length: 4\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\nGET /echo/b HTTP/1.1\r\nhost: x\r\n\r\n`)).toMatch(/^HTTP\/1\.1 400 /);
    expect(echo.seen.length).toBe(before);
  });

  it('refuses method overrides an upstream framework might honour (headers and the _method parameter, however encoded)', async () => {
    const reader = s.attenuate(root, { resources: ['http:echo/'], operations: ['read'] });
    const before = echo.seen.length;
    for (const header of ['X-HTTP-Method-Override', 'X-HTTP-Method', 'X-Method-Override']) {
      const res = await s.fetch('/echo/invoices/1', reader, { headers: { [header]: 'DELETE' } });
      expect(res.status).toBe(400);
      expect(((await res.json()) as { title: string }).title).toMatch(/another method than GET/);
    }
    for (const query of ['_method=DELETE', 'a=1&_METHOD=delete', '%5Fmethod=DELETE']) {
      expect((await s.fetch(`/echo/invoices/1?${query}`, reader)).status).toBe(400);
    }
    expect(echo.seen.length).toBe(before);
    expect((await s.fetch('/echo/invoices/1?method=x', reader)).status).toBe(200);
  });

  it('routes map method + path to another operation or resource', async () => {
    const reader = s.attenuate(root, { resources: ['http:routed/'], operations: ['read'] });
    expect((await s.fetch('/routed/search', reader, { method: 'POST', body: '{}' })).status).toBe(200);
    expect((await s.fetch('/routed/other', reader, { method: 'POST', body: '{}' })).status).toBe(403);
    const notAdmin = s.attenuate(root, { resources: ['http:routed/public/'] });
    const denied = await s.fetch('/routed/admin/users/7', notAdmin);
    expect(denied.status).toBe(403);
    expect(((await denied.json()) as { resource: string }).resource).toBe('http:routed/admin/');
  });
});

describe('limits and failures', () => {
  it('an upstream that does not answer in time is 504 with a clear body', async () => {
    const res = await s.fetch('/tight/slow', root);
    expect(res.status).toBe(504);
    expect(await res.json()).toMatchObject({ code: 'BATON_ERR_UPSTREAM_TIMEOUT', title: expect.stringMatching(/did not answer within 300 ms/) });
  });

  it('an unreachable upstream is 502', async () => {
    const res = await s.fetch('/down/x', root);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { code: string }).code).toBe('BATON_ERR_UPSTREAM_UNAVAILABLE');
  });

  it('request bodies over the limit are 413 (declared or streamed); responses over it are cut, never delivered whole', async () => {
    expect((await s.fetch('/tight/x', root, { method: 'POST', body: 'x'.repeat(2000) })).status).toBe(413);
    const chunked = new ReadableStream({
      start(c) {
        for (let i = 0; i < 4; i++) c.enqueue(new Uint8Array(600));
        c.close();
      },
    });
    const streamed = await s.fetch('/tight/x', root, { method: 'POST', body: chunked, duplex: 'half' } as RequestInit);
    expect(streamed.status).toBe(413);
    const declared = await s.fetch('/tight/stream/100000', root);
    expect(declared.status).toBe(502);
    expect(((await declared.json()) as { title: string }).title).toMatch(/answered 100000 bytes, more than the limit of 4096/);
    // no Content-Length: the stream is cut at the limit (before or after the head reached the client)
    const unsized = await s.fetch('/tight/chunked/100000', root).then((r) => r.arrayBuffer()).then(() => 'delivered whole', () => 'cut');
    expect(unsized).toBe('cut');
  });

  it('streams 100 MB through with bounded memory', async () => {
    const before = process.memoryUsage();
    const res = await s.fetch(`/echo/stream/${100 * 1024 * 1024}`, root);
    expect(res.status).toBe(200);
    let total = 0;
    let peak = 0;
    const reader = res.body!.getReader();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      total += value.length;
      if ((total & 0xfffff) < value.length) peak = Math.max(peak, process.memoryUsage().rss - before.rss);
    }
    expect(total).toBe(100 * 1024 * 1024);
    // client, proxy and upstream share this process: all of them together stay far below the body size
    expect(peak).toBeLessThan(60 * 1024 * 1024);
  }, 60_000);

  it('a revocation ends a long-running streamed response within a second', async () => {
    const streamer = s.attenuate(root, { resources: ['http:echo/'], delegateTo: 'streamer' });
    const res = await s.fetch('/echo/drip', streamer);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    const revokedAt = Date.now();
    const revoke = await fetch(`${s.broker.url}/v1/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: streamer }) });
    expect(revoke.status).toBe(200);
    const ended = (async () => {
      for (;;) {
        const { done } = await reader.read();
        if (done) return 'done';
      }
    })().catch(() => 'cut');
    expect(await ended).toMatch(/done|cut/);
    expect(Date.now() - revokedAt).toBeLessThan(1500);
    // and the next request with it is refused
    expect((await s.fetch('/echo/x', streamer)).status).toBe(401);
  });
});

describe('audit of refused requests', () => {
  it('a refusal before authorization is a deny entry when the token is valid: path tricks, method overrides, upgrades', async () => {
    const prober = s.attenuate(root, { resources: ['http:echo/'], operations: ['read'], delegateTo: 'prober' });
    expect(await rawStatus('/echo/a/%2e%2e/b?secret=1', prober)).toBe(400);
    expect((await s.fetch('/echo/x', prober, { headers: { 'x-http-method-override': 'DELETE' } })).status).toBe(400);
    expect((await rawRequest('/echo/ws', { authorization: `Bearer ${prober}`, connection: 'Upgrade', upgrade: 'websocket' })).status).toBe(501);
    // no valid token: nobody to name, no entry
    expect(await rawStatus('/echo/a/%2e%2e/b', 'not-a-token')).toBe(400);
    const { events } = await queryAudit(s.broker.db.pool, { delegate: 'prober' });
    const denied = events.filter((e) => e.decision === 'deny');
    expect(denied.map((e) => e.reason)).toEqual(
      expect.arrayContaining([expect.stringMatching(/request-target refused: \. or \.\. path segment/), expect.stringMatching(/would let the upstream run another method/), expect.stringMatching(/protocol upgrades/)]),
    );
    const trick = denied.find((e) => /request-target refused/.test(e.reason ?? ''))!;
    expect(trick.http).toMatchObject({ method: 'GET', path: '/echo/a/%2e%2e/b?secret=*' });
    expect(JSON.stringify(events)).not.toContain('secret=1');
  });
});

describe('audit', () => {
  it('one entry per request with lineage, method, normalised path (query values redacted), decision and outcome', async () => {
    const token = s.attenuate(root, { resources: ['http:echo/'], delegateTo: 'auditee' });
    expect((await s.fetch('/echo//x/y?user=ann&key=s3cr3t', token)).status).toBe(200);
    expect((await s.fetch('/billing/invoices', token)).status).toBe(403);
    let events: Awaited<ReturnType<typeof queryAudit>>['events'] = [];
    for (let i = 0; i < 50; i++) {
      events = (await queryAudit(s.broker.db.pool, { delegate: 'auditee', order: 'asc' })).events;
      if (events.length >= 2 && events[0]!.recordedOutcome) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(events).toHaveLength(2);
    const [allowed, denied] = events;
    expect(allowed).toMatchObject({ source: 'proxy-http', action: 'request', decision: 'allow', resource: 'http:echo/x/y', operation: 'read', http: { method: 'GET', path: '/echo/x/y?user=*&key=*' } });
    expect(allowed!.lineage.map((l) => l.delegatedTo ?? l.subject)).toEqual(['root', 'auditee']);
    expect(allowed!.recordedOutcome?.outcome).toMatchObject({ status: 200, bytes: expect.any(Number) });
    expect(JSON.stringify(events)).not.toContain('s3cr3t');
    expect(denied).toMatchObject({ decision: 'deny', resource: 'http:billing/invoices', http: { method: 'GET', path: '/billing/invoices' } });
    expect(denied!.reason).toMatch(/permission denied for read on http:billing\/invoices/);
  });
});
