/**
 * MCP enforcement for the HTTP proxy (issue 13): what each JSON-RPC message of a Streamable HTTP
 * POST touches, and list responses cut down to what the token may use.
 *
 * A POST body carries one JSON-RPC message or a batch. Each message is planned on its own
 * (DESIGN.md rule 1): a tool call, resource read or prompt get names exactly one Baton resource
 * (`mcp:<upstream>/<tool>`, `mcp:<upstream>/resources/<uri>`, `mcp:<upstream>/prompts/<name>`) with
 * the operation `call`; session plumbing and lists need no specific right; every other method is
 * refused, because a method we do not know might act on something nobody authorized (fail closed).
 * A list is forwarded as is and its answer filtered, so a client never learns of tools it may not call.
 *
 * Pure: no I/O, no state, except the stream Transform that filters `text/event-stream` answers.
 *
 * @see https://modelcontextprotocol.io/specification/2025-06-18/basic/transports#streamable-http
 * @see https://www.jsonrpc.org/specification
 */
import { duplicateKey } from './json-keys.ts';
import { Transform, type TransformCallback } from 'node:stream';
import { printable } from '../../token/vocabulary.ts';

/**
 * JSON-RPC 2.0's own error codes, as the proxy uses them.
 *
 * @see https://www.jsonrpc.org/specification#error_object
 * @example jsonRpcError(null, JSON_RPC_ERRORS.PARSE_ERROR, 'parse error')
 */
export const JSON_RPC_ERRORS = {
  /** The body is not JSON. */
  PARSE_ERROR: -32700,
  /** JSON, but not a JSON-RPC request, notification, response or batch of them. */
  INVALID_REQUEST: -32600,
  /** A method the proxy does not let through. */
  METHOD_NOT_FOUND: -32601,
  /** A method the proxy knows, with a name or uri it cannot turn into a Baton resource. */
  INVALID_PARAMS: -32602,
} as const;

/**
 * The JSON-RPC error code the proxy uses for a call the token does not allow (in the
 * implementation-defined server-error range -32000…-32099; MCP itself reserves none for this).
 *
 * @example mcpDenial(7, access, 'no right in the token grants it').error.code === MCP_FORBIDDEN
 */
export const MCP_FORBIDDEN = -32003;

/**
 * Batches beyond this are refused whole: each element costs an authorization and an audit target.
 *
 * @example
 * planMcpRequest('tools', JSON.stringify(Array.from({ length: MAX_MCP_BATCH + 1 }, (_, id) => ({ jsonrpc: '2.0', id, method: 'ping' }))))
 * // → { ok: false, code: -32600, message: 'batch of 101 messages; at most 100 are accepted' }
 */
export const MAX_MCP_BATCH = 100;

/** One (resource, `call`) pair a message needs, with what it names for the audit. */
export interface McpAccess {
  resource: string;
  operation: 'call';
  /** tool name, prompt name or resource uri, for the audit */
  target: string;
  /** The JSON-RPC method (`tools/call`, `resources/read` …). */
  method: string;
}

/** Which list a forwarded list request asked for, so that its answer can be filtered. */
export type McpListKind = 'tools' | 'resources' | 'resourceTemplates' | 'prompts';

/** What the proxy does with one JSON-RPC message. */
export type McpMessagePlan =
  | { kind: 'request'; id: string | number; method: string; access?: McpAccess; list?: McpListKind }
  | { kind: 'notification'; method: string; access?: McpAccess }
  /** The client's reply to a server request (sampling, roots, elicitation). */
  | { kind: 'response'; id: string | number | null }
  /** A malformed element or an unsupported method: answered by the proxy, never forwarded. */
  | { kind: 'refused'; id: string | number | null; code: number; message: string };

/**
 * A whole POST body, planned; `ok: false` when it is not JSON-RPC at all (the proxy answers a
 * JSON-RPC error with id null, HTTP 400).
 */
export type McpRequestPlan = { ok: true; batch: boolean; messages: McpMessagePlan[] } | { ok: false; code: number; message: string };

