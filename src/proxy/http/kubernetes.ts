/**
 * Kubernetes request info: the verb and resource of an HTTP request, derived exactly as the API
 * server derives them before it authorizes (issue 13, point 6), so that Baton checks the same
 * (verb, resource) pair RBAC would.
 *
 * The rules are those of `RequestInfoFactory.NewRequestInfo` in k8s.io/apiserver
 * `pkg/endpoints/request/requestinfo.go` (read at kubernetes/apiserver 24a394e, July 2026), with
 * API prefixes `api` (groupless) and `apis`, as every kube-apiserver configures them:
 *
 * - fewer than three path segments, or a first segment other than `api`/`apis`, or `apis` with fewer
 *   than four segments → a non-resource request whose verb is the lower-cased method;
 * - `/api/<version>/…` or `/apis/<group>/<version>/…`; then an optional legacy verb prefix
 *   (`watch/`); then `namespaces/<ns>/` unless the segment after `<ns>` is `status` or `finalize`
 *   (then the namespace object itself is addressed); then `<resource>[/<name>[/<subresource>]]`;
 * - GET/HEAD → `get`, POST → `create`, PUT → `update`, PATCH → `patch`, DELETE → `delete`; a `get`
 *   without a name is `list`, or `watch` when the first `watch` query value is anything but `0` or
 *   `false`; a `delete` without a name is `deletecollection`.
 *
 * Where the server would go on with something we cannot vouch for, this module refuses instead
 * (fail closed): see {@link kubernetesRequest} for the list.
 */

/** A request the API server would treat as a resource or a known non-resource request. */
export interface KubernetesRequest {
  /** The Kubernetes verb (`get`, `list`, `watch`, …); for non-resource requests the lower-cased method. */
  verb: string;
  /**
   * A verb the server checks *as well* since Kubernetes 1.35 (KEP-4006, feature gate
   * `AuthorizePodWebsocketUpgradeCreatePermission`, on by default): a GET upgrade to `pods/exec`,
   * `pods/attach` or `pods/portforward` also needs `create`, because `get` alone looks read-only but
   * opens a shell. The proxy must require both rights.
   */
  alsoRequires?: 'create';
  /** `''` for the core group (`/api/...`). */
  apiGroup: string;
  apiVersion: string;
  /** Absent for cluster-scoped resources, for requests across all namespaces, and for non-resource requests. */
  namespace?: string;
  /** Plural resource (`pods`); `''` for non-resource requests. */
  resource: string;
  subresource?: string;
  name?: string;
  resourceRequest: boolean;
  /** The path as given (the server's `RequestInfo.Path`). */
  path: string;
}

/** Why a request was refused; the proxy answers 400 with this text. */
export interface KubernetesRefusal {
  refused: string;
}

/** The server's `APIPrefixes` / `GrouplessAPIPrefixes` as kube-apiserver sets them. */
const API_PREFIX = 'api';
const GROUP_API_PREFIX = 'apis';

/**
 * The server's `specialVerbs`. `proxy` is parsed there too but refused here: the `/proxy/` prefix is
 * long deprecated, and with it the server ignores everything after the name, so we would authorize
 * a path whose tail we cannot see. The `…/<name>/proxy/…` subresource replaces it.
 */
const LEGACY_WATCH = 'watch';
const LEGACY_PROXY = 'proxy';

/** The server's `namespaceSubresources`: after `namespaces/<ns>/` these address the namespace itself. */
const NAMESPACE_SUBRESOURCES: ReadonlySet<string> = new Set(['status', 'finalize']);

/** Subresources whose path goes on past the subresource (the rest is the target's own path). */
const PATH_SUBRESOURCES: ReadonlySet<string> = new Set(['proxy']);

/** Subresources for which Kubernetes ≥ 1.35 also checks `create` on a GET (WebSocket upgrade). */
const CONNECT_SUBRESOURCES: ReadonlySet<string> = new Set(['exec', 'attach', 'portforward']);

