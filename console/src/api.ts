/**
 * Talking to the broker. The Baton token lives in sessionStorage (this tab only, gone when it
 * closes) and travels only in the Authorization header — never in a URL, never in a cookie.
 */
const TOKEN_KEY = 'baton.console.token';

export const session = {
  get token(): string | null {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set(token: string): void {
    sessionStorage.setItem(TOKEN_KEY, token);
  },
  clear(): void {
    sessionStorage.removeItem(TOKEN_KEY);
  },
};

/** A refusal from the broker: its problem+json (or OAuth) code and public message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string | undefined,
    message: string,
  ) {
    super(message);
  }
}

type Query = Record<string, string | number | undefined>;

function withQuery(path: string, query?: Query): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `${path}?${s}` : path;
}

async function request(path: string, init: { method?: string; body?: unknown; query?: Query; token?: string | null } = {}): Promise<Response> {
  const headers: Record<string, string> = { accept: 'application/json' };
  const token = init.token === undefined ? session.token : init.token;
  if (token) headers.authorization = `Bearer ${token}`;
  if (init.body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(withQuery(path, init.query), {
    method: init.method ?? 'GET',
    headers,
    ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    credentials: 'omit',
    cache: 'no-store',
  });
  if (!res.ok) {
    let body: { title?: string; error_description?: string; code?: string } = {};
    try {
      body = (await res.json()) as typeof body;
    } catch {
      /* not JSON */
    }
    throw new ApiError(res.status, body.code, body.title ?? body.error_description ?? `${res.status} ${res.statusText}`);
  }
  return res;
}

/** JSON from the broker, or an ApiError. */
export async function api<T>(path: string, init: Parameters<typeof request>[1] = {}): Promise<T> {
  return (await (await request(path, init)).json()) as T;
}

/** Fetches `path` with the token in the header and saves the body as `filename` (no token in any URL). */
export async function download(path: string, query: Query, filename: string): Promise<number> {
  const blob = await (await request(path, { query })).blob();
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = filename;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
  return blob.size;
}

// ---- the broker's shapes (as openapi.yaml documents them) ----

export interface LineageLink {
  depth: number;
  subject?: string;
  issuer?: string;
  agent?: string;
  delegatedTo?: string;
  purpose?: string;
  constraints: { resources?: string[]; operations?: string[]; expiresAt?: string; requireApproval?: string[] };
  revocationId: string;
}

export interface AuditEvent {
  seq: number;
  id: string;
  time: string;
  source: string;
  action: string;
  decision: 'allow' | 'deny';
  reason?: string;
  lineage: LineageLink[];
  tokenId?: string;
  resource?: string;
  operation?: string;
  accesses?: { resource: string; operation: string }[];
  normalized?: string;
  http?: { method: string; path: string };
  approvalId?: string;
  outcome?: { status?: number; rowCount?: number; sqlstate?: string; tag?: string };
  recordedOutcome?: { status?: number; rowCount?: number; sqlstate?: string; tag?: string };
}

export interface TreeNode extends LineageLink {
  allowed: number;
  denied: number;
  total: { allowed: number; denied: number };
  children: TreeNode[];
  revoked?: boolean;
  revokedHere?: boolean;
}

export interface AuditTree {
  tokenId: string;
  roots: TreeNode[];
  total: { allowed: number; denied: number };
}

export interface Me {
  subject: string | null;
  agent: string | null;
  tokenId: string | null;
  roles: string[];
  admin: boolean;
  approver: boolean;
  expiresAt: string | null;
}

export interface LiveSession {
  id: string;
  proxy: string;
  kind: string;
  upstream: string;
  remote: string;
  tokenId?: string;
  revocationId: string;
  lineage: LineageLink[];
  startedAt: string;
  lastActivityAt: string;
  statements: number;
  denied: number;
  idleSeconds: number;
  revoked: boolean;
}

export interface Approval {
  id: string;
  state: string;
  upstream: string;
  statement: string;
  normalized: string;
  accesses: { resource: string; operation: string }[];
  rules: string[];
  lineage: LineageLink[];
  tokenId?: string;
  createdAt: string;
  expiresAt: string;
  decidedAt?: string;
  decidedBy?: string;
  reason?: string;
  requesterRevoked: boolean;
}
