/**
 * MCP enforcement helpers (issue 13): which (resource, call) pair each JSON-RPC message needs, which
 * messages the proxy answers itself, and list answers cut down to what the token may use — in
 * complete JSON bodies and in event streams split at every byte.
 */
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import {
  filterMcpJson,
  JSON_RPC_ERRORS,
  jsonRpcError,
  MAX_MCP_BATCH,
  MCP_FORBIDDEN,
  mcpDenial,
  mcpSseFilter,
  type MayUse,
  type McpListKind,
  type McpMessagePlan,
  type McpRequestPlan,
  planMcpRequest,
} from '../../../src/proxy/http/mcp.ts';
import { parseResource } from '../../../src/token/vocabulary.ts';

const req = (method: string, params?: unknown, id: unknown = 1) => ({ jsonrpc: '2.0', id, method, ...(params === undefined ? {} : { params }) });

function plan(body: unknown): McpRequestPlan {
  return planMcpRequest('tools', typeof body === 'string' ? body : JSON.stringify(body));
}

/** The plan of a body holding one message. */
function one(message: unknown): McpMessagePlan {
  const p = plan(message);
  if (!p.ok) throw new Error(`body refused: ${p.message}`);
  expect(p.batch).toBe(false);
  expect(p.messages).toHaveLength(1);
  return p.messages[0]!;
}

function refusal(message: unknown): { id: string | number | null; code: number; message: string } {
  const m = one(message);
  if (m.kind !== 'refused') throw new Error(`not refused: ${JSON.stringify(m)}`);
  return m;
}

describe('planMcpRequest: what each method needs', () => {
  const ACCESS: Array<[method: string, params: unknown, resource: string, target: string]> = [
    ['tools/call', { name: 'refund_order', arguments: { id: 7 } }, 'mcp:tools/refund_order', 'refund_order'],
    ['tools/call', { name: 'a.b-c_D9' }, 'mcp:tools/a.b-c_D9', 'a.b-c_D9'],
    ['tools/call', { name: 'resources.x' }, 'mcp:tools/resources.x', 'resources.x'],
    ['tools/call', { name: 'x'.repeat(128) }, `mcp:tools/${'x'.repeat(128)}`, 'x'.repeat(128)],
    ['resources/read', { uri: 'file:///docs/a.md' }, 'mcp:tools/resources/file:///docs/a.md', 'file:///docs/a.md'],
    ['resources/read', { uri: 'u'.repeat(400) }, `mcp:tools/resources/${'u'.repeat(400)}`, 'u'.repeat(400)],
    ['resources/subscribe', { uri: 'db://orders?x=1&y=%20' }, 'mcp:tools/resources/db://orders?x=1&y=%20', 'db://orders?x=1&y=%20'],
    ['resources/unsubscribe', { uri: 'db://orders' }, 'mcp:tools/resources/db://orders', 'db://orders'],
    ['prompts/get', { name: 'greet', arguments: { who: 'x' } }, 'mcp:tools/prompts/greet', 'greet'],
    ['completion/complete', { ref: { type: 'ref/prompt', name: 'greet' }, argument: { name: 'who', value: 'a' } }, 'mcp:tools/prompts/greet', 'greet'],
    ['completion/complete', { ref: { type: 'ref/resource', uri: 'file:///{path}' }, argument: { name: 'path', value: 'a' } }, 'mcp:tools/resources/file:///{path}', 'file:///{path}'],
  ];

  it.each(ACCESS)('%s %j → %s', (method, params, resource, target) => {
    expect(one(req(method, params, 'r-1'))).toEqual({ kind: 'request', id: 'r-1', method, access: { resource, operation: 'call', target, method } });
    expect(() => parseResource(resource)).not.toThrow(); // every resource the proxy asks about is in the vocabulary
  });

  const OPEN: Array<[method: string, list: McpListKind | undefined]> = [
    ['initialize', undefined],
    ['ping', undefined],
    ['logging/setLevel', undefined],
    ['tools/list', 'tools'],
    ['resources/list', 'resources'],
    ['resources/templates/list', 'resourceTemplates'],
    ['prompts/list', 'prompts'],
  ];

  it.each(OPEN)('%s needs no specific right (list %s)', (method, list) => {
    expect(one(req(method, {}, 3))).toEqual({ kind: 'request', id: 3, method, ...(list ? { list } : {}) });
    expect(one(req(method, undefined, 0))).toEqual({ kind: 'request', id: 0, method, ...(list ? { list } : {}) }); // params are optional
  });

  it('keeps string and number ids apart, and accepts any finite number', () => {
    expect(one(req('ping', undefined, '1'))).toMatchObject({ id: '1' });
    expect(one(req('ping', undefined, 1))).toMatchObject({ id: 1 });
    expect(one(req('ping', undefined, -2.5))).toMatchObject({ id: -2.5 });
    expect(one(req('ping', undefined, ''))).toMatchObject({ kind: 'request', id: '' });
  });

  it('lets notifications/* through with no access and drops other notifications', () => {
    for (const method of ['notifications/initialized', 'notifications/cancelled', 'notifications/progress', 'notifications/roots/list_changed']) {
      expect(one({ jsonrpc: '2.0', method, params: { requestId: 1 } })).toEqual({ kind: 'notification', method });
    }
    // a call sent without an id must not run unauthorized: refused, id null (a notification gets no reply)
    expect(one({ jsonrpc: '2.0', method: 'tools/call', params: { name: 'delete_everything' } })).toEqual({
      kind: 'refused',
      id: null,
      code: -32601,
      message: 'baton: MCP method "tools/call" is not supported through the proxy',
    });
    expect(refusal({ jsonrpc: '2.0', method: 'notifications' })).toMatchObject({ id: null, code: -32601 });
  });

  it('reads client replies to server requests as responses', () => {
    expect(one({ jsonrpc: '2.0', id: 'srv-1', result: { roots: [] } })).toEqual({ kind: 'response', id: 'srv-1' });
    expect(one({ jsonrpc: '2.0', id: 4, error: { code: -1, message: 'user declined' } })).toEqual({ kind: 'response', id: 4 });
    expect(one({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } })).toEqual({ kind: 'response', id: null });
  });
});

