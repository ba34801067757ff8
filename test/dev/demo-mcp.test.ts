/**
 * The demo MCP server of `baton dev`, spoken to by the official MCP client (the SDK is a
 * devDependency, the server does not use it): sessions, tools, the Authorization header it saw,
 * and the transport's refusals, on a real socket.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDemoMcpHandler } from '../../src/dev/demo-mcp.ts';

let server: http.Server;
let url: string;

beforeAll(async () => {
  server = http.createServer(createDemoMcpHandler());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`;
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

async function connect(headers: Record<string, string> = {}): Promise<{ client: Client; transport: StreamableHTTPClientTransport }> {
  const transport = new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
  const client = new Client({ name: 'demo-mcp-test', version: '1.0.0' });
  await client.connect(transport);
  return { client, transport };
}

function post(body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json, text/event-stream', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
}

async function initialize(protocolVersion = '2025-06-18'): Promise<{ session: string; result: Record<string, unknown> }> {
  const res = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion, capabilities: {}, clientInfo: { name: 'raw', version: '0' } } });
  expect(res.status).toBe(200);
  const session = res.headers.get('mcp-session-id');
  expect(session).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  const body = (await res.json()) as { result: Record<string, unknown> };
  return { session: session!, result: body.result };
}

const ping = (id: unknown = 1) => ({ jsonrpc: '2.0', id, method: 'ping' });

describe('demo MCP server with the official client', () => {
  it('initializes, lists the three tools and calls them', async () => {
    const { client, transport } = await connect({ authorization: 'Bearer x' });
    try {
      expect(client.getServerVersion()).toEqual({ name: 'baton-demo-tools', version: '1.0.0' });
      expect(client.getServerCapabilities()).toEqual({ tools: { listChanged: false } });
      expect(client.getInstructions()).toMatch(/delete_everything/);
      expect(transport.sessionId).toBeTruthy();
      await client.ping();

      const { tools } = await client.listTools();
      expect(tools.map((t) => t.name)).toEqual(['search_orders', 'refund_order', 'delete_everything']);
      for (const tool of tools) {
        expect(tool.inputSchema.type).toBe('object');
        expect(tool.description).toBeTruthy();
      }
      expect(tools.find((t) => t.name === 'refund_order')?.inputSchema).toMatchObject({ properties: { id: { type: 'number' } }, required: ['id'] });

      const search = await client.callTool({ name: 'search_orders', arguments: { query: 'ada' } });
      const [first] = search.content as Array<{ type: string; text: string }>;
      expect(first?.type).toBe('text');
      expect(JSON.parse(first!.text)).toEqual([expect.objectContaining({ customer: 'Ada Lovelace' })]);
      expect(search.structuredContent).toEqual({ orders: JSON.parse(first!.text) });
      // what the upstream saw: here the client's header, behind the proxy the proxy's credential
      expect(search._meta).toEqual({ received_authorization: 'Bearer x' });
      expect(search.isError).toBeFalsy();

      const all = await client.callTool({ name: 'search_orders', arguments: {} });
      expect(JSON.parse((all.content as Array<{ text: string }>)[0]!.text)).toHaveLength(4);

      const refund = await client.callTool({ name: 'refund_order', arguments: { id: 1002 } });
      expect(refund.content).toEqual([{ type: 'text', text: 'refunded order 1002' }]);
      expect(refund._meta).toEqual({ received_authorization: 'Bearer x' });

      const badRefund = await client.callTool({ name: 'refund_order', arguments: { id: 'all' } });
      expect(badRefund.isError).toBe(true);

      const wipe = await client.callTool({ name: 'delete_everything', arguments: {} });
      expect(wipe.content).toEqual([{ type: 'text', text: 'deleted everything (demo: nothing was deleted)' }]);

      const unknown = await client.callTool({ name: 'format_disk', arguments: {} });
      expect(unknown.isError).toBe(true);
      expect(unknown.content).toEqual([{ type: 'text', text: 'unknown tool "format_disk"' }]);
      expect(unknown._meta).toEqual({ received_authorization: 'Bearer x' });
    } finally {
      await client.close();
    }
  });

  it('reports a missing Authorization header as null', async () => {
    const { client } = await connect();
    try {
      const result = await client.callTool({ name: 'delete_everything', arguments: {} });
      expect(result._meta).toEqual({ received_authorization: null });
    } finally {
      await client.close();
    }
  });

  it('forgets a session the client terminates', async () => {
    const { client, transport } = await connect();
    const session = transport.sessionId!;
    await transport.terminateSession();
    expect(transport.sessionId).toBeUndefined();
    await client.close();
    const res = await post(ping(), { 'mcp-session-id': session });
    expect(res.status).toBe(404);
  });
});

describe('demo MCP server, the transport on the wire', () => {
  it('negotiates the protocol version', async () => {
    for (const version of ['2025-06-18', '2025-03-26', '2024-11-05']) expect((await initialize(version)).result.protocolVersion).toBe(version);
    for (const version of ['2025-11-25', '1999-01-01']) expect((await initialize(version)).result.protocolVersion).toBe('2025-06-18');
    expect((await initialize()).result).toMatchObject({ capabilities: { tools: { listChanged: false } }, serverInfo: { name: 'baton-demo-tools', version: '1.0.0' } });
  });

  it('gives each handler its own sessions and server name', async () => {
    const other = http.createServer(createDemoMcpHandler({ name: 'other-tools' }));
    await new Promise<void>((resolve) => other.listen(0, '127.0.0.1', resolve));
    try {
      const otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}/mcp`;
      const res = await fetch(otherUrl, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '0' } } }),
      });
      expect(((await res.json()) as { result: { serverInfo: unknown } }).result.serverInfo).toEqual({ name: 'other-tools', version: '1.0.0' });
      const { session } = await initialize();
      const cross = await fetch(otherUrl, { method: 'POST', headers: { 'content-type': 'application/json', 'mcp-session-id': session }, body: JSON.stringify(ping()) });
      expect(cross.status).toBe(404);
    } finally {
      other.closeAllConnections();
      await new Promise<void>((resolve) => other.close(() => resolve()));
    }
  });

  it('answers 400 without a session id and 404 with an unknown one, as JSON-RPC errors', async () => {
    const missing = await post(ping(7));
    expect(missing.status).toBe(400);
    expect(missing.headers.get('content-type')).toBe('application/json');
    expect(await missing.json()).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32000, message: 'Bad Request: Mcp-Session-Id header is required' } });
    const unknown = await post(ping(7), { 'mcp-session-id': '00000000-0000-4000-8000-000000000000' });
    expect(unknown.status).toBe(404);
    expect(await unknown.json()).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32001, message: 'Session not found' } });
  });

  it('accepts notifications and client responses with 202 and no body', async () => {
    const { session } = await initialize();
    for (const body of [
      { jsonrpc: '2.0', method: 'notifications/initialized' },
      [
        { jsonrpc: '2.0', method: 'notifications/progress', params: { progressToken: 1, progress: 1 } },
        { jsonrpc: '2.0', id: 'srv-1', result: {} },
      ],
    ]) {
      const res = await post(body, { 'mcp-session-id': session });
      expect(res.status).toBe(202);
      expect(await res.text()).toBe('');
    }
  });

  it('answers a batch with an array, in order, and unknown methods with -32601', async () => {
    const { session } = await initialize();
    const res = await post([ping('a'), { jsonrpc: '2.0', method: 'notifications/x' }, { jsonrpc: '2.0', id: 'b', method: 'tools/list' }, { jsonrpc: '2.0', id: 'c', method: 'resources/list' }], { 'mcp-session-id': session });
    expect(res.status).toBe(200);
    const body = (await res.json()) as Array<Record<string, unknown>>;
    expect(body.map((m) => m.id)).toEqual(['a', 'b', 'c']);
    expect(body[0]).toEqual({ jsonrpc: '2.0', id: 'a', result: {} });
    expect((body[1]!.result as { tools: unknown[] }).tools).toHaveLength(3);
    expect(body[2]).toEqual({ jsonrpc: '2.0', id: 'c', error: { code: -32601, message: 'Method not found: resources/list' } });
    // initialize is never part of a batch
    const batched = await post([{ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18' } }, ping(2)]);
    expect(batched.status).toBe(400);
  });

  it('refuses bad JSON, malformed messages, other media types and bodies over 1 MiB', async () => {
    const { session } = await initialize();
    const headers = { 'mcp-session-id': session };
    const bad = await post('{"jsonrpc":', headers);
    expect(bad.status).toBe(400);
    expect(await bad.json()).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'Parse error' } });
    for (const body of ['[]', '42', '{"jsonrpc":"1.0","id":1,"method":"ping"}', '{"jsonrpc":"2.0","id":null,"method":"ping"}', '{"jsonrpc":"2.0","id":1}']) {
      const res = await post(body, headers);
      expect(res.status).toBe(400);
      expect(((await res.json()) as { error: { code: number } }).error.code).toBe(-32600);
    }
    expect((await post(ping(), { ...headers, 'content-type': 'text/plain' })).status).toBe(415);
    const big = await post(JSON.stringify({ ...ping(), pad: 'x'.repeat(1024 * 1024) }), headers);
    expect(big.status).toBe(413);
    expect((await post(ping(), headers)).status).toBe(200); // the server is still fine
  });

  it('checks the MCP-Protocol-Version header and the Origin', async () => {
    const { session } = await initialize();
    expect((await post(ping(), { 'mcp-session-id': session, 'mcp-protocol-version': '2025-06-18' })).status).toBe(200);
    expect((await post(ping(), { 'mcp-session-id': session, 'mcp-protocol-version': '1999-01-01' })).status).toBe(400);
    expect((await post(ping(), { 'mcp-session-id': session, origin: 'http://localhost:6274' })).status).toBe(200);
    expect((await post(ping(), { 'mcp-session-id': session, origin: 'https://evil.example' })).status).toBe(403);
  });

  it('answers GET with 405 and ends sessions on DELETE', async () => {
    const { session } = await initialize();
    const get = await fetch(url, { headers: { accept: 'text/event-stream', 'mcp-session-id': session } });
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST, DELETE');
    await get.body?.cancel();
    expect((await fetch(url, { method: 'DELETE' })).status).toBe(400);
    expect((await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': 'nope' } })).status).toBe(404);
    expect((await fetch(url, { method: 'DELETE', headers: { 'mcp-session-id': session } })).status).toBe(200);
    expect((await post(ping(), { 'mcp-session-id': session })).status).toBe(404);
  });

  it('keeps at most 1000 sessions, forgetting the oldest', async () => {
    const { session: oldest } = await initialize();
    const { session: second } = await initialize();
    for (let i = 0; i < 999; i++) await initialize();
    expect((await post(ping(), { 'mcp-session-id': oldest })).status).toBe(404);
    expect((await post(ping(), { 'mcp-session-id': second })).status).toBe(200);
  });
});
