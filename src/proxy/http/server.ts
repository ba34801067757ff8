/**
 * The HTTP enforcement proxy's wire side (issue 13): one `node:http` listener in front of REST
 * services, MCP servers and Kubernetes API servers. Each request passes the steps of
 * {@link REQUEST_STEPS} in order — the order is the security argument, so it is one visible table —
 * and only then is it streamed to the upstream with the proxy's own credential.
 *
 * Token decisions live in gate.ts; what a request touches in access.ts / mcp.ts; path rules in path.ts.
 */
import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { z } from 'zod';
import type { AuditReceipt } from '../../audit/writer.ts';
import type { HttpUpstreamSchema } from '../../config/schema.ts';
import { asBatonError } from '../../errors.ts';
import { type Access, kubernetesAccess, plainAccess } from './access.ts';
import { printableMethod } from './kubernetes.ts';
import { injectCredential } from './credential.ts';
import type { HttpAuditContext, HttpGate, Problem } from './gate.ts';
import { clientHeaders, upstreamHeaders } from './headers.ts';
import { filterMcpJson, jsonRpcError, MCP_FORBIDDEN, type McpListKind, type McpMessagePlan, mcpDenial, mcpSseFilter, planMcpRequest } from './mcp.ts';
import { normalizeTarget, PATH_REFUSALS, redactQuery } from './path.ts';
import { LimitExceeded, pump } from './pump.ts';
import { type UpstreamAnswer, type UpstreamCall, type UpstreamClient, upstreamClient } from './upstream-client.ts';
import type { ChainLease } from '../../enforce/token-cache.ts';

export type HttpUpstreamConfig = z.output<typeof HttpUpstreamSchema>;

export interface HttpProxyOptions {
  gate: HttpGate;
  upstreams: ReadonlyMap<string, HttpUpstreamConfig>;
  host: string;
  port: number;
  maxConnections?: number;
  /** `strict`: every entry is durable before its request is forwarded (config `audit.ordering`). */
  ordering?: 'default' | 'strict';
  /** How often open responses re-check their token's liveness (revocation ends them), ms. */
  livenessIntervalMs?: number;
  log?: (event: Record<string, unknown>) => void;
}

/** An upstream as the listener uses it: its config, parsed URL and connection pool. */
interface Upstream {
  name: string;
  config: HttpUpstreamConfig;
  url: URL;
  /** The base URL's path without a trailing `/` (`''` for the root). */
  basePath: string;
  /** Its connections: a keep-alive HTTP/1.1 pool or one HTTP/2 session. */
  client: UpstreamClient;
}

/** Largest MCP POST body the proxy parses (it must read every message before forwarding any). */
const MAX_MCP_BODY_BYTES = 4 * 1024 * 1024;
/** Largest MCP JSON response the proxy filters (a list response it must rewrite). */
const MAX_MCP_JSON_RESPONSE_BYTES = 16 * 1024 * 1024;

/** One request on its way through the steps. */
interface Exchange {
  req: IncomingMessage;
  res: ServerResponse;
  started: number;
  upstream?: Upstream;
  target?: { path: string; query: string };
  lease?: ChainLease;
  accesses: Access[];
  readOnly: boolean;
  audit?: HttpAuditContext;
  /** MCP: the buffered body to forward and the list requests whose answers are filtered. */
  mcp?: { body: Buffer; lists: Map<string | number, McpListKind> };
  /** The entry's receipt (in flight while a read is forwarded). */
  receipt?: Promise<AuditReceipt>;
  /** Bytes of response body delivered to the client. */
  bytes: number;
  /** Why the exchange was cut short, for the outcome. */
  endedBy?: string;
  /** Ends the exchange from outside (revocation while streaming). */
  abort?: (reason: string) => void;
  /** Set once the request has been answered by the proxy itself (a refusal). */
  answered?: boolean;
  /** A deny entry was written for this request (authorization, refused MCP messages). */
  denialAudited?: boolean;
}

