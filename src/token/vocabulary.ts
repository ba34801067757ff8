/**
 * The token vocabulary of DESIGN.md, in one place: resource grammar, operations, and the Datalog
 * snippets the broker mints and the SDK appends. Every value that comes from a caller is bound as a
 * Datalog *parameter* (`{name}`), never concatenated into source text.
 */

/** Operations per resource kind. `*` in a right means every operation (admin grants only). */
export const OPERATIONS = {
  pg: ['read', 'insert', 'update', 'delete', 'truncate', 'ddl', 'admin', 'execute', 'read_unmasked'],
  http: ['read', 'write', 'delete'],
  /** MCP tool servers: calling a tool, reading a resource, getting a prompt (src/proxy/http/mcp.ts). */
  mcp: ['call'],
  /**
   * The Kubernetes API server's own verbs (src/proxy/http/kubernetes.ts); non-resource URLs
   * (`/version`, `/healthz`) use the lower-cased method, which adds `head`, `options`, `post`, `put`.
   */
  k8s: ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection', 'head', 'options', 'post', 'put'],
  /**
   * Native AWS credentials (src/credentials/aws-policy.ts): `aws:<role>/s3:<bucket>/<prefix>`,
   * `aws:<role>/dynamodb:<table>`; `assume` = every action of that service on that resource.
   */
  aws: ['read', 'write', 'delete', 'assume'],
  baton: ['admin'],
} as const;

export type ResourceKind = keyof typeof OPERATIONS;
export const ALL_OPERATIONS: readonly string[] = [...new Set(Object.values(OPERATIONS).flat())];

/**
 * `<kind>:<upstream>/<object>`, where object may end in `*` (a prefix: `public.*`, `invoices/*`) or
 * in `/` (a directory: see {@link covers}), or the whole resource is `*` (everything; admin grants
 * only). Printable ASCII without backslashes or spaces, 1–512 chars (double quotes appear in quoted
 * SQL identifiers: `public."Orders"`).
 */
const RESOURCE_RE = /^(?:\*|(pg|http|mcp|k8s|aws|baton):([A-Za-z0-9_.-]+|\*)(?:\/([!-[\]-~]*))?)$/;

export interface ParsedResource {
  pattern: string;
  kind: ResourceKind | '*';
  /** The literal part before a trailing `*`; equal to `pattern` for an exact resource. */
  prefix: string;
  wildcard: boolean;
}

/** Parses a resource or resource pattern; throws TypeError on anything outside the grammar. */
export function parseResource(pattern: string): ParsedResource {
  if (typeof pattern !== 'string' || pattern.length === 0 || pattern.length > 512) {
    throw new TypeError('resource must be a non-empty string of at most 512 characters');
  }
  const m = RESOURCE_RE.exec(pattern);
  if (!m) throw new TypeError(`resource "${printable(pattern)}" does not match <kind>:<upstream>/<object>`);
  const wildcard = pattern.endsWith('*');
  if (pattern.includes('*') && pattern.indexOf('*') !== pattern.length - 1) {
    throw new TypeError(`resource "${printable(pattern)}" may only end with "*"`);
  }
  return {
    pattern,
    kind: (m[1] as ResourceKind | undefined) ?? '*',
    prefix: wildcard ? pattern.slice(0, -1) : pattern,
    wildcard,
  };
}

/**
 * True when `pattern` covers the concrete resource or narrower pattern `target`:
 * - an exact pattern covers itself;
 * - a trailing `*` is a plain string prefix (`pg:appdb/public.*`, `http:billing/inv*`);
 * - a trailing `/` is a directory: it covers the path it names, with or without the slash, and
 *   everything below it — `http:billing/invoices/` covers `http:billing/invoices` (GET /invoices)
 *   and `http:billing/invoices/7`, never `http:billing/invoices-archive`.
 *
 * @example covers('http:billing/invoices/', 'http:billing/invoices') === true
 */
export function covers(pattern: string, target: string): boolean {
  if (pattern === target) return true;
  if (pattern.endsWith('*')) return target.startsWith(pattern.slice(0, -1));
  if (pattern.endsWith('/')) return target.startsWith(pattern) || target === pattern.slice(0, -1);
  return false;
}

/**
 * The directory spelling of a concrete resource (`http:billing/invoices` → `http:billing/invoices/`).
 * The authorizer states it as a second `resource` fact, so that a block's `starts_with("…/invoices/")`
 * check — how a directory pattern is written in Datalog — also holds for the path it names.
 */
