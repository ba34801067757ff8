/**
 * HTTP/2 upstreams (`http2: true`, issue 13 point 4): the proxy speaks h2c with prior knowledge to a
 * real node:http2 server on loopback, clients keep HTTP/1.1. Same credential injection, token
 * stripping, limits, timeouts and revocation as HTTP/1.1 upstreams.
 */
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { httpUpstream, startHttpTestStack, type HttpTestStack } from '../../helpers/http-stack.ts';

let s: HttpTestStack;
let h2: http2.Http2Server;
let root: string;
let sessions = 0;

/** An h2c server: `/stream/<n>` streams n bytes, `/slow` never answers, `/drip` ticks forever, else echoes. */
function startH2c(): Promise<string> {
  h2 = http2.createServer();
  h2.on('session', () => sessions++);
  h2.on('request', (req, res) => {
    let bodyBytes = 0;
    req.on('data', (c: Buffer) => (bodyBytes += c.length));
    req.on('end', () => {
      const stream = /\/stream\/(\d+)$/.exec(req.url);
      if (req.url.endsWith('/slow')) return;
      if (req.url.endsWith('/drip')) {
        res.writeHead(200, { 'content-type': 'text/plain' });
        const t = setInterval(() => res.write('tick\n'), 50);
        res.on('close', () => clearInterval(t));
        return;
      }
      if (stream) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        return void res.end(Buffer.alloc(Number(stream[1]), 7));
      }
      res.writeHead(200, { 'content-type': 'application/json', 'x-upstream': 'h2' });
      res.end(JSON.stringify({ httpVersion: req.httpVersion, method: req.method, path: req.url, headers: req.headers, bodyBytes }));
    });
  });
  return new Promise((resolve) => h2.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(h2.address() as AddressInfo).port}`)));
}

beforeAll(async () => {
  const url = await startH2c();
  s = await startHttpTestStack('http_h2', {
    upstreams: {
      h2: httpUpstream(`${url}/v1`, { http2: true, credential: { type: 'bearer', token: 'upstream-secret' } }),
      h2tight: httpUpstream(url, { http2: true, timeouts: { connectMs: 1000, responseMs: 300, idleMs: 0 }, maxRequestBytes: 1024, maxResponseBytes: 4096 }),
      h2down: httpUpstream('http://127.0.0.1:9', { http2: true }),
    },
  });
  root = await s.token('root', ['admins']);
}, 60_000);

afterAll(async () => {
  await s?.stop();
  await new Promise<void>((r) => h2?.close(() => r()));
});

describe('an h2c upstream', () => {
  it('receives HTTP/2 with the injected credential, never the token; answers reach the HTTP/1.1 client', async () => {
    const res = await s.fetch('/h2/invoices/7?x=1', root, { headers: { 'x-custom': 'kept' } });
    expect(res.status).toBe(200);
    expect(res.headers.get('x-upstream')).toBe('h2');
    const seen = (await res.json()) as { httpVersion: string; path: string; headers: Record<string, string> };
    expect(seen.httpVersion).toBe('2.0');
    expect(seen.path).toBe('/v1/invoices/7?x=1');
    expect(seen.headers.authorization).toBe('Bearer upstream-secret');
    expect(seen.headers['x-custom']).toBe('kept');
    expect(JSON.stringify(seen)).not.toContain(root);
  });

  it('streams request bodies and multiplexes concurrent requests on one session', async () => {
    const before = sessions;
    const answers = await Promise.all(
      Array.from({ length: 20 }, (_, i) => s.fetch(`/h2/upload/${i}`, root, { method: 'POST', body: Buffer.alloc(300_000, 1) }).then((r) => r.json() as Promise<{ bodyBytes: number; method: string }>)),
    );
    expect(answers.every((a) => a.bodyBytes === 300_000 && a.method === 'POST')).toBe(true);
    expect(sessions - before).toBeLessThanOrEqual(1);
  });

  it('enforces as for HTTP/1.1: a read-only child cannot POST', async () => {
    const reader = s.attenuate(root, { resources: ['http:h2/invoices/'], operations: ['read'] });
    expect((await s.fetch('/h2/invoices', reader)).status).toBe(200);
    expect((await s.fetch('/h2/invoices', reader, { method: 'POST', body: '{}' })).status).toBe(403);
    expect((await s.fetch('/h2/customers', reader)).status).toBe(403);
  });

  it('limits, timeouts and an unreachable upstream', async () => {
    expect((await s.fetch('/h2tight/x', root, { method: 'POST', body: 'x'.repeat(2000) })).status).toBe(413);
    const slow = await s.fetch('/h2tight/slow', root);
    expect(slow.status).toBe(504);
    const big = await s.fetch('/h2tight/stream/100000', root).then((r) => r.arrayBuffer()).then(() => 'delivered whole', () => 'cut');
    expect(big).toBe('cut');
    expect((await s.fetch('/h2down/x', root)).status).toBe(502);
    // the session survives all of that
    expect((await s.fetch('/h2tight/ok', root)).status).toBe(200);
  });

  it('a revocation ends a streaming answer', async () => {
    const watcher = s.attenuate(root, { resources: ['http:h2/'], operations: ['read'], delegateTo: 'h2-watcher' });
    const res = await s.fetch('/h2/drip', watcher);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    await reader.read();
    await fetch(`${s.broker.url}/v1/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: watcher }) });
    const started = Date.now();
    await (async () => {
      for (;;) if ((await reader.read()).done) return;
    })().catch(() => undefined);
    expect(Date.now() - started).toBeLessThan(1500);
  });
});