type Step = (x: Exchange, proxy: ProxyContext) => Promise<Problem | 'answered' | undefined> | Problem | 'answered' | undefined;

interface ProxyContext {
  options: HttpProxyOptions;
  byName: ReadonlyMap<string, Upstream>;
  byHost: ReadonlyMap<string, Upstream>;
}

/**
 * The request path, in order. A step returns a Problem (the proxy answers it), `'answered'` (the
 * step answered), or nothing (next step).
 */
export const REQUEST_STEPS: readonly (readonly [name: string, step: Step])[] = [
  // 1. which upstream, and the one canonical path that is both authorized and forwarded (400 when ambiguous)
  ['route', route],
  // 2. protocol switches (WebSocket, SPDY) would carry traffic we cannot see: refused
  ['no-upgrade', refuseUpgrade],
  // 3. whose request: the Bearer token's chain, verified (cached) and alive — 401 / 503
  ['authenticate', authenticate],
  // 4. what it touches: REST method/route, Kubernetes verb/resource, or each MCP message — 400 / 405
  ['map', mapAccesses],
  // 5. every (resource, operation) on its own — 403 naming the link that forbade it
  ['authorize', authorizeAll],
  // 6. the audit entry: durable before a write is forwarded; before any answer is released (rule 6)
  ['audit', startAudit],
];

export interface HttpProxy {
  listen(): Promise<AddressInfo>;
  close(): Promise<void>;
  /** Responses streaming right now. */
  readonly openExchanges: number;
}

export function createHttpProxy(options: HttpProxyOptions): HttpProxy {
  const byName = new Map<string, Upstream>();
  const byHost = new Map<string, Upstream>();
  for (const [name, config] of options.upstreams) {
    const url = new URL(config.url);
    const upstream: Upstream = { name, config, url, basePath: url.pathname.replace(/\/+$/, ''), client: upstreamClient(url, { http2: config.http2 }) };
    byName.set(name, upstream);
    for (const host of config.hosts) byHost.set(host.toLowerCase(), upstream);
  }
  const context: ProxyContext = { options, byName, byHost };
  const open = new Set<Exchange>();

  const server = http.createServer({ keepAlive: true, headersTimeout: 20_000, requestTimeout: 0 }, (req, res) => {
    const x: Exchange = { req, res, started: performance.now(), accesses: [], readOnly: false, bytes: 0 };
    open.add(x);
    res.on('close', () => {
      open.delete(x);
      x.lease?.release();
    });
    handle(x, context).catch((err: unknown) => {
      const e = asBatonError(err);
      options.log?.({ event: 'http.request_failed', code: e.code, detail: e.detail });
      answerProblem(x, { status: 500, code: 'BATON_ERR_SERVER', title: 'internal error' });
    });
  });
  if (options.maxConnections) server.maxConnections = options.maxConnections;
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\nconnection: close\r\n\r\nmalformed HTTP request\n');
    else socket.destroy();
  });

  // Revocation, expiry and key retirement end responses that are still streaming (a watch, a download).
  const watcher = setInterval(() => {
    for (const x of open) {
      if (!x.lease || !x.abort) continue;
      const problem = options.gate.liveness(x.lease);
      if (problem) x.abort(problem.title);
    }
  }, options.livenessIntervalMs ?? 250);
  watcher.unref();

  return {
    get openExchanges() {
      return open.size;
    },
    listen() {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(options.port, options.host, () => {
          server.off('error', reject);
          resolve(server.address() as AddressInfo);
        });
      });
    },
    async close() {
      clearInterval(watcher);
      for (const x of open) x.abort?.('the proxy is shutting down');
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
      for (const u of byName.values()) u.client.close();
    },
  };
}

async function handle(x: Exchange, context: ProxyContext): Promise<void> {
  for (const [, step] of REQUEST_STEPS) {
    const result = await step(x, context);
    if (result === 'answered') return;
    if (result) {
      await auditRefusal(x, context, result);
      return answerProblem(x, result);
    }
  }
  forward(x, context.options);
}