describe('planMcpRequest: refusals', () => {
  const BAD_NAMES: Array<[label: string, name: unknown]> = [
    ['a path', '../x'],
    ['a slash', 'a/b'],
    ['the resources prefix', 'resources'],
    ['the prompts prefix', 'prompts'],
    ['unicode', 'tööl'],
    ['a look-alike slash', 'a\u2215b'],
    ['more than 128 characters', 'x'.repeat(129)],
    ['empty', ''],
    ['a space', 'a b'],
    ['a wildcard', 'refund*'],
    ['a colon', 'a:b'],
    ['a control character', 'a\u0000b'],
    ['a number', 42],
    ['null', null],
    ['an object', { name: 'x' }],
    ['missing', undefined],
  ];

  it.each(BAD_NAMES)('tools/call with %s as name → -32602', (_label, name) => {
    const r = refusal(req('tools/call', name === undefined ? {} : { name }, 9));
    expect(r.id).toBe(9);
    expect(r.code).toBe(JSON_RPC_ERRORS.INVALID_PARAMS);
    expect(r.message).toMatch(/^baton: invalid params for tools\/call: params\.name /);
  });

  it.each(BAD_NAMES)('prompts/get and completion/complete with %s as name → -32602', (_label, name) => {
    expect(refusal(req('prompts/get', name === undefined ? {} : { name }))).toMatchObject({ code: -32602 });
    const ref = name === undefined ? { type: 'ref/prompt' } : { type: 'ref/prompt', name };
    expect(refusal(req('completion/complete', { ref }))).toMatchObject({ code: -32602, message: expect.stringContaining('params.ref.name') });
  });

  it('says what was wrong with a name, and which names are reserved', () => {
    expect(refusal(req('tools/call', { name: 'resources' })).message).toBe(
      'baton: invalid params for tools/call: params.name "resources" is reserved: mcp:<upstream>/resources/ names resources, not a tool',
    );
    expect(refusal(req('tools/call', { name: 42 })).message).toBe('baton: invalid params for tools/call: params.name must be a string');
  });

  it('never echoes more than 80 printable characters of the caller\'s input', () => {
    const hostile = `${'\u0007"\\\n'.repeat(10)}${'x'.repeat(100_000)}`;
    for (const message of [
      refusal(req('tools/call', { name: hostile })).message,
      refusal(req('resources/read', { uri: hostile })).message,
      refusal(req(hostile)).message,
    ]) {
      expect(message.length).toBeLessThan(200);
      expect(message).toMatch(/^[ -~…]+$/);
      expect(message.split('"').length).toBeLessThanOrEqual(3); // at most the quotes around the echo
    }
  });

  const BAD_URIS: Array<[label: string, uri: unknown]> = [
    ['empty', ''],
    ['a space', 'file:///a b'],
    ['a backslash', 'file:///a\\b'],
    ['a tab', 'file:///a\tb'],
    ['DEL', 'file:///a\u007f'],
    ['non-ASCII', 'file:///é'],
    ['more than 400 characters', 'u'.repeat(401)],
    ['a number', 7],
    ['missing', undefined],
  ];

  it.each(BAD_URIS)('resources/read with %s as uri → -32602', (_label, uri) => {
    for (const method of ['resources/read', 'resources/subscribe', 'resources/unsubscribe']) {
      const r = refusal(req(method, uri === undefined ? {} : { uri }, 'a'));
      expect(r).toMatchObject({ id: 'a', code: -32602, message: expect.stringMatching(new RegExp(`^baton: invalid params for ${method}: params\\.uri `)) });
    }
    expect(refusal(req('completion/complete', { ref: { type: 'ref/resource', uri } }))).toMatchObject({ code: -32602, message: expect.stringContaining('params.ref.uri') });
  });

  it('refuses a completion without a known ref type', () => {
    for (const params of [{}, { ref: 'x' }, { ref: { type: 'ref/tool', name: 'x' } }, { ref: { name: 'greet' } }]) {
      expect(refusal(req('completion/complete', params))).toMatchObject({ code: -32602, message: expect.stringContaining('params.ref') });
    }
  });

  it('refuses a resource the vocabulary could not hold (longer than 512 characters)', () => {
    const p = planMcpRequest('u'.repeat(100), JSON.stringify(req('resources/read', { uri: 'x'.repeat(400) })));
    expect(p.ok && p.messages[0]).toMatchObject({ kind: 'refused', code: -32602, message: expect.stringContaining('longer than 512') });
  });

  it.each(['sampling/createMessage', 'tools/delete', 'resources/write', 'elicitation/create', 'constructor', '__proto__', 'toString', 'hasOwnProperty', 'TOOLS/CALL', 'tools/call ', ''])(
    'unknown request method %j → -32601',
    (method) => {
      expect(refusal(req(method, {}, 5))).toEqual({ kind: 'refused', id: 5, code: -32601, message: `baton: MCP method "${method}" is not supported through the proxy` });
    },
  );

  const MALFORMED: Array<[label: string, element: unknown, id: string | number | null]> = [
    ['no jsonrpc', { id: 1, method: 'ping' }, 1],
    ['jsonrpc 1.0', { jsonrpc: '1.0', id: 'x', method: 'ping' }, 'x'],
    ['jsonrpc as a number', { jsonrpc: 2.0, id: 1, method: 'ping' }, 1],
    ['a null request id', { jsonrpc: '2.0', id: null, method: 'ping' }, null],
    ['an object id', { jsonrpc: '2.0', id: { a: 1 }, method: 'ping' }, null],
    ['a boolean id', { jsonrpc: '2.0', id: true, method: 'ping' }, null],
    ['a numeric method', { jsonrpc: '2.0', id: 1, method: 7 }, 1],
    ['array params', { jsonrpc: '2.0', id: 1, method: 'tools/call', params: ['delete_everything'] }, 1],
    ['string params', { jsonrpc: '2.0', id: 1, method: 'ping', params: 'x' }, 1],
    ['null params', { jsonrpc: '2.0', id: 1, method: 'ping', params: null }, 1],
    ['a method and a result', { jsonrpc: '2.0', id: 1, method: 'ping', result: {} }, 1],
    ['a result and an error', { jsonrpc: '2.0', id: 1, result: {}, error: { code: 1, message: 'x' } }, 1],
    ['a result without id', { jsonrpc: '2.0', result: {} }, null],
    ['a result with id null', { jsonrpc: '2.0', id: null, result: {} }, null],
    ['neither method nor result', { jsonrpc: '2.0', id: 3 }, 3],
  ];

  it.each(MALFORMED)('malformed element (%s) → -32600 with its id if readable', (_label, element, id) => {
    const r = refusal(element);
    expect(r).toMatchObject({ id, code: JSON_RPC_ERRORS.INVALID_REQUEST });
    expect(r.message).toMatch(/^baton: invalid JSON-RPC message: /);
  });

  it('refuses non-object batch elements on their own', () => {
    const p = plan([1, null, 'x', [], req('ping', undefined, 1)]);
    expect(p.ok).toBe(true);
    if (!p.ok) return;
    expect(p.messages.map((m) => [m.kind, 'id' in m ? m.id : undefined])).toEqual([
      ['refused', null],
      ['refused', null],
      ['refused', null],
      ['refused', null],
      ['request', 1],
    ]);
  });

  const BODIES: Array<[label: string, body: string, code: number, message: RegExp]> = [
    ['an empty body', '', -32700, /^parse error: /],
    ['broken JSON', '{"jsonrpc":"2.0",', -32700, /^parse error: /],
    ['trailing garbage', '{"jsonrpc":"2.0","id":1,"method":"ping"} x', -32700, /^parse error: /],
    ['null', 'null', -32600, /neither a JSON-RPC message/],
    ['a number', '42', -32600, /neither a JSON-RPC message/],
    ['a string', '"tools/call"', -32600, /neither a JSON-RPC message/],
    ['an empty batch', '[]', -32600, /^empty batch$/],
    ['a batch of 101', JSON.stringify(Array.from({ length: MAX_MCP_BATCH + 1 }, (_, i) => req('ping', undefined, i))), -32600, /batch of 101 messages; at most 100/],
    ['a repeated key (params.name)', '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_everything","name":"search_orders"}}', -32600, /duplicate key "name"/],
    ['a repeated key spelled with an escape', '{"jsonrpc":"2.0","id":1,"method":"tools/call","m\\u0065thod":"ping"}', -32600, /duplicate key "method"/],
    ['duplicate request ids', JSON.stringify([req('ping', undefined, 1), req('tools/list', undefined, 1)]), -32600, /duplicate request id 1 in one batch/],
    ['duplicate string ids', JSON.stringify([req('ping', undefined, 'a'), req('tools/call', { name: 'x' }, 'a')]), -32600, /duplicate request id "a" in one batch/],
  ];

  it.each(BODIES)('%s → ok:false %i', (_label, body, code, message) => {
    const p = planMcpRequest('tools', body);
    expect(p).toMatchObject({ ok: false, code });
    expect(!p.ok && p.message).toMatch(message);
  });

  it('keeps a parse error short and free of raw input', () => {
    const p = planMcpRequest('tools', `{"a": "${'\u0001'.repeat(5)}${'y'.repeat(50_000)}`);
    expect(p.ok).toBe(false);
    if (p.ok) return;
    expect(p.message.length).toBeLessThan(120);
    expect(p.message).toMatch(/^[ -~…]+$/);
  });
});

