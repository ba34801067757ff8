/**
 * The HTTP proxy's throughput (issue 13): autocannon (its own process) against the same small JSON
 * upstream three ways, in one run:
 *
 * - direct: no proxy;
 * - relay: a bare `node:http` relay (keep-alive agent, pipes the bodies): the baseline;
 * - proxy: Baton's HTTP proxy with audit on (a durable entry per request in PostgreSQL, group
 *   commit; GET answers held until their entry is durable), token verified once and cached;
 * - proxy POST: writes, whose entries are durable before they are forwarded (DESIGN.md rule 6);
 * - proxy, audit stubbed: DIAGNOSTIC (bench/lib/memory-audit.ts), the proxy's own work without the
 *   durable audit trail; never a product configuration.
 *
 * The relay and the proxy run in this process, the upstream in a child process, autocannon in
 * another: on 2 cores every variant competes for the same CPUs in the same way.
 *
 *   npm run bench -- httpproxy        # goal: proxy ≥ 0.8 × relay requests/s at 32 connections; ~1 min
 *
 * Env: BENCH_SECONDS (default 8 per variant), BENCH_CONNECTIONS (default 32).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { httpUpstream, startHttpTestStack } from '../test/helpers/http-stack.ts';
import { memoryAuditWriter } from './lib/memory-audit.ts';
import { fmt, printTable } from './lib/report.ts';

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 32);
const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** The upstream, in a child process: a small JSON answer to every request. */
function startUpstream(): Promise<{ url: string; child: ChildProcess }> {
  const code = `
    const http = require('node:http');
    const body = JSON.stringify({ invoices: Array.from({ length: 3 }, (_, i) => ({ id: i, customer: 'c' + i, amount_cents: 1000 * i })) });
    const server = http.createServer((req, res) => {
      req.resume();
      req.on('end', () => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }); res.end(body); });
    });
    server.keepAliveTimeout = 60000;
    server.listen(0, '127.0.0.1', () => process.stdout.write(String(server.address().port) + '\\n'));`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.stdout!.once('data', (d: Buffer) => resolve({ url: `http://127.0.0.1:${d.toString().trim()}`, child }));
    child.once('error', reject);
  });
}

/** A bare node:http relay: what any reverse proxy must at least do. */
async function startRelay(target: string): Promise<{ url: string; close(): Promise<void> }> {
  const upstream = new URL(target);
  const agent = new http.Agent({ keepAlive: true, maxSockets: 256 });
  const server = http.createServer((req, res) => {
    const up = http.request({ agent, hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url!.replace(/^\/[^/]+/, ''), headers: { ...req.headers, host: upstream.host } }, (r) => {
      res.writeHead(r.statusCode!, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.destroy());
    req.pipe(up);
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => {
      server.close(() => r());
      server.closeAllConnections();
      agent.destroy();
    }),
  };
}

interface Result {
  rps: number;
  p50: number;
  p99: number;
  non2xx: number;
  errors: number;
}

/** autocannon in its own process, JSON out. */
function cannon(url: string, opts: { token?: string; method?: string; body?: string } = {}): Promise<Result> {
  const args = ['-c', String(CONNECTIONS), '-d', String(SECONDS), '-j'];
  if (opts.token) args.push('-H', `authorization=Bearer ${opts.token}`);
  if (opts.method) args.push('-m', opts.method);
  if (opts.body) args.push('-b', opts.body, '-H', 'content-type=application/json');
  args.push(url);
  const child = spawn(process.execPath, [`${ROOT}/node_modules/autocannon/autocannon.js`, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => {
      if (code !== 0) return reject(new Error(`autocannon exited with ${code}`));
      const r = JSON.parse(out) as { requests: { average: number }; latency: { p50: number; p99: number }; non2xx: number; errors: number };
      resolve({ rps: r.requests.average, p50: r.latency.p50, p99: r.latency.p99, non2xx: r.non2xx, errors: r.errors });
    });
  });
}

async function main(): Promise<void> {
  const upstream = await startUpstream();
  const relay = await startRelay(upstream.url);
  const stack = await startHttpTestStack('benchhttp', { upstreams: { bench: httpUpstream(upstream.url) } });
  const stubbed = await startHttpTestStack('benchhttp_stub', { upstreams: { bench: httpUpstream(upstream.url) }, audit: () => memoryAuditWriter() });
  try {
    const token = stack.attenuate(await stack.token('root', ['admins']), { resources: ['http:bench/'], operations: ['read', 'write'], delegateTo: 'bench-agent' });
    const stubToken = stubbed.attenuate(await stubbed.token('root', ['admins']), { resources: ['http:bench/'], operations: ['read', 'write'], delegateTo: 'bench-agent' });
    const check = await stack.fetch('/bench/invoices', token);
    if (check.status !== 200) throw new Error(`proxy check failed: ${check.status} ${await check.text()}`);
    await cannon(`${stack.url}/bench/invoices`, { token }); // warm-up (JIT, pools, caches)
    const direct = await cannon(`${upstream.url}/invoices`);
    const bare = await cannon(`${relay.url}/bench/invoices`);
    const proxied = await cannon(`${stack.url}/bench/invoices`, { token });
    const writes = await cannon(`${stack.url}/bench/invoices`, { token, method: 'POST', body: '{"amount":1}' });
    const noAudit = await cannon(`${stubbed.url}/bench/invoices`, { token: stubToken });
    const row = (name: string, r: Result) => [name, fmt(r.rps, 0), fmt(r.rps / bare.rps, 2), fmt(r.p50, 1), fmt(r.p99, 1), String(r.non2xx + r.errors)];
    printTable(
      `autocannon, ${CONNECTIONS} connections, ${SECONDS} s each; small JSON answer (~150 bytes)`,
      ['target', 'requests/s', '× relay', 'p50 ms', 'p99 ms', 'non-2xx + errors'],
      [row('direct (no proxy)', direct), row('bare node:http relay (baseline)', bare), row('Baton HTTP proxy, GET, audit on', proxied), row('Baton HTTP proxy, POST (entry durable first)', writes), row('DIAGNOSTIC: proxy GET, audit stubbed', noAudit)],
    );
  } finally {
    await stack.stop();
    await stubbed.stop();
    await relay.close();
    upstream.child.kill();
  }
}

await main();
process.exit(0);