/**
 * A request refused before authorization (a path trick, a method override, an upgrade, Impersonate-*)
 * is an attempt worth a deny entry when it carries a valid token: the trail shows who tried what.
 * Without a valid token there is no one to name (and 401/503 refusals are not attempts).
 */
async function auditRefusal(x: Exchange, { options }: ProxyContext, problem: Problem): Promise<void> {
  if (x.denialAudited || problem.status === 401 || (problem.status >= 500 && problem.status !== 501)) return;
  let lease = x.lease;
  let leased = false;
  if (!lease) {
    const result = await options.gate.authenticate(x.req.headers.authorization).catch(() => undefined);
    if (!result?.ok) return;
    lease = result.lease;
    leased = true;
  }
  try {
    const http = x.audit ?? { method: auditMethod(x.req.method), path: refusedTarget(x.req.url ?? '') };
    await options.gate.append(options.gate.event(lease.chain, 'deny', x.accesses, http, problem.title));
  } catch (err) {
    options.log?.({ event: 'audit.deny_unrecorded', detail: asBatonError(err).detail });
  } finally {
    if (leased) lease.release();
  }
}

/** A refused request-target as the audit may keep it: printable ASCII only, query values redacted, bounded. */
function refusedTarget(raw: string): string {
  const at = raw.indexOf('?');
  const [path, query] = at < 0 ? [raw, ''] : [raw.slice(0, at), raw.slice(at + 1)];
  return (query ? `${path}?${redactQuery(query)}` : path).replace(/[^\x21-\x7e]/g, '?').slice(0, 2048);
}

// ---- the steps -------------------------------------------------------------------------------

function route(x: Exchange, { byName, byHost }: ProxyContext): Problem | undefined {
  const raw = x.req.url ?? '';
  const hostHeader = (x.req.headers.host ?? '').toLowerCase();
  const byHostUpstream = byHost.get(hostHeader);
  // Host routing sends the whole path; otherwise the first segment names the upstream
  // the raw target itself must be origin-form: `http://other/x` or `*` is refused, routed by Host or not
  const normalized = normalizeTarget(byHostUpstream && raw.startsWith('/') ? `/${byHostUpstream.name}${raw}` : raw, {
    caseInsensitive: false,
  });
  if (!normalized.ok) {
    return { status: 400, code: 'BATON_ERR_INVALID_REQUEST', title: `request-target refused: ${PATH_REFUSALS[normalized.reason]}`, extra: { reason: normalized.reason } };
  }
  const upstream = byHostUpstream ?? byName.get(normalized.upstream);
  if (!upstream) return { status: 404, code: 'BATON_ERR_NOT_FOUND', title: `no HTTP upstream named ${normalized.upstream}` };
  x.upstream = upstream;
  let path = normalized.path;
  if (upstream.config.caseInsensitive) {
    const again = normalizeTarget(`/${upstream.name}${path}`, { caseInsensitive: true });
    if (!again.ok) return { status: 400, code: 'BATON_ERR_INVALID_REQUEST', title: `request-target refused: ${PATH_REFUSALS[again.reason]}` };
    path = again.path;
  }
  x.target = { path, query: normalized.query };
  const query = normalized.query ? `?${redactQuery(normalized.query)}` : '';
  x.audit = { method: auditMethod(x.req.method), path: `/${upstream.name}${path}${query}`.slice(0, 8192) };
  return undefined;
}

function refuseUpgrade(x: Exchange): Problem | undefined {
  if (x.req.headers.upgrade === undefined) return undefined;
  return { status: 501, code: 'BATON_ERR_METHOD_NOT_ALLOWED', title: 'protocol upgrades (WebSocket, SPDY) are not proxied: their traffic could not be authorized' };
}

async function authenticate(x: Exchange, { options }: ProxyContext): Promise<Problem | undefined> {
  const result = await options.gate.authenticate(x.req.headers.authorization);
  if (!result.ok) return result.problem;
  if (x.res.writableEnded || x.res.destroyed) {
    // the client went away while the token was verified
    result.lease.release();
    return undefined;
  }
  x.lease = result.lease;
  return undefined;
}