/** True when the token may `call` that resource. */
export type MayUse = (resource: string) => boolean;

/** A JSON-RPC error response object. */
export interface JsonRpcErrorResponse {
  jsonrpc: '2.0';
  id: string | number | null;
  error: { code: number; message: string; data?: Record<string, unknown> };
}

type JsonObject = Record<string, unknown>;
type RequestId = string | number;

/** A name the MCP spec (2025-11-25, "Tool names") recommends, and a path segment Baton can hold. */
const NAME = /^[A-Za-z0-9_.-]{1,128}$/;
/** Tool names that would read as the prefixes of resources and prompts in `mcp:<upstream>/…`. */
const RESERVED_NAMES: ReadonlySet<string> = new Set(['resources', 'prompts']);
/** Printable ASCII without spaces or backslashes: what a Baton resource may contain after the `/`. */
const URI = /^[!-[\]-~]+$/;
const MAX_URI_LENGTH = 400;
/** parseResource's limit (src/token/vocabulary.ts): a longer resource could never be granted. */
const MAX_RESOURCE_LENGTH = 512;

// ---- requests ----------------------------------------------------------------------------------

/**
 * Plan a Streamable HTTP POST body for the MCP upstream `upstream`: per message, the access it
 * needs, the list it asks for, or why the proxy answers it itself.
 *
 * @example
 * planMcpRequest('tools', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"refund_order"}}')
 * // → { ok: true, batch: false, messages: [{ kind: 'request', id: 1, method: 'tools/call',
 * //      access: { resource: 'mcp:tools/refund_order', operation: 'call', target: 'refund_order', method: 'tools/call' } }] }
 * planMcpRequest('tools', '[]') // → { ok: false, code: -32600, message: 'empty batch' }
 */
export function planMcpRequest(upstream: string, body: string): McpRequestPlan {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch (err) {
    // V8's message quotes the input: printable() keeps it short and plain
    return { ok: false, code: JSON_RPC_ERRORS.PARSE_ERROR, message: `parse error: ${printable(err instanceof Error ? err.message : String(err))}` };
  }
  // a repeated key might be read differently upstream (JSON.parse keeps the last one)
  const repeated = duplicateKey(body);
  if (repeated !== undefined) return invalidBody(`duplicate key "${printable(repeated)}" in an object: refused, an upstream might read the other value`);
  if (isObject(parsed)) return { ok: true, batch: false, messages: [planMessage(upstream, parsed)] };
  if (!Array.isArray(parsed)) return invalidBody('the body is neither a JSON-RPC message (object) nor a batch (array)');
  if (parsed.length === 0) return invalidBody('empty batch');
  if (parsed.length > MAX_MCP_BATCH) return invalidBody(`batch of ${parsed.length} messages; at most ${MAX_MCP_BATCH} are accepted`);
  const duplicate = duplicateRequestId(parsed);
  // two requests with one id would make the upstream's answers impossible to tell apart
  if (duplicate !== undefined) return invalidBody(`duplicate request id ${typeof duplicate === 'string' ? `"${printable(duplicate)}"` : duplicate} in one batch`);
  return { ok: true, batch: true, messages: parsed.map((element) => planMessage(upstream, element)) };
}

function invalidBody(message: string): McpRequestPlan {
  return { ok: false, code: JSON_RPC_ERRORS.INVALID_REQUEST, message };
}

/** The first id used by two requests of the batch (1 and "1" differ, as in the response matching). */
function duplicateRequestId(batch: unknown[]): RequestId | undefined {
  const seen = new Set<RequestId>();
  for (const element of batch) {
    if (!isObject(element) || !Object.hasOwn(element, 'method') || !isRequestId(element.id)) continue;
    if (seen.has(element.id)) return element.id;
    seen.add(element.id);
  }
  return undefined;
}