export function directoryOf(resource: string): string {
  return resource === '*' || resource.endsWith('/') || resource.endsWith('*') ? resource : `${resource}/`;
}

/**
 * The patterns that would grant `resource`: itself, its directory spelling, and every wildcard and
 * directory ancestor the grammar allows (see {@link covers}).
 * The authorizer matches `right($p, $op)` against this set, so wildcard rights need no Datalog rules
 * (rules run under biscuit-wasm's fixed 1 ms limit; facts and set membership do not).
 *
 * @example candidatePatterns('pg:appdb/public.orders')
 * // ['pg:appdb/public.orders', '*', 'pg:appdb/public.orders/', 'pg:*', 'pg:appdb/*', 'pg:appdb/', 'pg:appdb/public.*']
 */
export function candidatePatterns(resource: string): string[] {
  const { kind } = parseResource(resource);
  const out = new Set<string>([resource, '*']);
  if (kind !== '*') {
    out.add(directoryOf(resource));
    out.add(`${kind}:*`);
    const slash = resource.indexOf('/');
    if (slash > 0) {
      out.add(`${resource.slice(0, slash)}/*`);
      out.add(resource.slice(0, slash + 1));
      const object = resource.slice(slash + 1);
      // every prefix ending at a separator: `public.` for tables, `invoices/` for paths; a `/` also
      // ends a directory (`http:billing/invoices/`)
      for (let i = 0; i < object.length - 1; i++) {
        const ch = object[i];
        if (ch !== '.' && ch !== '/') continue;
        const prefix = `${resource.slice(0, slash + 1)}${object.slice(0, i + 1)}`;
        out.add(`${prefix}*`);
        if (ch === '/') out.add(prefix);
      }
    }
  }
  return [...out];
}

export function isOperation(op: string): boolean {
  return op === '*' || ALL_OPERATIONS.includes(op);
}

/** Quote-free rendering of untrusted text for error messages. */
export function printable(text: string, max = 80): string {
  const clean = text.replace(/[^ -~]/g, '?').replace(/["\\]/g, '?');
  return clean.length > max ? `${clean.slice(0, max)}…` : clean;
}

/** Datalog of the authority block (DESIGN.md). Parameters: see `mintToken`. */
export const AUTHORITY_FACTS = 'token_id({token_id}); subject({subject}); issuer({issuer}); agent({agent});';
export const AUTHORITY_RIGHT = 'right({resource}, {operation});';
export const AUTHORITY_ROLE = 'role({role});';
export const EXPIRY_CHECK = 'check if time($t), $t <= {expires_at};';

/**
 * The authorizer the proxies and broker run for ONE (resource, operation) pair (DESIGN.md rule 1: each
 * touched pair is authorized on its own, never "if any resource matches").
 */
export const AUTHORIZER_POLICY =
  'time({now}); resource({resource}); resource({directory}); operation({operation});' +
  'allow if right($p, $o), {patterns}.contains($p), {ops}.contains($o);' +
  'deny if true;';

/** Facts an attenuation block may state (DESIGN.md): lineage information, never rights. */
export const LINEAGE_FACTS: readonly string[] = ['delegated_to', 'purpose'];

/**
 * `require_approval("<operation>")` in an attenuation block: the holder's statements doing that
 * operation wait for a just-in-time approval (a parent makes its helper ask first). May repeat, one
 * per operation; only ever adds a requirement, so it can never widen a token.
 */
export const APPROVAL_FACT = 'require_approval';

/**
 * Predicate names the broker's authority block or the authorizer gives meaning to, read from the
 * Datalog above so a name added there is reserved here too; plus `query` (the head every check has
 * on the wire) and `revocation_id` (which older Biscuit authorizers supplied). A non-authority block
 * that defines one of these — as a fact or a rule head — could satisfy its own checks (a block's
 * checks trust the authority block and the block itself), so lineage would claim a restriction the
 * proxy does not enforce: `verifyToken` refuses such tokens.
 */
export const RESERVED_PREDICATES: readonly string[] = [
  ...new Set(
    [AUTHORITY_FACTS, AUTHORITY_RIGHT, AUTHORITY_ROLE, EXPIRY_CHECK, AUTHORIZER_POLICY]
      .flatMap((code) => [...code.matchAll(/(?<![.\w])([a-z_][a-z0-9_]*)\(/g)].map((m) => m[1]!)),
  ),
  'query',
  'revocation_id',
];