async function mapAccesses(x: Exchange, { options }: ProxyContext): Promise<Problem | 'answered' | undefined> {
  const upstream = x.upstream!;
  const { path, query } = x.target!;
  const method = x.req.method ?? '';
  if (upstream.config.mcp) return mapMcp(x, options);
  // frameworks that honour a method override would run another method than the one authorized
  const override = METHOD_OVERRIDE_HEADERS.find((h) => x.req.headers[h] !== undefined) ?? ([...new URLSearchParams(query).keys()].some((k) => k.toLowerCase() === '_method') ? 'the _method parameter' : undefined);
  if (override) {
    return { status: 400, code: 'BATON_ERR_INVALID_REQUEST', title: `request refused: ${override} would let the upstream run another method than ${PLAIN_METHOD.test(method) ? method : printableMethod(method)}, the one authorized` };
  }
  if (upstream.config.kubernetes && Object.keys(x.req.headers).some((h) => h.startsWith('impersonate-'))) {
    // the API server would act as someone else than the identity the proxy's credential names
    return { status: 403, code: 'BATON_ERR_FORBIDDEN', title: 'baton: Impersonate-* headers are refused: the request runs as the proxy’s own identity, scoped by the token' };
  }
  const mapped = upstream.config.kubernetes ? kubernetesAccess(upstream.name, method, path, query) : plainAccess(upstream.name, upstream.config.routes, method, path);
  if (!mapped.ok) return { status: mapped.status, code: mapped.status === 405 ? 'BATON_ERR_METHOD_NOT_ALLOWED' : 'BATON_ERR_INVALID_REQUEST', title: mapped.message };
  x.accesses = mapped.accesses;
  x.readOnly = mapped.readOnly;
  if (mapped.verb) x.audit = { ...x.audit!, verb: mapped.verb };
  return undefined;
}

/**
 * MCP (Streamable HTTP): a POST carries JSON-RPC messages, each mapped on its own (mcp.ts); GET opens
 * the server's event stream and DELETE ends the session — both need some right on the upstream.
 */
async function mapMcp(x: Exchange, options: HttpProxyOptions): Promise<Problem | 'answered' | undefined> {
  const upstream = x.upstream!;
  const method = x.req.method ?? '';
  if (method === 'GET' || method === 'DELETE') {
    x.readOnly = method === 'GET';
    x.audit = { ...x.audit!, mcp: { method: method === 'GET' ? 'stream' : 'session/delete' } };
    return undefined;
  }
  if (method !== 'POST') return { status: 405, code: 'BATON_ERR_METHOD_NOT_ALLOWED', title: `method ${method} is not part of MCP's Streamable HTTP transport` };
  const limit = Math.min(upstream.config.maxRequestBytes, MAX_MCP_BODY_BYTES);
  const body = await readBody(x.req, limit);
  if (body === 'too-large') return { status: 413, code: 'BATON_ERR_PAYLOAD_TOO_LARGE', title: `MCP request body is larger than ${limit} bytes` };
  if (body === 'aborted') return 'answered';
  const plan = planMcpRequest(upstream.name, body.toString('utf8'));
  if (!plan.ok) {
    answerJson(x, 400, jsonRpcError(null, plan.code, `baton: ${plan.message}`));
    return 'answered';
  }
  const methods = plan.messages.map((m) => ('method' in m ? m.method : m.kind));
  const targets = plan.messages.flatMap((m) => ('access' in m && m.access ? [m.access.target] : []));
  x.audit = { ...x.audit!, mcp: { method: (plan.batch ? `batch: ${methods.join(',')}` : methods[0]!).slice(0, 128), ...(targets.length ? { target: targets.join(',').slice(0, 512) } : {}) } };
  x.accesses = plan.messages.flatMap((m) => ('access' in m && m.access ? [{ resource: m.access.resource, operation: m.access.operation }] : []));
  // initialize, ping, lists, notifications and replies change nothing; a call may change anything
  x.readOnly = x.accesses.length === 0;
  const lists = new Map<string | number, McpListKind>();
  for (const m of plan.messages) if (m.kind === 'request' && m.list) lists.set(m.id, m.list);
  x.mcp = { body, lists };
  const refused = plan.messages.filter((m): m is Extract<McpMessagePlan, { kind: 'refused' }> => m.kind === 'refused');
  if (refused.length) {
    await auditDenial(x, options, `MCP message refused: ${refused[0]!.message}`);
    answerMcpErrors(x, plan.batch, plan.messages, (m) => (m.kind === 'refused' ? jsonRpcError(m.id, m.code, m.message) : undefined));
    return 'answered';
  }
  return undefined;
}