/** One element: its shape first (request, notification, response), then what its method touches. */
function planMessage(upstream: string, element: unknown): McpMessagePlan {
  if (!isObject(element)) return malformed(null, 'a batch element is not an object');
  const has = (key: string) => Object.hasOwn(element, key);
  const readableId = isRequestId(element.id) ? element.id : null;
  if (element.jsonrpc !== '2.0') return malformed(readableId, 'jsonrpc must be "2.0"');
  if (has('method')) {
    // a message that is both a call and an answer might be read either way upstream
    if (has('result') || has('error')) return malformed(readableId, 'a message has either a method or a result/error, not both');
    if (typeof element.method !== 'string') return malformed(readableId, 'method must be a string');
    if (has('params') && !isObject(element.params)) return malformed(readableId, 'params must be an object');
    const params = isObject(element.params) ? element.params : {};
    if (!has('id')) return planNotification(element.method);
    if (readableId === null) return malformed(null, 'a request id must be a string or a number');
    return planRequest(upstream, readableId, element.method, params);
  }
  if (has('result') || has('error')) return planResponse(element, readableId);
  return malformed(readableId, 'not a request, notification or response');
}

function planResponse(element: JsonObject, id: RequestId | null): McpMessagePlan {
  if (Object.hasOwn(element, 'result') && Object.hasOwn(element, 'error')) return malformed(id, 'a response has a result or an error, not both');
  // JSON-RPC lets an error answer carry id null (the request could not be read); a result needs its id
  if (id === null && !(Object.hasOwn(element, 'error') && element.id === null)) return malformed(null, 'a response id must be a string or a number');
  return { kind: 'response', id };
}

function planRequest(upstream: string, id: RequestId, method: string, params: JsonObject): McpMessagePlan {
  const rule = REQUEST_METHODS.get(method);
  if (!rule) return unsupported(id, method);
  const mapped = rule(upstream, params, method);
  if ('invalid' in mapped) return { kind: 'refused', id, code: JSON_RPC_ERRORS.INVALID_PARAMS, message: `baton: invalid params for ${method}: ${mapped.invalid}` };
  return { kind: 'request', id, method, ...mapped };
}

/** `notifications/*` change nothing upstream; anything else sent without an id is dropped (no reply). */
function planNotification(method: string): McpMessagePlan {
  if (method.startsWith('notifications/')) return { kind: 'notification', method };
  return unsupported(null, method);
}

function unsupported(id: RequestId | null, method: string): McpMessagePlan {
  return { kind: 'refused', id, code: JSON_RPC_ERRORS.METHOD_NOT_FOUND, message: `baton: MCP method "${printable(method)}" is not supported through the proxy` };
}

function malformed(id: RequestId | null, why: string): McpMessagePlan {
  return { kind: 'refused', id, code: JSON_RPC_ERRORS.INVALID_REQUEST, message: `baton: invalid JSON-RPC message: ${why}` };
}

/** What a request needs, or why its params cannot name a Baton resource. */
type Mapping = { access?: McpAccess; list?: McpListKind } | { invalid: string };
type RequestRule = (upstream: string, params: JsonObject, method: string) => Mapping;

const open: RequestRule = () => ({});
const listing =
  (list: McpListKind): RequestRule =>
  () => ({ list });
const callTool: RequestRule = (upstream, params, method) => named(upstream, '', params.name, 'params.name', method);
const getPrompt: RequestRule = (upstream, params, method) => named(upstream, 'prompts/', params.name, 'params.name', method);
const useResource: RequestRule = (upstream, params, method) => located(upstream, params.uri, 'params.uri', method);
const complete: RequestRule = (upstream, params, method) => {
  const ref = params.ref;
  if (!isObject(ref)) return { invalid: 'params.ref must be an object' };
  if (ref.type === 'ref/prompt') return named(upstream, 'prompts/', ref.name, 'params.ref.name', method);
  if (ref.type === 'ref/resource') return located(upstream, ref.uri, 'params.ref.uri', method);
  return { invalid: 'params.ref.type must be "ref/prompt" or "ref/resource"' };
};