/** The server's method → verb switch (`MethodGet, MethodHead` → get, …). Others get no verb: refused. */
const METHOD_VERBS: Readonly<Record<string, string>> = {
  GET: 'get',
  HEAD: 'get',
  POST: 'create',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

/** Methods accepted on non-resource URLs (their verb is the lower-cased method, as on the server). */
const NON_RESOURCE_METHODS: ReadonlySet<string> = new Set([...Object.keys(METHOD_VERBS), 'OPTIONS']);

/**
 * Characters allowed in a path segment we interpret (version, group, namespace, resource, name,
 * subresource). Kubernetes names are DNS labels/subdomains, except a few kinds (RBAC roles, e.g.
 * `system:node-proxier`) whose names only exclude `/`, `%`, `.` and `..`. Anything else — `%`,
 * spaces, `*`, `\`, non-ASCII look-alikes — is refused rather than guessed at, and so is a leading
 * dot (which also rules out `.` and `..`). The allowed set is also valid in a Baton resource string.
 */
const SEGMENT = /^[A-Za-z0-9_:-][A-Za-z0-9._:-]*$/;

/**
 * Non-resource URLs that kube-apiserver serves. Every other path the server would not parse as a
 * resource is refused: an unknown path on the API server (or on an aggregated server behind it) is
 * nothing we can name a right for.
 */
const NON_RESOURCE_PATHS: ReadonlySet<string> = new Set([
  '/',
  '/api',
  '/apis',
  '/version',
  '/healthz',
  '/livez',
  '/readyz',
  '/metrics',
  '/openapi/v2',
  '/openapi/v3',
  '/.well-known/openid-configuration',
  '/openid/v1/jwks',
]);

/** Non-resource URL families: discovery per version/group, named health checks, OpenAPI v3 per group-version. */
const NON_RESOURCE_PATTERNS: readonly RegExp[] = ((): RegExp[] => {
  // versions as Kubernetes spells them (v1, v1beta1, v2alpha3); groups are DNS subdomains
  const version = 'v[1-9][0-9]*(?:(?:alpha|beta)[1-9][0-9]*)?';
  const group = '[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?';
  return [
    new RegExp(`^/api/${version}$`), // /api/v1
    new RegExp(`^/apis/${group}(?:/${version})?$`), // /apis/apps, /apis/apps/v1
    /^\/(?:healthz|livez|readyz)\/[a-z0-9-]+(?:\/[a-z0-9-]+)?$/, // /readyz/etcd, /livez/poststarthook/rbac-bootstrap-roles
    new RegExp(`^/openapi/v3/(?:api/${version}|apis/${group}/${version})$`), // /openapi/v3/apis/apps/v1
  ];
})();

/** A value of `watch` we can read the way Go does (ASCII only, so Unicode case folding cannot differ). */
const WATCH_VALUE = /^[A-Za-z0-9]*$/;

function refuse(why: string): KubernetesRefusal {
  return { refused: why };
}

/**
 * Derives the Kubernetes verb and resource of a request as the API server does.
 *
 * `path` must be the request path already percent-decoded and normalised by the proxy (issue 13,
 * point 3), i.e. what Go's `URL.Path` holds; `query` the parsed query string.
 *
 * Refused (fail closed), although the server would parse them:
 * - a method the server maps to no verb (`OPTIONS`, `CONNECT`, lower-case methods) on a resource path;
 * - the legacy `/proxy/` verb prefix, `/watch` with nothing after it (a server error too), and
 *   methods other than GET/HEAD on the `/watch/` prefix (which the server would call `watch`);
 * - empty segments inside the path, segments with characters outside {@link SEGMENT};
 * - segments after the subresource, except after `proxy` (where they are the proxied path, in
 *   which only `.` and `..` are refused);
 * - a `watch` query value that is not plain ASCII letters/digits (Go and WHATWG parse such values
 *   differently, e.g. `;` separators, bad escapes, `ſ` folding to `s`);
 * - any non-resource path outside the known non-resource URLs (so `/api/version` or
 *   `/apis/version/resource`, non-resource requests to the server, are refused: no such version).
 *
 * Deliberately stricter than the server: a list or watch with `fieldSelector=metadata.name=<n>`
 * gets a `name` on the server; here it stays a collection request, so it needs the
 * collection right. Parsing field selectors the way the server does is not worth the risk.
 *
 * @example
 * kubernetesRequest('GET', '/api/v1/namespaces/prod/pods/web-1/log', new URLSearchParams())
 * // { verb: 'get', apiGroup: '', apiVersion: 'v1', namespace: 'prod', resource: 'pods',
 * //   subresource: 'log', name: 'web-1', resourceRequest: true, path: '/api/v1/namespaces/prod/pods/web-1/log' }
 */
export function kubernetesRequest(
  method: string,
  path: string,
  query: URLSearchParams,
): KubernetesRequest | KubernetesRefusal {
  if (typeof method !== 'string' || typeof path !== 'string' || !(query instanceof URLSearchParams)) {
    throw new TypeError('kubernetesRequest(method: string, path: string, query: URLSearchParams)');
  }
  if (!path.startsWith('/')) return refuse('path must start with "/"');

  // splitPath: trim slashes at both ends, split on "/"
  const trimmed = path.replace(/^\/+|\/+$/g, '');
  const parts = trimmed === '' ? [] : trimmed.split('/');

  const groupless = parts[0] === API_PREFIX;
  const grouped = parts[0] === GROUP_API_PREFIX;
  if (parts.length < 3 || !(groupless || grouped) || (grouped && parts.length < 4)) {
    return nonResource(method, path);
  }

  let rest = parts.slice(1);
  let apiGroup = '';
  if (grouped) {
    apiGroup = rest[0] ?? '';
    rest = rest.slice(1);
  }
  const apiVersion = rest[0] ?? '';
  rest = rest.slice(1);

  let verb: string | undefined;
  if (rest[0] === LEGACY_PROXY) {
    return refuse('the legacy /proxy/ path prefix is not supported; use the …/<name>/proxy subresource');
  }
  if (rest[0] === LEGACY_WATCH) {
    // the server errors on `/watch` alone: "unable to determine kind and namespace from url"
    if (rest.length < 2) return refuse('watch prefix without a resource');
    // the server calls any method here `watch`; only GET is served, so authorize nothing else as one
    if (method !== 'GET' && method !== 'HEAD') return refuse(`method ${printableMethod(method)} on the watch prefix`);
    verb = LEGACY_WATCH;
    rest = rest.slice(1);
  } else {
    verb = Object.hasOwn(METHOD_VERBS, method) ? METHOD_VERBS[method] : undefined;
    if (verb === undefined) return refuse(`method ${printableMethod(method)} has no Kubernetes verb`);
  }

  let namespace: string | undefined;
  if (rest[0] === 'namespaces' && rest.length > 1) {
    namespace = rest[1];
    // `namespaces/<ns>/<resource>…` addresses a namespaced resource; `namespaces/<ns>[/status|finalize]`
    // the namespace object itself, whose namespace is then also <ns> (as on the server)
    if (rest.length > 2 && !NAMESPACE_SUBRESOURCES.has(rest[2] ?? '')) rest = rest.slice(2);
  }

  // rest is now resource/name/subresource/…
  const [resource = '', name, subresource] = rest;
  const interpreted = rest.slice(0, 3);
  const checked = [apiVersion, ...(grouped ? [apiGroup] : []), ...(namespace === undefined ? [] : [namespace]), ...interpreted];
  for (const segment of checked) {
    if (segment === '') return refuse('empty path segment');
    if (!SEGMENT.test(segment)) return refuse(`unusual characters in path segment "${printableSegment(segment)}"`);
  }
  if (rest.length > 3) {
    if (!PATH_SUBRESOURCES.has(subresource ?? '')) return refuse(`path continues after subresource "${subresource ?? ''}"`);
    // the proxied path is the target's business, but a dot segment there is ambiguous (point 3)
    if (rest.slice(3).some((s) => s === '.' || s === '..')) return refuse('dot segment in proxied path');
  }

  if (name === undefined && verb === 'get') {
    const watch = query.getAll('watch')[0];
    if (watch === undefined) verb = 'list';
    else if (!WATCH_VALUE.test(watch)) return refuse('unreadable watch parameter');
    else verb = watch === '0' || watch.toLowerCase() === 'false' ? 'list' : 'watch';
  }
  if (name === undefined && verb === 'delete') verb = 'deletecollection';

  const out: KubernetesRequest = { verb, apiGroup, apiVersion, resource, resourceRequest: true, path };
  if (namespace !== undefined) out.namespace = namespace;
  if (name !== undefined) out.name = name;
  if (subresource !== undefined) out.subresource = subresource;
  if (verb === 'get' && apiGroup === '' && resource === 'pods' && CONNECT_SUBRESOURCES.has(subresource ?? '')) {
    out.alsoRequires = 'create';
  }
  return out;
}

function nonResource(method: string, path: string): KubernetesRequest | KubernetesRefusal {
  const bare = path.length > 1 ? path.replace(/\/+$/, '') : path;
  if (!NON_RESOURCE_PATHS.has(bare) && !NON_RESOURCE_PATTERNS.some((re) => re.test(bare))) {
    return refuse(`not a Kubernetes API path: "${printableSegment(path)}"`);
  }
  if (!NON_RESOURCE_METHODS.has(method)) return refuse(`method ${printableMethod(method)} not allowed here`);
  return { verb: method.toLowerCase(), apiGroup: '', apiVersion: '', resource: '', resourceRequest: false, path };
}

/** The namespace slot for cluster-scoped requests; namespace names are DNS labels, so never `_…`. */
export const CLUSTER_SCOPE = '_cluster';

/** The namespace slot for non-resource URLs (the URL path follows). */
export const NON_RESOURCE_SCOPE = '_nonresource';

const UPSTREAM = /^[A-Za-z0-9_.-]+$/;

/**
 * The Baton resource a Kubernetes request is authorized against:
 * `k8s:<upstream>/<namespace | _cluster>/<resource>[.<group>][:<subresource>][/<name>]`.
 *
 * - Cluster-scoped resources, and requests across all namespaces, use `_cluster`: no namespace can
 *   be called that (namespace names are DNS labels), so it can never be confused with one.
 * - The namespace object itself is scoped to itself (`k8s:prod/team-a/namespaces/team-a`), as the
 *   server scopes it; listing namespaces is `k8s:prod/_cluster/namespaces`.
 * - Non-core groups are spelled `<resource>.<group>` (kubectl's `deployments.apps`): without the
 *   group, a right on core `secrets` would also cover a custom resource `secrets.evil.example`.
 *   Resource plurals contain no dots, so the spelling is unambiguous. The version is left out: it is
 *   the same object in every version.
 * - A subresource is part of the resource segment, after a colon, so it needs its own right as in
 *   RBAC (`pods/exec` there): `k8s:prod/team-a/pods:exec/web-1`. A right on the directory
 *   `k8s:prod/team-a/pods/` (every pod) never reaches it; `k8s:prod/team-a/pods:exec/` does (exec in
 *   every pod), and so does a namespace-wide `k8s:prod/team-a/`. Plurals and groups never contain a
 *   colon, names never contain `/`, so the spelling is unambiguous (`pods/exec` is a pod named `exec`).
 * - Names with unusual characters never get here: {@link kubernetesRequest} refuses them.
 * - Non-resource URLs: `k8s:<upstream>/_nonresource<path>` (`k8s:prod/_nonresource/version`).
 *
 * @example
 * kubernetesResource('prod', { verb: 'get', apiGroup: 'apps', apiVersion: 'v1', namespace: 'team-a',
 *   resource: 'deployments', subresource: 'scale', name: 'web', resourceRequest: true, path: '…' })
 * // 'k8s:prod/team-a/deployments.apps:scale/web'
 */
export function kubernetesResource(upstream: string, r: KubernetesRequest): string {
  if (typeof upstream !== 'string' || !UPSTREAM.test(upstream)) {
    throw new TypeError('upstream must be a non-empty name of letters, digits, "_", "." or "-"');
  }
  if (!r.resourceRequest) {
    const bare = r.path.length > 1 ? r.path.replace(/\/+$/, '') : r.path;
    return `k8s:${upstream}/${NON_RESOURCE_SCOPE}${bare}`;
  }
  const scope = r.namespace ?? CLUSTER_SCOPE;
  const grouped = r.apiGroup === '' ? r.resource : `${r.resource}.${r.apiGroup}`;
  const resource = r.subresource === undefined ? grouped : `${grouped}:${r.subresource}`;
  return [`k8s:${upstream}`, scope, resource, ...(r.name === undefined ? [] : [r.name])].join('/');
}

function printableSegment(s: string): string {
  return JSON.stringify(s.slice(0, 80)).slice(1, -1);
}

/** A client's method in an error message: quoted, escaped, at most 20 characters. */
export function printableMethod(m: string): string {
  return JSON.stringify(m.slice(0, 20));
}