describe('planMcpRequest: batches', () => {
  it('plans each element on its own, in order', () => {
    const p = plan([
      req('tools/list', undefined, 1),
      req('tools/call', { name: 'search_orders' }, 2),
      { jsonrpc: '2.0', method: 'notifications/progress', params: {} },
      req('tools/call', { name: '../x' }, 3),
      req('sampling/createMessage', {}, 4),
      { jsonrpc: '2.0', id: 'srv', result: {} },
    ]);
    expect(p).toEqual({
      ok: true,
      batch: true,
      messages: [
        { kind: 'request', id: 1, method: 'tools/list', list: 'tools' },
        { kind: 'request', id: 2, method: 'tools/call', access: { resource: 'mcp:tools/search_orders', operation: 'call', target: 'search_orders', method: 'tools/call' } },
        { kind: 'notification', method: 'notifications/progress' },
        { kind: 'refused', id: 3, code: -32602, message: expect.stringContaining('params.name "../x"') },
        { kind: 'refused', id: 4, code: -32601, message: 'baton: MCP method "sampling/createMessage" is not supported through the proxy' },
        { kind: 'response', id: 'srv' },
      ],
    });
  });

  it('accepts exactly 100 elements, a single-element batch, and ids equal only after conversion', () => {
    const hundred = plan(Array.from({ length: MAX_MCP_BATCH }, (_, i) => req('ping', undefined, i)));
    expect(hundred.ok && hundred.messages).toHaveLength(100);
    expect(plan([req('ping')])).toMatchObject({ ok: true, batch: true, messages: [{ kind: 'request', id: 1 }] });
    // 1 and "1" are different JSON-RPC ids; a client reply may share an id with a request
    expect(plan([req('ping', undefined, 1), req('ping', undefined, '1'), { jsonrpc: '2.0', id: 1, result: {} }])).toMatchObject({ ok: true });
    // notifications carry no id, so any number of them is fine
    expect(plan([{ jsonrpc: '2.0', method: 'notifications/a' }, { jsonrpc: '2.0', method: 'notifications/a' }])).toMatchObject({ ok: true });
  });
});