/**
 * Every request method the proxy lets through, and what it needs. Methods with no access still need
 * *some* right on the upstream (the proxy checks that apart); anything not listed is refused.
 */
const REQUEST_METHODS: ReadonlyMap<string, RequestRule> = new Map([
  ['initialize', open],
  ['ping', open],
  ['logging/setLevel', open],
  ['tools/list', listing('tools')],
  ['resources/list', listing('resources')],
  ['resources/templates/list', listing('resourceTemplates')],
  ['prompts/list', listing('prompts')],
  ['tools/call', callTool],
  ['prompts/get', getPrompt],
  ['resources/read', useResource],
  ['resources/subscribe', useResource],
  ['resources/unsubscribe', useResource],
  ['completion/complete', complete],
]);

/** A tool (`prefix` '') or prompt (`prefix` 'prompts/') by name. */
function named(upstream: string, prefix: '' | 'prompts/', name: unknown, field: string, method: string): Mapping {
  const problem = nameProblem(name);
  if (problem !== undefined) return { invalid: `${field} ${problem}` };
  return withResource(`mcp:${upstream}/${prefix}${name as string}`, name as string, method);
}

/** A resource (or resource template) by uri. */
function located(upstream: string, uri: unknown, field: string, method: string): Mapping {
  const problem = uriProblem(uri);
  if (problem !== undefined) return { invalid: `${field} ${problem}` };
  return withResource(`mcp:${upstream}/resources/${uri as string}`, uri as string, method);
}

function withResource(resource: string, target: string, method: string): Mapping {
  if (resource.length > MAX_RESOURCE_LENGTH) return { invalid: `names a Baton resource longer than ${MAX_RESOURCE_LENGTH} characters` };
  return { access: { resource, operation: 'call', target, method } };
}

/** Why a tool or prompt name cannot be a Baton resource segment; undefined when it can. */
function nameProblem(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'must be a string';
  if (!NAME.test(name)) return `"${printable(name)}" is not 1-128 characters of A-Z a-z 0-9 _ . -`;
  if (RESERVED_NAMES.has(name)) return `"${name}" is reserved: mcp:<upstream>/${name}/ names ${name}, not a tool`;
  return undefined;
}

/** Why a resource uri cannot be a Baton resource; undefined when it can. */
function uriProblem(uri: unknown): string | undefined {
  if (typeof uri !== 'string') return 'must be a string';
  if (uri.length === 0 || uri.length > MAX_URI_LENGTH) return `must be 1-${MAX_URI_LENGTH} characters`;
  if (!URI.test(uri)) return `"${printable(uri)}" has a space, backslash, control or non-ASCII character`;
  return undefined;
}

// ---- answers -----------------------------------------------------------------------------------

/**
 * A JSON-RPC error response.
 *
 * @example jsonRpcError(null, -32700, 'parse error') // → { jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } }
 */
export function jsonRpcError(id: string | number | null, code: number, message: string, data?: Record<string, unknown>): JsonRpcErrorResponse {
  return { jsonrpc: '2.0', id, error: data === undefined ? { code, message } : { code, message, data } };
}

/**
 * The proxy's answer to a message the token may not send: what was asked for (never the arguments)
 * and why it was refused.
 *
 * @example
 * mcpDenial(7, { resource: 'mcp:tools/refund_order', operation: 'call', target: 'refund_order', method: 'tools/call' }, 'no right in the token grants it')
 * // → { jsonrpc: '2.0', id: 7, error: { code: -32003,
 * //      message: 'baton: permission denied for call on mcp:tools/refund_order: no right in the token grants it',
 * //      data: { resource: 'mcp:tools/refund_order', operation: 'call', target: 'refund_order', method: 'tools/call' } } }
 */
export function mcpDenial(id: string | number | null, access: McpAccess, reason: string): JsonRpcErrorResponse {
  const { resource, operation, target, method } = access;
  return jsonRpcError(id, MCP_FORBIDDEN, `baton: permission denied for ${operation} on ${resource}: ${reason}`, { resource, operation, target, method });
}

