/**
 * The demo MCP server `tools` that `baton dev` puts behind the HTTP proxy: three tools — one harmless
 * (`search_orders`), one that changes something (`refund_order`), one no agent should ever reach
 * (`delete_everything`) — so a demo token can be seen to list and call only what it was given.
 *
 * Hand-written on purpose: `@modelcontextprotocol/sdk` is a devDependency, and `baton dev` also runs
 * from an install without them. It speaks the Streamable HTTP transport of MCP 2025-06-18 with
 * stateful sessions and plain JSON answers (no server-sent events: it never calls the client), and
 * reports in each tool result the Authorization header it saw, so tests can show that the caller's
 * Baton token never reaches the upstream.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http
 */
import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { JSON_RPC_ERRORS, jsonRpcError, type JsonRpcErrorResponse } from '../proxy/http/mcp.ts';

/** Protocol versions the demo speaks; the first is its answer to any other. */
const DEMO_MCP_PROTOCOL_VERSIONS = ['2025-06-18', '2025-03-26', '2024-11-05'] as const;

/** Larger POST bodies are answered 413: the demo's messages are a few hundred bytes. */
const MAX_BODY_BYTES = 1024 * 1024;
/** Sessions kept at once; the oldest is forgotten first (its client gets 404 and initializes again). */
const MAX_SESSIONS = 1000;

/** The SDK server's codes for transport-level refusals (no session, unknown session). */
const SESSION_ERRORS = { BAD_REQUEST: -32000, NOT_FOUND: -32001 } as const;

type JsonObject = Record<string, unknown>;
type RequestId = string | number;
type Message = { kind: 'request'; id: RequestId; method: string; params: JsonObject } | { kind: 'notification'; method: string } | { kind: 'response' };
type JsonRpcResult = { jsonrpc: '2.0'; id: RequestId; result: JsonObject };

interface Order {
  id: number;
  customer: string;
  item: string;
  amount_cents: number;
  status: 'shipped' | 'open' | 'refunded';
}

const ORDERS: readonly Order[] = [
  { id: 1001, customer: 'Ada Lovelace', item: 'analytical engine gears', amount_cents: 12_000, status: 'shipped' },
  { id: 1002, customer: 'Alan Turing', item: 'paper tape, 40 rolls', amount_cents: 4_550, status: 'open' },
  { id: 1003, customer: 'Grace Hopper', item: 'a nanosecond of wire', amount_cents: 99_900, status: 'shipped' },
  { id: 1004, customer: 'Edsger Dijkstra', item: 'fountain pen', amount_cents: 2_500, status: 'open' },
];

/** The tools as tools/list shows them (inputSchema is JSON Schema, as MCP requires). */
const TOOLS = [
  {
    name: 'search_orders',
    title: 'Search orders',
    description: 'Find demo orders whose customer or item contains the query (case-insensitive); all orders without one. Reads only.',
    inputSchema: { type: 'object', properties: { query: { type: 'string', description: 'text to look for' } }, additionalProperties: false },
    annotations: { readOnlyHint: true },
  },
  {
    name: 'refund_order',
    title: 'Refund an order',
    description: 'Refund one demo order by id. Changes something: give it only to agents that may.',
    inputSchema: { type: 'object', properties: { id: { type: 'number', description: 'the order id, e.g. 1002' } }, required: ['id'], additionalProperties: false },
    annotations: { readOnlyHint: false, destructiveHint: false },
  },
  {
    name: 'delete_everything',
    title: 'Delete everything',
    description: 'Delete every order (demo: nothing is deleted). The tool no agent should be able to call.',
    inputSchema: { type: 'object', properties: {}, additionalProperties: false },
    annotations: { readOnlyHint: false, destructiveHint: true },
  },
] as const;

/** What a tool returns (the result's `content`, `structuredContent`, `isError`; `_meta` is added). */
type ToolOutcome = { content: Array<{ type: 'text'; text: string }>; structuredContent?: JsonObject; isError?: boolean };

const TOOL_RUNNERS: ReadonlyMap<string, (args: JsonObject) => ToolOutcome> = new Map([
  ['search_orders', searchOrders],
  ['refund_order', refundOrder],
  ['delete_everything', () => text('deleted everything (demo: nothing was deleted)')],
]);

/**
 * Handles one HTTP request for the MCP endpoint (the caller routes `/mcp` of the upstream here).
 * Each handler keeps its own sessions.
 *
 * @example
 * const mcp = createDemoMcpHandler({ name: 'baton-demo-tools' });
 * http.createServer((req, res) => (req.url === '/tools/mcp' ? mcp(req, res) : notFound(res)));
 */
