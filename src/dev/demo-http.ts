/**
 * The demo HTTP upstreams `baton dev` puts behind the HTTP proxy: `billing`, a small REST service,
 * and `tools`, an MCP server (demo-mcp.ts). Both live on one loopback listener (`/billing/…`,
 * `/tools/…`) and answer only requests carrying the credential the proxy injects — so a request that
 * did not pass the proxy fails, and every billing answer shows the Authorization header it saw.
 */
import { randomBytes } from 'node:crypto';
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { HttpUpstreamSchema } from '../config/schema.ts';
import type { HttpUpstreamConfig } from '../proxy/http/server.ts';
import { createDemoMcpHandler } from './demo-mcp.ts';

export interface DemoHttpUpstreams {
  /** `billing` and `tools`, as proxy.http.upstreams entries. */
  upstreams: Map<string, HttpUpstreamConfig>;
  url: string;
  close(): Promise<void>;
}

interface Invoice {
  id: number;
  customer: string;
  amount_cents: number;
  status: 'open' | 'paid';
}

/** Starts the demo upstreams on 127.0.0.1 (a free port) with a fresh random credential. */
export async function startDemoHttpUpstreams(): Promise<DemoHttpUpstreams> {
  const secret = `demo-${randomBytes(18).toString('base64url')}`;
  const invoices = new Map<number, Invoice>([
    [1, { id: 1, customer: 'Ada Lovelace', amount_cents: 12_000, status: 'paid' }],
    [2, { id: 2, customer: 'Alan Turing', amount_cents: 4_550, status: 'open' }],
    [3, { id: 3, customer: 'Grace Hopper', amount_cents: 99_900, status: 'open' }],
  ]);
  let nextId = 4;
  const mcp = createDemoMcpHandler({ name: 'baton-demo-tools' });

  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://demo');
    // only the proxy holds the credential: anything else is refused, as a real service would
    if (req.headers.authorization !== `Bearer ${secret}`) return json(res, 401, { error: 'missing or wrong upstream credential', received_authorization: req.headers.authorization ?? null });
    if (url.pathname === '/tools/mcp') return mcp(req, res);
    billing(req, res, url.pathname).catch(() => json(res, 500, { error: 'demo billing failed' }));
  });

  async function billing(req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
    const seen = { received_authorization: req.headers.authorization ?? null };
    const one = /^\/billing\/invoices\/(\d{1,9})$/.exec(path);
    if (path === '/billing/invoices' && req.method === 'GET') return json(res, 200, { invoices: [...invoices.values()], ...seen });
    if (path === '/billing/invoices' && req.method === 'POST') {
      const body = await readJson(req);
      const amount = typeof body?.amount === 'number' && Number.isInteger(body.amount) && body.amount > 0 ? body.amount : undefined;
      if (amount === undefined) return json(res, 400, { error: 'send {"amount": <positive integer cents>}', ...seen });
      const invoice: Invoice = { id: nextId++, customer: typeof body?.customer === 'string' ? body.customer.slice(0, 100) : 'demo', amount_cents: amount, status: 'open' };
      invoices.set(invoice.id, invoice);
      return json(res, 201, { invoice, ...seen });
    }
    if (one && req.method === 'GET') {
      const invoice = invoices.get(Number(one[1]));
      return invoice ? json(res, 200, { invoice, ...seen }) : json(res, 404, { error: 'no such invoice', ...seen });
    }
    if (one && req.method === 'DELETE') {
      const deleted = invoices.delete(Number(one[1]));
      return deleted ? json(res, 200, { deleted: Number(one[1]), ...seen }) : json(res, 404, { error: 'no such invoice', ...seen });
    }
    if (path === '/billing/customers' && req.method === 'GET') {
      return json(res, 200, { customers: [...new Set([...invoices.values()].map((i) => i.customer))].map((name) => ({ name })), ...seen });
    }
    return json(res, 404, { error: `no demo route ${req.method} ${path}`, ...seen });
  }

  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const credential = { type: 'bearer' as const, token: secret };
  return {
    url,
    upstreams: new Map<string, HttpUpstreamConfig>([
      ['billing', HttpUpstreamSchema.parse({ url: `${url}/billing`, credential, maxRequestBytes: 1024 * 1024, maxResponseBytes: 64 * 1024 * 1024 })],
      ['tools', HttpUpstreamSchema.parse({ url: `${url}/tools`, credential, mcp: true, maxRequestBytes: 1024 * 1024, maxResponseBytes: 64 * 1024 * 1024 })],
    ]),
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

function json(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** A small JSON body (64 KiB at most), or undefined. */
async function readJson(req: IncomingMessage): Promise<Record<string, unknown> | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 64 * 1024) return undefined;
    chunks.push(chunk);
  }
  try {
    const value: unknown = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    return value && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
  } catch {
    return undefined;
  }
}