// ---- list filtering ----------------------------------------------------------------------------

/**
 * Where each list keeps its items, and the Baton resource an item stands for (undefined: an item no
 * token could use, dropped). The same rules as the requests above, so a listed item is callable.
 */
const LIST_ITEMS: Readonly<Record<McpListKind, { field: string; resource: (upstream: string, item: JsonObject) => string | undefined }>> = {
  tools: { field: 'tools', resource: (upstream, item) => nameResource(upstream, '', item.name) },
  prompts: { field: 'prompts', resource: (upstream, item) => nameResource(upstream, 'prompts/', item.name) },
  resources: { field: 'resources', resource: (upstream, item) => uriResource(upstream, item.uri) },
  resourceTemplates: { field: 'resourceTemplates', resource: (upstream, item) => uriResource(upstream, item.uriTemplate) },
};

function nameResource(upstream: string, prefix: '' | 'prompts/', name: unknown): string | undefined {
  return nameProblem(name) === undefined ? `mcp:${upstream}/${prefix}${name as string}` : undefined;
}

function uriResource(upstream: string, uri: unknown): string | undefined {
  return uriProblem(uri) === undefined ? `mcp:${upstream}/resources/${uri as string}` : undefined;
}

/**
 * Filter a complete `application/json` MCP response body (one response object or an array of them):
 * list results answering one of `lists`' ids keep only the items `mayUse` allows; everything else
 * (other responses, errors, `nextCursor`, `_meta`) is untouched. A body holding a list answer is
 * re-serialised, so the client reads exactly what was filtered.
 *
 * @returns the new body text (the same text when no response answered a list), or undefined when the
 *   body is not valid JSON — the proxy then refuses to deliver it (fail closed).
 * @example
 * filterMcpJson('tools', '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"},{"name":"b"}]}}',
 *   new Map([[1, 'tools']]), (r) => r === 'mcp:tools/a')
 * // → '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}]}}'
 */
export function filterMcpJson(upstream: string, body: string, lists: ReadonlyMap<string | number, McpListKind>, mayUse: MayUse): string | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    return undefined;
  }
  // a client reading a repeated key the other way could see an answer the proxy did not filter
  if (duplicateKey(body) !== undefined) return undefined;
  const filtered = filterParsed(upstream, parsed, lists, mayUse);
  return filtered.matched ? JSON.stringify(filtered.value) : body;
}

/** A parsed body or SSE payload, filtered; `matched` when some response answered a list. */
function filterParsed(upstream: string, parsed: unknown, lists: ReadonlyMap<RequestId, McpListKind>, mayUse: MayUse): { matched: boolean; value: unknown } {
  if (!Array.isArray(parsed)) return filterResponse(upstream, parsed, lists, mayUse);
  let matched = false;
  const value = parsed.map((element) => {
    const one = filterResponse(upstream, element, lists, mayUse);
    matched ||= one.matched;
    return one.value;
  });
  return { matched, value };
}

function filterResponse(upstream: string, message: unknown, lists: ReadonlyMap<RequestId, McpListKind>, mayUse: MayUse): { matched: boolean; value: unknown } {
  if (!isObject(message) || !isRequestId(message.id) || Object.hasOwn(message, 'method')) return { matched: false, value: message };
  const kind = lists.get(message.id); // Map keys compare as SameValueZero: 1 and "1" stay apart
  if (kind === undefined || !isObject(message.result)) return { matched: false, value: message };
  const { field, resource } = LIST_ITEMS[kind];
  const items = message.result[field];
  if (items === undefined) return { matched: true, value: message };
  // anything but an array cannot be checked item by item: the client gets an empty list instead
  const kept = Array.isArray(items) ? items.filter((item) => isObject(item) && permitted(mayUse, resource(upstream, item))) : [];
  return { matched: true, value: { ...message, result: { ...message.result, [field]: kept } } };
}