async function authorizeAll(x: Exchange, { options }: ProxyContext): Promise<Problem | 'answered' | undefined> {
  const upstream = x.upstream!;
  const chain = x.lease!.chain;
  if (upstream.config.mcp) return authorizeMcp(x, options);
  const decision = options.gate.decide(chain, x.accesses);
  if (decision.allow) return undefined;
  await auditDenial(x, options, decision.reason, decision.access);
  return decision.problem;
}

/** MCP: some right on the upstream, then each message; one denial refuses the whole batch (nothing runs). */
async function authorizeMcp(x: Exchange, options: HttpProxyOptions): Promise<Problem | 'answered' | undefined> {
  const upstream = x.upstream!;
  const chain = x.lease!.chain;
  const gate = options.gate;
  const scope = gate.decide(chain, [], { prefix: `mcp:${upstream.name}/`, probe: 'call' });
  if (!scope.allow) {
    await auditDenial(x, options, scope.reason, scope.access);
    return scope.problem;
  }
  if (!x.mcp) return undefined; // GET / DELETE
  const plan = planMcpRequest(upstream.name, x.mcp.body.toString('utf8'));
  if (!plan.ok) return undefined; // cannot happen: mapMcp answered it
  const denials = new Map<McpMessagePlan, { reason: string }>();
  for (const m of plan.messages) {
    if (!('access' in m) || !m.access) continue;
    const decision = gate.decide(chain, [{ resource: m.access.resource, operation: m.access.operation }]);
    if (!decision.allow) denials.set(m, { reason: decision.reason.replace(/^permission denied for \S+ on \S+: /, '') });
  }
  if (denials.size === 0) return undefined;
  const [firstMessage, first] = [...denials][0]!;
  const access = 'access' in firstMessage && firstMessage.access ? { resource: firstMessage.access.resource, operation: firstMessage.access.operation } : undefined;
  await auditDenial(x, options, `permission denied for call on ${access?.resource}: ${first.reason}`, access);
  answerMcpErrors(x, plan.batch, plan.messages, (m) => {
    const denied = denials.get(m);
    if (denied && 'access' in m && m.access) return mcpDenial(m.kind === 'request' ? m.id : null, m.access, denied.reason);
    return undefined;
  });
  return 'answered';
}

function startAudit(x: Exchange, { options }: ProxyContext): Promise<Problem | undefined> | undefined {
  const gate = options.gate;
  const event = gate.event(x.lease!.chain, 'allow', x.accesses, x.audit!);
  const receipt = gate.append(event);
  x.receipt = receipt;
  if (x.readOnly && options.ordering !== 'strict') {
    // forwarded while the entry is in flight; forward() releases nothing before it is durable
    receipt.catch(() => {});
    return undefined;
  }
  return receipt.then(
    () => undefined,
    (err: unknown) => auditUnavailable(options, err, 'nothing was forwarded'),
  );
}

// ---- forwarding ------------------------------------------------------------------------------

/**
 * Streams the request to the upstream and its answer back. Bodies are never buffered (except MCP
 * messages, bounded): backpressure flows both ways through `pump` (pump.ts).
 */