describe('jsonRpcError and mcpDenial', () => {
  it('builds JSON-RPC error objects, data only when given', () => {
    expect(jsonRpcError(null, -32700, 'parse error')).toEqual({ jsonrpc: '2.0', id: null, error: { code: -32700, message: 'parse error' } });
    expect(JSON.stringify(jsonRpcError('a', 1, 'm'))).toBe('{"jsonrpc":"2.0","id":"a","error":{"code":1,"message":"m"}}');
    expect(jsonRpcError(2, 3, 'm', { x: 1 })).toEqual({ jsonrpc: '2.0', id: 2, error: { code: 3, message: 'm', data: { x: 1 } } });
  });

  it('names the resource, operation, target and method of a denial', () => {
    const access = { resource: 'mcp:tools/refund_order', operation: 'call', target: 'refund_order', method: 'tools/call' } as const;
    expect(mcpDenial(7, access, 'forbidden by link 1 (delegated to helper)')).toEqual({
      jsonrpc: '2.0',
      id: 7,
      error: {
        code: MCP_FORBIDDEN,
        message: 'baton: permission denied for call on mcp:tools/refund_order: forbidden by link 1 (delegated to helper)',
        data: { resource: 'mcp:tools/refund_order', operation: 'call', target: 'refund_order', method: 'tools/call' },
      },
    });
    expect(MCP_FORBIDDEN).toBe(-32003);
  });
});