function permitted(mayUse: MayUse, resource: string | undefined): boolean {
  if (resource === undefined || resource.length > MAX_RESOURCE_LENGTH) return false;
  try {
    return mayUse(resource) === true;
  } catch {
    return false; // a check that cannot answer is a no
  }
}

// ---- text/event-stream -------------------------------------------------------------------------

const LF = 0x0a;
const CR = 0x0d;
/**
 * Default bound on one SSE event (4 MiB): a list answer is one event, and larger ones are not plausible.
 *
 * @example mcpSseFilter('tools', lists, mayUse, { maxEventBytes: MAX_SSE_EVENT_BYTES / 4 })
 */
export const MAX_SSE_EVENT_BYTES = 4 * 1024 * 1024;

/**
 * A Transform for `text/event-stream` MCP answers: each event whose `data` is a JSON-RPC response to
 * one of `lists`' ids is re-written with its list filtered as {@link filterMcpJson} does; every other
 * event (notifications, other responses, comments, pings, non-JSON data) passes byte for byte.
 *
 * Events are split as the SSE parser of the client splits them (CRLF, LF and a lone CR all end a
 * line; a blank line ends an event; a leading BOM is ignored) — a filter that split differently could
 * be walked past. An event larger than `maxEventBytes` (default 4 MiB) errors the stream instead of
 * buffering without bound, and so does `data` that starts like JSON (`{`, `[`) but does not parse,
 * since it might be a list the filter cannot read (fail closed, as filterMcpJson).
 *
 * @see https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
 * @example
 * await pipeline(upstreamResponse, mcpSseFilter('tools', new Map([[1, 'tools']]), mayUse), clientResponse);
 */
export function mcpSseFilter(upstream: string, lists: ReadonlyMap<string | number, McpListKind>, mayUse: MayUse, opts: { maxEventBytes?: number } = {}): Transform {
  const max = opts.maxEventBytes ?? MAX_SSE_EVENT_BYTES;
  if (!Number.isSafeInteger(max) || max <= 0) throw new TypeError('maxEventBytes must be a positive integer');
  return new McpSseFilter(upstream, lists, mayUse, max);
}

class McpSseFilter extends Transform {
  /** Bytes of the event being read, not yet passed on. */
  #parts: Buffer[] = [];
  #size = 0;
  /** Bytes of the current line so far (terminators excluded): 0 at a line start. */
  #lineLength = 0;
  /** The last byte was a CR ending a line: a following LF belongs to the same line ending. */
  #afterCr = false;
  /** That CR ended a blank line: the event ends after it (and after its LF, if one follows). */
  #endAfterCr = false;
  readonly #decoder = new TextDecoder(); // strips a leading BOM, as the client's parser does at stream start