function forward(x: Exchange, options: HttpProxyOptions): void {
  const upstream = x.upstream!;
  const { config } = upstream;
  const { req, res } = x;
  const method = req.method ?? 'GET';
  const pathAndQuery = `${upstream.basePath}${x.target!.path}${x.target!.query ? `?${x.target!.query}` : ''}`;
  const headers = upstreamHeaders(req.headers, {
    clientAddress: req.socket.remoteAddress,
    host: req.headers.host,
    proto: 'encrypted' in req.socket && req.socket.encrypted ? 'https' : 'http',
    upstreamHost: upstream.url.host,
  });
  if (x.mcp) {
    headers['content-length'] = String(x.mcp.body.length);
  } else {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > config.maxRequestBytes) return endWith(x, options, { status: 413, code: 'BATON_ERR_PAYLOAD_TOO_LARGE', title: `request body is larger than ${config.maxRequestBytes} bytes` }, 'request too large');
  }
  injectCredential(headers, config.credential, method, pathAndQuery);

  /** Set once the answer is being delivered: from then on a failure can only cut the stream. */
  let settled = false;
  let responseTimer: NodeJS.Timeout | undefined;
  let call: UpstreamCall | undefined;
  const fail = (problem: Problem, endedBy: string) => {
    clearTimeout(responseTimer);
    call?.destroy();
    if (settled) {
      // mid-stream: the client sees the connection end, never a silently truncated "success"
      x.endedBy ??= endedBy;
      res.destroy();
      return;
    }
    settled = true;
    endWith(x, options, problem, endedBy);
  };
  const timeout = (title: string, endedBy: string) => fail({ status: 504, code: 'BATON_ERR_UPSTREAM_TIMEOUT', title }, endedBy);
  x.abort = (reason) => fail({ status: 401, code: 'BATON_ERR_TOKEN_REVOKED', title: reason }, reason);
  responseTimer = setTimeout(() => timeout(`upstream ${upstream.name} did not answer within ${config.timeouts.responseMs} ms`, 'upstream timeout'), config.timeouts.responseMs);

  call = upstream.client.call({ method, path: pathAndQuery, headers }, config.timeouts, {
    onConnectTimeout: () => timeout(`could not connect to upstream ${upstream.name} within ${config.timeouts.connectMs} ms`, 'connect timeout'),
    onIdle: () => timeout(`upstream ${upstream.name} was idle for ${config.timeouts.idleMs} ms`, 'idle timeout'),
    onError: (err) => {
      options.log?.({ event: 'http.upstream_error', upstream: upstream.name, detail: err.message });
      fail({ status: 502, code: 'BATON_ERR_UPSTREAM_UNAVAILABLE', title: `upstream ${upstream.name} is unavailable` }, 'upstream error');
    },
    onResponse: (answer) => {
      clearTimeout(responseTimer);
      const declared = Number(answer.headers['content-length'] ?? 0);
      if (declared > config.maxResponseBytes) {
        // known too large before a byte is sent: a clear error, not a cut stream
        answer.body.destroy();
        return void x.receipt!.then(
          () => fail({ status: 502, code: 'BATON_ERR_UPSTREAM_UNAVAILABLE', title: `upstream ${upstream.name} answered ${declared} bytes, more than the limit of ${config.maxResponseBytes}` }, 'response too large'),
          (err: unknown) => fail(auditUnavailable(options, err, 'the response was withheld'), 'audit unavailable'),
        );
      }
      // rule 6: nothing of the answer reaches the client before the entry is durable
      x.receipt!.then(
        () => {
          if (settled) return void answer.body.destroy();
          deliver(x, answer, options, () => {
            settled = true;
          }).catch((err: unknown) => {
            options.log?.({ event: 'http.response_failed', upstream: upstream.name, detail: asBatonError(err).detail ?? String(err) });
            answer.body.destroy();
            if (!res.headersSent) fail({ status: 502, code: 'BATON_ERR_UPSTREAM_UNAVAILABLE', title: `upstream ${upstream.name} sent an answer the proxy cannot deliver` }, 'bad upstream response');
            else res.destroy();
          });
        },
        (err: unknown) => {
          answer.body.destroy();
          fail(auditUnavailable(options, err, 'the response was withheld'), 'audit unavailable');
        },
      );
    },
  });
  res.on('close', () => {
    if (!res.writableFinished) call?.destroy();
  });

  const upstreamBody = call.body;
  if (x.mcp) {
    upstreamBody.end(x.mcp.body);
  } else if (req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined) {
    // no body (RFC 9112 §6.3): nothing to stream
    req.resume();
    upstreamBody.end();
  } else {
    pump(req, upstreamBody, { max: config.maxRequestBytes }).catch((err: unknown) => {
      if (err instanceof LimitExceeded) fail({ status: 413, code: 'BATON_ERR_PAYLOAD_TOO_LARGE', title: `request body is larger than ${config.maxRequestBytes} bytes` }, 'request too large');
      // other failures (the client went away, the upstream broke) surface through res / the call
    });
  }
}

