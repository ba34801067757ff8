/**
 * MCP through the HTTP proxy (issue 13, behaviour 5), spoken to by the official MCP TypeScript SDK:
 * the demo `tools` server of `baton dev` behind the proxy, tokens narrowed to single tools, list answers
 * cut down to what the token may call, denied calls as JSON-RPC errors naming the tool and the link,
 * batches all-or-nothing, the token never reaching the server, one audit entry per request.
 */
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryAudit } from '../../../src/audit/query.ts';
import { MCP_FORBIDDEN } from '../../../src/proxy/http/mcp.ts';
import { startHttpTestStack, type HttpTestStack } from '../../helpers/http-stack.ts';

let s: HttpTestStack;
let parent: string;
let searcher: string;

beforeAll(async () => {
  s = await startHttpTestStack('http_mcp');
  parent = await s.token('ada', ['engineers']);
  searcher = s.attenuate(parent, { resources: ['mcp:tools/search_orders'], operations: ['call'], delegateTo: 'mcp-helper' });
});

afterAll(async () => {
  await s?.stop();
});

async function connect(token: string): Promise<Client> {
  const transport = new StreamableHTTPClientTransport(new URL(`${s.url}/tools/mcp`), { requestInit: { headers: { authorization: `Bearer ${token}` } } });
  const client = new Client({ name: 'mcp-proxy-test', version: '1.0.0' });
  await client.connect(transport);
  return client;
}

/** One raw JSON-RPC POST through the proxy (session set up by an initialize first). */
async function rpc(token: string, body: unknown): Promise<{ status: number; body: unknown }> {
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const init = await s.fetch('/tools/mcp', token, {
    method: 'POST',
    headers,
    body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }),
  });
  expect(init.status).toBe(200);
  const session = init.headers.get('mcp-session-id')!;
  await init.arrayBuffer();
  const res = await s.fetch('/tools/mcp', token, { method: 'POST', headers: { ...headers, 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }, body: JSON.stringify(body) });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

describe('MCP through the proxy with the official SDK client', () => {
  it('the parent (mcp:tools/) sees and calls all three tools; the server sees the proxy credential, never the token', async () => {
    const client = await connect(parent);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(['search_orders', 'refund_order', 'delete_everything']);
      const refund = await client.callTool({ name: 'refund_order', arguments: { id: 1002 } });
      expect(refund.content).toEqual([{ type: 'text', text: 'refunded order 1002' }]);
      const seen = (refund._meta as { received_authorization: string }).received_authorization;
      expect(seen).toMatch(/^Bearer /);
      expect(seen).not.toContain(parent);
    } finally {
      await client.close();
    }
  });

  it('a child narrowed to search_orders lists only that tool and may call only it', async () => {
    const client = await connect(searcher);
    try {
      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(['search_orders']);
      const found = await client.callTool({ name: 'search_orders', arguments: { query: 'ada' } });
      expect(JSON.parse((found.content as Array<{ text: string }>)[0]!.text)).toEqual([expect.objectContaining({ customer: 'Ada Lovelace' })]);

      const denied = await client.callTool({ name: 'delete_everything', arguments: {} }).then(
        () => undefined,
        (err: unknown) => err as { code: number; message: string },
      );
      expect(denied?.code).toBe(MCP_FORBIDDEN);
      expect(denied?.message).toMatch(/delete_everything/);
      expect(denied?.message).toMatch(/mcp-helper/); // the link that forbade it
    } finally {
      await client.close();
    }
  });

  it('a batch with one denied call runs nothing: every request gets an error', async () => {
    const { status, body } = await rpc(searcher, [
      { jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'search_orders', arguments: {} } },
      { jsonrpc: '2.0', id: 2, method: 'tools/call', params: { name: 'refund_order', arguments: { id: 1 } } },
    ]);
    expect(status).toBe(200);
    const answers = body as Array<{ id: number; error?: { code: number; message: string }; result?: unknown }>;
    expect(answers.map((a) => a.id)).toEqual([1, 2]);
    expect(answers.every((a) => a.error?.code === MCP_FORBIDDEN && a.result === undefined)).toBe(true);
    expect(answers[0]!.error!.message).toMatch(/not run/);
    expect(answers[1]!.error!.message).toMatch(/refund_order/);
  });

  it('a repeated key is refused: an upstream keeping the first "name" would call another tool than the one authorized', async () => {
    const body = '{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"delete_everything","name":"search_orders","arguments":{}}}';
    const init = await s.fetch('/tools/mcp', searcher, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }),
    });
    const session = init.headers.get('mcp-session-id')!;
    await init.arrayBuffer();
    const res = await s.fetch('/tools/mcp', searcher, { method: 'POST', headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' }, body });
    const answer = (await res.json()) as { error?: { code: number; message: string }; result?: unknown };
    expect(answer.result).toBeUndefined();
    expect(answer.error?.code).toBe(-32600);
    expect(answer.error?.message).toMatch(/duplicate key "name"/);
  });

  it('methods the proxy cannot map are refused, not forwarded', async () => {
    const { status, body } = await rpc(parent, { jsonrpc: '2.0', id: 9, method: 'sampling/createMessage', params: {} });
    expect(status).toBe(200);
    expect(body).toMatchObject({ id: 9, error: { code: -32601, message: expect.stringMatching(/not supported through the proxy/) } });
  });

  it('a token with no MCP right on the upstream cannot even open a session', async () => {
    const billingOnly = s.attenuate(parent, { resources: ['http:billing/'], operations: ['read'] });
    const res = await s.fetch('/tools/mcp', billingOnly, {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'raw', version: '0' } } }),
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toMatch(/problem\+json/);
  });

  it('audits each request with the MCP method and tool', async () => {
    const { events } = await queryAudit(s.broker.db.pool, { delegate: 'mcp-helper' });
    const denied = events.find((e) => e.decision === 'deny' && e.http?.mcp?.target === 'delete_everything');
    expect(denied).toMatchObject({ resource: 'mcp:tools/delete_everything', operation: 'call', http: { method: 'POST', mcp: { method: 'tools/call' } } });
    const allowed = events.find((e) => e.decision === 'allow' && e.http?.mcp?.target === 'search_orders');
    expect(allowed).toMatchObject({ resource: 'mcp:tools/search_orders', operation: 'call' });
    expect(allowed!.lineage.map((l) => l.delegatedTo)).toContain('mcp-helper');
  });
});