  constructor(
    private readonly upstream: string,
    private readonly lists: ReadonlyMap<RequestId, McpListKind>,
    private readonly mayUse: MayUse,
    private readonly maxEventBytes: number,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    try {
      this.#scan(chunk);
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  override _flush(done: TransformCallback): void {
    try {
      // a stream that ends mid-event: filtered as well, whatever the client's parser makes of it
      if (this.#size > 0) this.#emit(Buffer.alloc(0));
      done();
    } catch (err) {
      done(err as Error);
    }
  }

  /** Find where events end in `chunk`; pass on each complete event, keep the rest. */
  #scan(chunk: Buffer): void {
    let start = 0;
    for (let i = 0; i < chunk.length; i++) {
      const byte = chunk[i];
      if (this.#afterCr) {
        this.#afterCr = false;
        const ends = this.#endAfterCr;
        this.#endAfterCr = false;
        if (byte === LF) {
          if (ends) {
            this.#emit(chunk.subarray(start, i + 1));
            start = i + 1;
          }
          continue;
        }
        if (ends) {
          this.#emit(chunk.subarray(start, i));
          start = i;
        }
      }
      if (byte === LF) {
        if (this.#lineLength === 0) {
          this.#emit(chunk.subarray(start, i + 1));
          start = i + 1;
        }
        this.#lineLength = 0;
      } else if (byte === CR) {
        this.#afterCr = true;
        this.#endAfterCr = this.#lineLength === 0;
        this.#lineLength = 0;
      } else {
        this.#lineLength++;
      }
    }
    const rest = chunk.subarray(start);
    if (rest.length > 0) this.#hold(rest);
  }

  #hold(part: Buffer): void {
    this.#size += part.length;
    if (this.#size > this.maxEventBytes) throw new Error(`MCP event stream: an event is larger than ${this.maxEventBytes} bytes`);
    this.#parts.push(part);
  }

  /** The held bytes plus `last` make one event: pass it on, filtered. */
  #emit(last: Buffer): void {
    if (last.length > 0) this.#hold(last);
    const raw = this.#parts.length === 1 ? (this.#parts[0] as Buffer) : Buffer.concat(this.#parts, this.#size);
    this.#parts = [];
    this.#size = 0;
    this.push(this.#filterEvent(raw));
  }

  #filterEvent(raw: Buffer): Buffer {
    const lines = splitLines(this.#decoder.decode(raw));
    const data = eventData(lines);
    if (data === undefined) return raw;
    let parsed: unknown;
    try {
      parsed = JSON.parse(data);
    } catch {
      if (/^[ \t\r\n]*[[{]/.test(data)) throw new Error('MCP event stream: an event holds JSON the proxy cannot parse');
      return raw; // not JSON at all: a ping, a plain-text message
    }
    if (duplicateKey(data) !== undefined) throw new Error('MCP event stream: an event repeats a key in one object');
    const filtered = filterParsed(this.upstream, parsed, this.lists, this.mayUse);
    if (!filtered.matched) return raw;
    return Buffer.from(replaceData(lines, JSON.stringify(filtered.value)), 'utf8');
  }
}

/** An event's text as [line, ending] pairs; the last line may have no ending (end of stream). */
function splitLines(text: string): Array<[line: string, ending: string]> {
  const pieces = text.split(/(\r\n|\r|\n)/);
  const out: Array<[string, string]> = [];
  for (let i = 0; i < pieces.length; i += 2) out.push([pieces[i] as string, pieces[i + 1] ?? '']);
  if (out.length > 1 && out[out.length - 1]![0] === '' && out[out.length - 1]![1] === '') out.pop();
  return out;
}

/** The field a line sets (`data`, `event`, `id` …), or undefined for a comment or a blank line. */
function fieldOf(line: string): string | undefined {
  if (line === '' || line.startsWith(':')) return undefined;
  const colon = line.indexOf(':');
  return colon === -1 ? line : line.slice(0, colon);
}

/** The event's data lines joined with LF, as the client's parser joins them; undefined if none. */
function eventData(lines: Array<[string, string]>): string | undefined {
  const values: string[] = [];
  for (const [line] of lines) {
    if (fieldOf(line) !== 'data') continue;
    const colon = line.indexOf(':');
    const value = colon === -1 ? '' : line.slice(colon + 1);
    values.push(value.startsWith(' ') ? value.slice(1) : value); // one leading space is syntax, not data
  }
  return values.length > 0 ? values.join('\n') : undefined;
}

/** The event with its data lines replaced by one holding `json`; every other line is kept as it was. */
function replaceData(lines: Array<[string, string]>, json: string): string {
  let out = '';
  let written = false;
  for (const [line, ending] of lines) {
    if (fieldOf(line) !== 'data') {
      out += line + ending;
    } else if (!written) {
      out += `data: ${json}${ending}`; // JSON.stringify escapes CR and LF, so this stays one line
      written = true;
    }
  }
  return out;
}

// ---- shared ------------------------------------------------------------------------------------

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** JSON-RPC ids are strings or numbers (MCP also forbids null for requests). */
function isRequestId(value: unknown): value is RequestId {
  return typeof value === 'string' || (typeof value === 'number' && Number.isFinite(value));
}