export function createDemoMcpHandler(opts: { name?: string } = {}): (req: IncomingMessage, res: ServerResponse) => void {
  const server = { name: opts.name ?? 'baton-demo-tools', sessions: new Map<string, { protocolVersion: string }>() };
  return (req, res) => {
    handle(server, req, res).catch(() => {
      if (res.headersSent) res.destroy();
      else sendJson(res, 500, jsonRpcError(null, -32603, 'internal error'));
    });
  };
}

interface DemoServer {
  name: string;
  sessions: Map<string, { protocolVersion: string }>;
}

async function handle(server: DemoServer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  // the spec asks servers to check Origin against DNS rebinding; the demo only ever serves loopback
  if (!loopbackOrigin(req.headers.origin)) return sendJson(res, 403, jsonRpcError(null, SESSION_ERRORS.BAD_REQUEST, 'Forbidden: origin is not loopback'));
  if (req.method === 'POST') return handlePost(server, req, res);
  if (req.method === 'DELETE') return handleDelete(server, req, res);
  // GET would open a stream for server-initiated messages; the demo sends none (spec: answer 405)
  res.setHeader('allow', 'POST, DELETE');
  return sendJson(res, 405, jsonRpcError(null, SESSION_ERRORS.BAD_REQUEST, 'Method not allowed: this server sends no server-initiated messages'));
}

async function handlePost(server: DemoServer, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const type = String(req.headers['content-type'] ?? 'application/json');
  if (!type.toLowerCase().startsWith('application/json')) return sendJson(res, 415, jsonRpcError(null, SESSION_ERRORS.BAD_REQUEST, 'Unsupported Media Type: send application/json'));
  const body = await readBody(req, MAX_BODY_BYTES);
  if (body === 'too-large') return sendJson(res, 413, jsonRpcError(null, SESSION_ERRORS.BAD_REQUEST, `Payload Too Large: at most ${MAX_BODY_BYTES} bytes`));
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.toString('utf8'));
  } catch {
    return sendJson(res, 400, jsonRpcError(null, JSON_RPC_ERRORS.PARSE_ERROR, 'Parse error'));
  }
  const batch = Array.isArray(parsed);
  const messages = (Array.isArray(parsed) ? (parsed as unknown[]) : [parsed]).map(readMessage);
  if (messages.length === 0 || messages.some((m) => m === undefined)) return sendJson(res, 400, jsonRpcError(null, JSON_RPC_ERRORS.INVALID_REQUEST, 'Invalid Request'));
  const valid = messages as Message[];

  const initialize = valid.find((m) => m.kind === 'request' && m.method === 'initialize');
  let sessionId: string;
  if (initialize) {
    if (valid.length > 1) return sendJson(res, 400, jsonRpcError(null, JSON_RPC_ERRORS.INVALID_REQUEST, 'Invalid Request: initialize must be sent alone'));
    sessionId = openSession(server, initialize);
    res.setHeader('mcp-session-id', sessionId);
  } else {
    const known = knownSession(server, req, res);
    if (known === undefined) return;
    sessionId = known;
  }

  const answers = valid.flatMap((m) => (m.kind === 'request' ? [answer(server, sessionId, m, req)] : []));
  if (answers.length === 0) {
    res.writeHead(202).end(); // notifications and client responses only: accepted, nothing to say
    return;
  }
  sendJson(res, 200, batch ? answers : answers[0]);
}

function handleDelete(server: DemoServer, req: IncomingMessage, res: ServerResponse): void {
  const sessionId = knownSession(server, req, res);
  if (sessionId === undefined) return;
  server.sessions.delete(sessionId);
  res.writeHead(200).end();
}

/** A new session for an initialize request; the oldest one goes when the map is full. */
function openSession(server: DemoServer, initialize: Message): string {
  const params = initialize.kind === 'request' ? initialize.params : {};
  const asked = params.protocolVersion;
  const protocolVersion = (DEMO_MCP_PROTOCOL_VERSIONS as readonly unknown[]).includes(asked) ? (asked as string) : DEMO_MCP_PROTOCOL_VERSIONS[0];
  while (server.sessions.size >= MAX_SESSIONS) {
    const oldest = server.sessions.keys().next().value;
    if (oldest === undefined) break;
    server.sessions.delete(oldest);
  }
  const id = randomUUID();
  server.sessions.set(id, { protocolVersion });
  return id;
}

/** The request's session id if it names a live session; otherwise answers 400 / 404 and returns undefined. */
function knownSession(server: DemoServer, req: IncomingMessage, res: ServerResponse): string | undefined {
  const id = req.headers['mcp-session-id'];
  if (typeof id !== 'string' || id === '') {
    sendJson(res, 400, jsonRpcError(null, SESSION_ERRORS.BAD_REQUEST, 'Bad Request: Mcp-Session-Id header is required'));
    return undefined;
  }
  if (!server.sessions.has(id)) {
    // 404 tells the client to start a new session (spec: session management)
    sendJson(res, 404, jsonRpcError(null, SESSION_ERRORS.NOT_FOUND, 'Session not found'));
    return undefined;
  }
  const version = req.headers['mcp-protocol-version'];
  if (version !== undefined && !(DEMO_MCP_PROTOCOL_VERSIONS as readonly unknown[]).includes(version)) {
    sendJson(res, 400, jsonRpcError(null, SESSION_ERRORS.BAD_REQUEST, 'Bad Request: unsupported MCP-Protocol-Version'));
    return undefined;
  }
  return id;
}