// ---- list filtering ----------------------------------------------------------------------------

const ALLOWED = new Set(['mcp:tools/search_orders', 'mcp:tools/resources/file:///a.md', 'mcp:tools/resources/file:///{name}.md', 'mcp:tools/prompts/greet', 'mcp:tools/resources', 'mcp:tools/prompts']);
const mayUse: MayUse = (resource) => ALLOWED.has(resource);

const TOOLS_RESULT = {
  tools: [
    { name: 'search_orders', description: 'reads', inputSchema: { type: 'object' } },
    { name: 'refund_order', description: 'writes', inputSchema: { type: 'object' } },
    { name: 'resources', inputSchema: { type: 'object' } }, // a name that would read as a prefix
    { name: '../search_orders', inputSchema: { type: 'object' } },
    { description: 'no name' },
    'search_orders',
    null,
  ],
  nextCursor: 'c2',
  _meta: { page: 1 },
};

const response = (id: unknown, result: unknown) => ({ jsonrpc: '2.0', id, result });

describe('filterMcpJson', () => {
  it('keeps only the tools the token may call, and the rest of the result', () => {
    const out = filterMcpJson('tools', JSON.stringify(response(1, TOOLS_RESULT)), new Map([[1, 'tools']]), mayUse);
    expect(JSON.parse(out!)).toEqual(response(1, { tools: [TOOLS_RESULT.tools[0]], nextCursor: 'c2', _meta: { page: 1 } }));
  });

  it('filters resources by uri, templates by uriTemplate and prompts by name', () => {
    const lists = new Map<string | number, McpListKind>([
      ['r', 'resources'],
      ['t', 'resourceTemplates'],
      ['p', 'prompts'],
    ]);
    const body = [
      response('r', { resources: [{ uri: 'file:///a.md', name: 'a' }, { uri: 'file:///b.md', name: 'b' }, { uri: 'file:///a b.md' }, { name: 'no uri' }], nextCursor: 'n' }),
      response('t', { resourceTemplates: [{ uriTemplate: 'file:///{name}.md', name: 't' }, { uriTemplate: 'file:///{other}', name: 'u' }, { uri: 'file:///a.md' }] }),
      response('p', { prompts: [{ name: 'greet' }, { name: 'secret' }, { name: 'prompts' }, { name: 'gre et' }] }),
    ];
    expect(JSON.parse(filterMcpJson('tools', JSON.stringify(body), lists, mayUse)!)).toEqual([
      response('r', { resources: [{ uri: 'file:///a.md', name: 'a' }], nextCursor: 'n' }),
      response('t', { resourceTemplates: [{ uriTemplate: 'file:///{name}.md', name: 't' }] }),
      response('p', { prompts: [{ name: 'greet' }] }),
    ]);
  });

  it('asks mayUse about exactly the resources a call would need', () => {
    const asked: string[] = [];
    filterMcpJson(
      'up',
      JSON.stringify([response(1, { tools: [{ name: 't' }] }), response(2, { resources: [{ uri: 'x://y' }] }), response(3, { prompts: [{ name: 'p' }] })]),
      new Map<number, McpListKind>([
        [1, 'tools'],
        [2, 'resources'],
        [3, 'prompts'],
      ]),
      (r) => (asked.push(r), true),
    );
    expect(asked).toEqual(['mcp:up/t', 'mcp:up/resources/x://y', 'mcp:up/prompts/p']);
  });

  it('returns the very same text when no response answers a list', () => {
    const lists = new Map<string | number, McpListKind>([[1, 'tools']]);
    const bodies = [
      JSON.stringify(response(2, TOOLS_RESULT), null, 2), // another request's answer
      JSON.stringify(response('1', TOOLS_RESULT)), // "1" is not 1
      JSON.stringify({ jsonrpc: '2.0', id: 1, error: { code: -32601, message: 'nope' } }), // errors pass
      JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'roots/list', params: { tools: [] } }), // a server request, not an answer
      JSON.stringify({ jsonrpc: '2.0', method: 'notifications/tools/list_changed' }),
      ` [ ${JSON.stringify(response(3, {}))} ] `,
      '42',
    ];
    for (const body of bodies) expect(filterMcpJson('tools', body, lists, mayUse)).toBe(body);
  });

  it('filters only the list answers inside an array, leaving the others as they were', () => {
    const body = [response(1, TOOLS_RESULT), response(2, TOOLS_RESULT), { jsonrpc: '2.0', id: 3, error: { code: 1, message: 'x' } }];
    const out = JSON.parse(filterMcpJson('tools', JSON.stringify(body), new Map([[1, 'tools']]), mayUse)!);
    expect(out).toEqual([response(1, { ...TOOLS_RESULT, tools: [TOOLS_RESULT.tools[0]] }), body[1], body[2]]);
  });

  it('fails closed on what it cannot check', () => {
    const lists = new Map<number, McpListKind>([[1, 'tools']]);
    expect(filterMcpJson('tools', '{"jsonrpc":"2.0","id":1,"result":{"tools":[', lists, mayUse)).toBeUndefined();
    expect(filterMcpJson('tools', '', lists, mayUse)).toBeUndefined();
    expect(filterMcpJson('tools', '\ufeff{}', lists, mayUse)).toBeUndefined();
    // a list that is not an array cannot be checked item by item
    expect(JSON.parse(filterMcpJson('tools', JSON.stringify(response(1, { tools: { search_orders: {} } })), lists, mayUse)!)).toEqual(response(1, { tools: [] }));
    // a check that throws is a no
    const throwing: MayUse = () => {
      throw new Error('engine down');
    };
    expect(JSON.parse(filterMcpJson('tools', JSON.stringify(response(1, TOOLS_RESULT)), lists, throwing)!).result.tools).toEqual([]);
    // an answer without the list field stays as it is
    expect(JSON.parse(filterMcpJson('tools', JSON.stringify(response(1, { nextCursor: 'x' })), lists, mayUse)!)).toEqual(response(1, { nextCursor: 'x' }));
  });

  it('refuses an answer that repeats a key: a client reading the other value would see what was not filtered', () => {
    const body = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"refund_order"}]},"result":{"tools":[{"name":"search_orders"},{"name":"refund_order"}]}}';
    expect(filterMcpJson('tools', body, new Map([[1, 'tools']]), mayUse)).toBeUndefined();
    // also when the repeated key hides the id a list answer would be matched by
    const hiddenId = '{"jsonrpc":"2.0","id":1,"id":7,"result":{"tools":[{"name":"refund_order"}]}}';
    expect(filterMcpJson('tools', hiddenId, new Map([[1, 'tools']]), mayUse)).toBeUndefined();
    // the same answer without repeats is filtered and re-serialised
    const clean = '{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_orders"},{"name":"refund_order"}]}}';
    expect(filterMcpJson('tools', clean, new Map([[1, 'tools']]), mayUse)).toBe('{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search_orders"}]}}');
  });
});