/** The upstream's answer to the client: headers filtered, MCP lists filtered, bytes counted and bounded. */
async function deliver(x: Exchange, answer: UpstreamAnswer, options: HttpProxyOptions, settle: () => void): Promise<void> {
  const upRes = answer.body;
  const { res } = x;
  const upstream = x.upstream!;
  const status = answer.status;
  const type = String(answer.headers['content-type'] ?? '');
  const lists = x.mcp?.lists;
  const mayUse = (resource: string) => x.lease!.chain.allows(resource, 'call', new Date());
  if (lists && lists.size > 0 && type.startsWith('application/json')) {
    const body = await readBody(upRes, MAX_MCP_JSON_RESPONSE_BYTES);
    if (body === 'too-large' || body === 'aborted') throw new Error(`MCP list response ${body}`);
    const filtered = filterMcpJson(upstream.name, body.toString('utf8'), lists, mayUse);
    if (filtered === undefined) throw new Error('MCP list response is not JSON');
    settle();
    const out = Buffer.from(filtered, 'utf8');
    res.writeHead(status, { ...clientHeaders(answer.headers, ['content-length']), 'content-length': String(out.length) });
    x.bytes = out.length;
    res.end(out);
    recordOutcome(x, options, status);
    return;
  }
  settle();
  const filter = lists && lists.size > 0 && type.startsWith('text/event-stream') ? mcpSseFilter(upstream.name, lists, mayUse) : undefined;
  res.writeHead(status, clientHeaders(answer.headers, filter ? ['content-length'] : []));
  const count = { max: upstream.config.maxResponseBytes, onCount: (n: number) => (x.bytes = n) };
  res.once('finish', () => recordOutcome(x, options, status));
  res.once('close', () => {
    if (!res.writableFinished) recordOutcome(x, options, status, x.endedBy ?? 'client went away');
  });
  try {
    if (filter) {
      // event streams are filtered message by message (rare: MCP lists answered as SSE)
      await Promise.all([pump(upRes, filter, count), pipeline(filter, res)]);
    } else {
      await pump(upRes, res, count);
    }
  } catch (err) {
    if (err instanceof LimitExceeded) x.endedBy = `response larger than ${upstream.config.maxResponseBytes} bytes: cut`;
    res.destroy();
  }
}

// ---- answers ---------------------------------------------------------------------------------

function endWith(x: Exchange, options: HttpProxyOptions, problem: Problem, endedBy: string): void {
  x.endedBy = endedBy;
  if (x.res.headersSent) {
    // mid-stream: the client sees the connection end, never a silently truncated "success"
    x.res.destroy();
    recordOutcome(x, options, x.res.statusCode, endedBy);
    return;
  }
  answerProblem(x, problem);
  recordOutcome(x, options, problem.status, endedBy);
}