/** One JSON-RPC element, or undefined when it is not a well-formed request, notification or response. */
function readMessage(value: unknown): Message | undefined {
  if (!isObject(value) || value.jsonrpc !== '2.0') return undefined;
  const hasId = Object.hasOwn(value, 'id');
  const params = value.params === undefined ? {} : value.params;
  if (typeof value.method === 'string') {
    if (!isObject(params)) return undefined;
    if (!hasId) return { kind: 'notification', method: value.method };
    return isId(value.id) ? { kind: 'request', id: value.id, method: value.method, params } : undefined;
  }
  if (hasId && (Object.hasOwn(value, 'result') || Object.hasOwn(value, 'error'))) return { kind: 'response' };
  return undefined;
}

/** The response to one request. */
function answer(server: DemoServer, sessionId: string, m: Extract<Message, { kind: 'request' }>, req: IncomingMessage): JsonRpcResult | JsonRpcErrorResponse {
  const ok = (result: JsonObject): JsonRpcResult => ({ jsonrpc: '2.0', id: m.id, result });
  switch (m.method) {
    case 'initialize':
      return ok({
        protocolVersion: server.sessions.get(sessionId)?.protocolVersion ?? DEMO_MCP_PROTOCOL_VERSIONS[0],
        capabilities: { tools: { listChanged: false } },
        serverInfo: { name: server.name, version: '1.0.0' },
        instructions: 'Demo tools behind Baton: search_orders reads, refund_order changes an order, delete_everything is the one nobody should be given.',
      });
    case 'ping':
      return ok({});
    case 'tools/list':
      return ok({ tools: TOOLS });
    case 'tools/call':
      return callTool(m, req);
    default:
      return jsonRpcError(m.id, JSON_RPC_ERRORS.METHOD_NOT_FOUND, `Method not found: ${m.method.slice(0, 100)}`);
  }
}

function callTool(m: Extract<Message, { kind: 'request' }>, req: IncomingMessage): JsonRpcResult | JsonRpcErrorResponse {
  const { name } = m.params;
  if (typeof name !== 'string') return jsonRpcError(m.id, JSON_RPC_ERRORS.INVALID_PARAMS, 'Invalid params: name must be a string');
  const args = isObject(m.params.arguments) ? m.params.arguments : {};
  const run = TOOL_RUNNERS.get(name);
  // a tool that is not there is the tool's failure, reported in the result the model reads
  const outcome = run ? run(args) : { ...text(`unknown tool "${name.slice(0, 100)}"`), isError: true };
  // what the upstream saw: the proxy must have swapped the caller's Baton token for its own credential
  const _meta = { received_authorization: req.headers.authorization ?? null };
  return { jsonrpc: '2.0', id: m.id, result: { ...outcome, _meta } };
}

function searchOrders(args: JsonObject): ToolOutcome {
  const query = typeof args.query === 'string' ? args.query.toLowerCase() : '';
  const orders = ORDERS.filter((o) => query === '' || o.customer.toLowerCase().includes(query) || o.item.toLowerCase().includes(query));
  return { ...text(JSON.stringify(orders)), structuredContent: { orders } };
}

function refundOrder(args: JsonObject): ToolOutcome {
  const id = args.id;
  if (typeof id !== 'number' || !Number.isFinite(id)) return { ...text('refund_order needs {"id": <number>}'), isError: true };
  return text(`refunded order ${id}`);
}

function text(value: string): ToolOutcome {
  return { content: [{ type: 'text', text: value }] };
}

// ---- HTTP plumbing -------------------------------------------------------------------------------

function sendJson(res: ServerResponse, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(body);
}

/**
 * The body, or 'too-large' once it passes `limit`. The rest is read and dropped rather than the
 * socket cut, so the client sees the 413 instead of a reset.
 */
async function readBody(req: IncomingMessage, limit: number): Promise<Buffer | 'too-large'> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size <= limit) chunks.push(chunk);
  }
  return size > limit ? 'too-large' : Buffer.concat(chunks, size);
}

function loopbackOrigin(origin: string | undefined): boolean {
  if (origin === undefined) return true; // not a browser
  try {
    return ['localhost', '127.0.0.1', '[::1]'].includes(new URL(origin).hostname);
  } catch {
    return false;
  }
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isId(value: unknown): value is RequestId {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}