// ---- text/event-stream -------------------------------------------------------------------------

async function runSse(chunks: Array<Buffer | string>, lists: ReadonlyMap<string | number, McpListKind>, opts?: { maxEventBytes?: number }): Promise<string> {
  const out: Buffer[] = [];
  await pipeline(
    Readable.from(chunks.map((c) => (typeof c === 'string' ? Buffer.from(c, 'utf8') : c))),
    mcpSseFilter('tools', lists, mayUse, opts),
    new Writable({
      write(chunk: Buffer, _encoding, done) {
        out.push(chunk);
        done();
      },
    }),
  );
  return Buffer.concat(out).toString('utf8');
}

/** Every way to cut `bytes` in two, and in single bytes. */
function splits(bytes: Buffer): Buffer[][] {
  const all: Buffer[][] = [];
  for (let i = 0; i <= bytes.length; i++) all.push([bytes.subarray(0, i), bytes.subarray(i)]);
  all.push([...bytes].map((b) => Buffer.from([b])));
  return all;
}

const LIST = JSON.stringify(response(1, { tools: [{ name: 'search_orders', description: 'Sucht Bestellungen — schnell ✓' }, { name: 'refund_order' }] }));
const LIST_FILTERED = JSON.stringify(response(1, { tools: [{ name: 'search_orders', description: 'Sucht Bestellungen — schnell ✓' }] }));
const OTHER = JSON.stringify(response(2, { tools: [{ name: 'refund_order' }] })); // not a list request: untouched
const NOTE = JSON.stringify({ jsonrpc: '2.0', method: 'notifications/progress', params: { progress: 1, message: 'über' } });

