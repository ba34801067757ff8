/**
 * What an HTTP request touches: the (resource, operation) pairs the HTTP gate authorizes, each on
 * its own (DESIGN.md rule 1), for a plain REST upstream (method → operation, the configured routes)
 * and for a Kubernetes API server (its own verbs and resources, src/proxy/http/kubernetes.ts). MCP
 * messages are mapped in mcp.ts. Pure: no I/O.
 */
import type { z } from 'zod';
import type { HttpRouteSchema } from '../../config/schema.ts';
import { isOperation, parseResource } from '../../token/vocabulary.ts';
import { kubernetesRequest, kubernetesResource, printableMethod } from './kubernetes.ts';

export type HttpRoute = z.output<typeof HttpRouteSchema>;

export interface Access {
  resource: string;
  operation: string;
}

export type RequestAccess =
  | {
      ok: true;
      accesses: Access[];
      /**
       * Nothing the request does can change anything (a safe method, read operations only): it may be
       * forwarded while its audit entry is in flight, its answer held until the entry is durable.
       * Everything else is forwarded only after (DESIGN.md rule 6).
       */
      readOnly: boolean;
      /** Kubernetes: the API server's verb, for the audit. */
      verb?: string;
    }
  | { ok: false; status: 400 | 405; message: string };

/** Default operations (issue 13): everything else is refused with 405. */
export const METHOD_OPERATIONS: Readonly<Record<string, string>> = {
  GET: 'read',
  HEAD: 'read',
  OPTIONS: 'read',
  POST: 'write',
  PUT: 'write',
  PATCH: 'write',
  DELETE: 'delete',
};

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/**
 * A plain REST upstream: `http:<upstream>/<path>` (the normalised path, without its leading `/`)
 * and the method's operation, unless a route says otherwise (first match wins).
 *
 * @example plainAccess('billing', [], 'GET', '/invoices') // { ok: true, accesses: [{ resource: 'http:billing/invoices', operation: 'read' }], readOnly: true }
 */
export function plainAccess(upstream: string, routes: readonly HttpRoute[], method: string, path: string): RequestAccess {
  const defaultOperation = METHOD_OPERATIONS[method];
  if (!defaultOperation) return { ok: false, status: 405, message: `method ${printableMethod(method)} is not supported by the HTTP proxy` };
  const route = routes.find((r) => (!r.methods || r.methods.includes(method)) && routeMatches(r.path, path));
  const access = { resource: route?.resource ?? `http:${upstream}/${path.slice(1)}`, operation: route?.operation ?? defaultOperation };
  return { ok: true, accesses: [access], readOnly: SAFE_METHODS.has(method) && access.operation === 'read' };
}

/** A route's path: exact, or a prefix when it ends in `*`. */
function routeMatches(pattern: string, path: string): boolean {
  return pattern.endsWith('*') ? path.startsWith(pattern.slice(0, -1)) : pattern === path;
}

/** Refuses routes outside the vocabulary at start-up rather than deny every request they match. */
export function assertRoutes(upstream: string, routes: readonly HttpRoute[]): void {
  for (const [i, r] of routes.entries()) {
    if (r.operation !== undefined && (!isOperation(r.operation) || r.operation === '*')) {
      throw new TypeError(`proxy.http.upstreams.${upstream}.routes[${i}].operation "${r.operation}" is not an operation of the vocabulary`);
    }
    if (r.resource !== undefined) {
      try {
        parseResource(r.resource);
      } catch (err) {
        throw new TypeError(`proxy.http.upstreams.${upstream}.routes[${i}].resource: ${(err as Error).message}`);
      }
    }
  }
}

const KUBERNETES_READ_VERBS = new Set(['get', 'list', 'watch']);

/**
 * A Kubernetes API server: the verb and resource the API server itself derives (kubernetes.ts), plus
 * `create` where Kubernetes ≥ 1.35 checks it too (a GET upgrade to pods/exec, attach, portforward).
 *
 * @example kubernetesAccess('prod', 'GET', '/api/v1/namespaces/team-a/pods', '') // k8s:prod/team-a/pods, list
 */
export function kubernetesAccess(upstream: string, method: string, path: string, query: string): RequestAccess {
  const info = kubernetesRequest(method, path, new URLSearchParams(query));
  if ('refused' in info) return { ok: false, status: 400, message: `Kubernetes request refused: ${info.refused}` };
  const resource = kubernetesResource(upstream, info);
  const accesses: Access[] = [{ resource, operation: info.verb }];
  if (info.alsoRequires) accesses.push({ resource, operation: info.alsoRequires });
  const readOnly = SAFE_METHODS.has(method) && !info.alsoRequires && (info.resourceRequest ? KUBERNETES_READ_VERBS.has(info.verb) : true);
  return { ok: true, accesses, readOnly, verb: info.verb };
}