function recordOutcome(x: Exchange, options: HttpProxyOptions, status: number, tag?: string): void {
  if (!x.receipt) return;
  const receipt = x.receipt;
  x.receipt = undefined; // once
  options.gate.outcome(receipt, { status, bytes: x.bytes, durationMs: performance.now() - x.started, ...(tag ? { tag: tag.slice(0, 64) } : {}) });
}

function answerProblem(x: Exchange, p: Problem): void {
  const { res } = x;
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  x.answered = true;
  const body = JSON.stringify({ type: `https://baton.dev/errors/${p.code}`, title: p.title, status: p.status, code: p.code, ...p.extra });
  res.writeHead(p.status, {
    'content-type': 'application/problem+json',
    'cache-control': 'no-store',
    'content-length': Buffer.byteLength(body),
    ...(p.wwwAuthenticate ? { 'www-authenticate': p.wwwAuthenticate } : {}),
  });
  res.end(body);
}

function answerJson(x: Exchange, status: number, value: unknown): void {
  const body = JSON.stringify(value);
  x.answered = true;
  x.res.writeHead(status, { 'content-type': 'application/json', 'cache-control': 'no-store', 'content-length': Buffer.byteLength(body) });
  x.res.end(body);
}

/**
 * A refused MCP request: each request message gets its error (the refusal or denial, else "not run:
 * another message of this batch was refused"); notifications and replies get none (JSON-RPC).
 */
function answerMcpErrors(x: Exchange, batch: boolean, messages: readonly McpMessagePlan[], errorOf: (m: McpMessagePlan) => ReturnType<typeof jsonRpcError> | undefined): void {
  const answers = messages.flatMap((m) => {
    const own = errorOf(m);
    if (own && (m.kind === 'request' || (m.kind === 'refused' && m.id !== null))) return [own];
    if (m.kind === 'request') return [jsonRpcError(m.id, MCP_FORBIDDEN, 'baton: not run: another message of this batch was refused (a batch runs whole or not at all)')];
    return [];
  });
  if (answers.length === 0) {
    x.answered = true;
    x.res.writeHead(202, { 'content-length': '0' });
    x.res.end();
    return;
  }
  answerJson(x, 200, batch ? answers : answers[0]);
}

async function auditDenial(x: Exchange, options: HttpProxyOptions, reason: string, denied?: Access): Promise<void> {
  x.denialAudited = true;
  try {
    await options.gate.append(options.gate.event(x.lease!.chain, 'deny', x.accesses, x.audit!, reason, denied));
  } catch (err) {
    // the denial stands either way; record that its entry could not be written
    options.log?.({ event: 'audit.deny_unrecorded', detail: asBatonError(err).detail });
  }
}

function auditUnavailable(options: HttpProxyOptions, err: unknown, what: string): Problem {
  const e = asBatonError(err);
  options.log?.({ event: 'audit.unavailable', code: e.code, detail: e.detail });
  return { status: 503, code: 'BATON_ERR_AUDIT_UNAVAILABLE', title: `audit store unavailable; request refused (${what})` };
}

// ---- helpers ---------------------------------------------------------------------------------

/** The whole body up to `max` bytes, or why not. */
function readBody(stream: Readable, max: number): Promise<Buffer | 'too-large' | 'aborted'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    stream.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > max) {
        stream.removeAllListeners('data');
        stream.resume();
        resolve('too-large');
        return;
      }
      chunks.push(chunk);
    });
    stream.once('end', () => resolve(Buffer.concat(chunks)));
    stream.once('error', () => resolve('aborted'));
    stream.once('aborted', () => resolve('aborted'));
  });
}

/** Headers some frameworks read as "the real method" (Express method-override, Spring, Rails, Google APIs). */
const METHOD_OVERRIDE_HEADERS = ['x-http-method-override', 'x-http-method', 'x-method-override'];


const PLAIN_METHOD = /^[A-Z]{1,16}$/;

function auditMethod(method: string | undefined): string {
  return method && PLAIN_METHOD.test(method) ? method : 'OTHER';
}