/** A small stream with the cases that matter, `eol` between lines. */
function stream(eol: string): { input: string; output: string } {
  const events = [
    [`: keep-alive ping`],
    [`event: message`, `id: 1`, `data: ${NOTE}`],
    [`id: 2`, `data:${OTHER}`], // no space after the colon: passes as it came
    [`event: message`, `id: 3`, `retry: 1000`, `data: ${LIST}`],
    [`data: hello, not JSON`],
    [`data`], // a field with no colon: empty data
  ];
  const input = events.map((lines) => lines.join(eol) + eol + eol).join('');
  const output = input.replace(`data: ${LIST}`, `data: ${LIST_FILTERED}`);
  return { input, output };
}

describe('mcpSseFilter', () => {
  const lists = new Map<string | number, McpListKind>([[1, 'tools']]);

  it.each([
    ['LF', '\n'],
    ['CRLF', '\r\n'],
    ['CR', '\r'],
  ])('filters list answers and passes everything else byte for byte, at every chunk boundary (%s)', async (_label, eol) => {
    const { input, output } = stream(eol);
    expect(output).not.toBe(input);
    const bytes = Buffer.from(input, 'utf8');
    for (const chunks of splits(bytes)) expect(await runSse(chunks, lists)).toBe(output);
  });

  it('joins data lines with LF before parsing, and writes the filtered answer as one data line', async () => {
    const half = LIST.indexOf('"result"');
    for (const eol of ['\n', '\r\n']) {
      const input = `event: message${eol}data: ${LIST.slice(0, half)}${eol}data: ${LIST.slice(half)}${eol}id: 9${eol}${eol}`;
      const bytes = Buffer.from(input, 'utf8');
      for (const chunks of splits(bytes)) expect(await runSse(chunks, lists)).toBe(`event: message${eol}data: ${LIST_FILTERED}${eol}id: 9${eol}${eol}`);
    }
  });

  it('filters a batch of answers in one event', async () => {
    const out = await runSse([`data: [${LIST},${OTHER}]\n\n`], lists);
    expect(out).toBe(`data: [${LIST_FILTERED},${OTHER}]\n\n`);
  });

  it('filters a list answer even when the stream ends before its blank line', async () => {
    expect(await runSse([`data: ${LIST}`], lists)).toBe(`data: ${LIST_FILTERED}`);
    expect(await runSse([`data: ${LIST}\n`], lists)).toBe(`data: ${LIST_FILTERED}\n`);
    expect(await runSse([`data: ${LIST}\r`], lists)).toBe(`data: ${LIST_FILTERED}\r`);
  });

  it('reads data after a byte-order mark at the start of the stream, as the client does', async () => {
    const out = await runSse([Buffer.from([0xef, 0xbb]), Buffer.from([0xbf]), `data: ${LIST}\n\n`], lists);
    expect(out).toBe(`data: ${LIST_FILTERED}\n\n`);
  });

  it('passes comments, pings and other answers through as the same bytes', async () => {
    const input = Buffer.from(`:\n\n: ping\n\ndata: \n\ndata: ${OTHER}\n\nevent: endpoint\ndata: /x\n\n\n\n`, 'utf8');
    expect(await runSse([input], lists)).toBe(input.toString('utf8'));
    const invalidUtf8 = Buffer.from([0x64, 0x61, 0x74, 0x61, 0x3a, 0x20, 0xff, 0xfe, 0x0a, 0x0a]); // data: <bad bytes>
    const out: Buffer[] = [];
    await pipeline(Readable.from([invalidUtf8]), mcpSseFilter('tools', lists, mayUse), new Writable({ write: (c: Buffer, _e, done) => (out.push(c), done()) }));
    expect(Buffer.concat(out).equals(invalidUtf8)).toBe(true);
  });

  it('errors the stream on data that starts like JSON but does not parse (it might be a list it cannot check)', async () => {
    await expect(runSse(['data: {"jsonrpc":"2.0","id":1,"result":{"tools":[\n\n'], lists)).rejects.toThrow(/cannot parse/);
    await expect(runSse(['data:  [oops\n\n'], lists)).rejects.toThrow(/cannot parse/);
  });

  it('errors the stream rather than buffer an event without bound', async () => {
    const big = `data: ${JSON.stringify({ x: 'y'.repeat(200) })}\n\n`;
    await expect(runSse([big], lists, { maxEventBytes: 100 })).rejects.toThrow(/larger than 100 bytes/);
    // split in small chunks, without a blank line in sight
    const chunks = Array.from({ length: 50 }, () => 'data: xxxxxxxxxx\n');
    await expect(runSse(chunks, lists, { maxEventBytes: 100 })).rejects.toThrow(/larger than 100 bytes/);
    await expect(runSse(['data: ' + 'x'.repeat(5 * 1024 * 1024)], lists)).rejects.toThrow(/larger than 4194304 bytes/);
    expect(() => mcpSseFilter('tools', lists, mayUse, { maxEventBytes: 0 })).toThrow(TypeError);
    // many small events are fine: the bound is per event
    const many = Array.from({ length: 100 }, (_, i) => `data: ${i}\n\n`);
    expect(await runSse(many, lists, { maxEventBytes: 100 })).toBe(many.join(''));
  });
});
