/**
 * Kubernetes request info (issue 13, point 6). The first tables are the API server's own: the cases
 * of `TestGetAPIRequestInfo`, `TestGetNonAPIRequestInfo` and `TestSelectorParsing` in k8s.io/apiserver
 * `pkg/endpoints/request/requestinfo_test.go` (kubernetes/apiserver 24a394e), row for row, with
 * the server's expectations; where Baton deliberately refuses or stays stricter the row says so.
 */
import { describe, expect, it } from 'vitest';
import {
  kubernetesRequest,
  kubernetesResource,
  type KubernetesRefusal,
  type KubernetesRequest,
} from '../../../src/proxy/http/kubernetes.ts';
import { candidatePatterns, covers, parseResource } from '../../../src/token/vocabulary.ts';

function parse(method: string, url: string): KubernetesRequest | KubernetesRefusal {
  const q = url.indexOf('?');
  const path = q < 0 ? url : url.slice(0, q);
  return kubernetesRequest(method, path, new URLSearchParams(q < 0 ? '' : url.slice(q + 1)));
}

function accepted(method: string, url: string): KubernetesRequest {
  const r = parse(method, url);
  if ('refused' in r) throw new Error(`${method} ${url} refused: ${r.refused}`);
  return r;
}

/** The Go table's columns: verb, group, version, namespace, resource, subresource, name ('' = absent). */
type Row = [method: string, url: string, verb: string, group: string, version: string, ns: string, resource: string, sub: string, name: string];

function columns(r: KubernetesRequest): string[] {
  return [r.verb, r.apiGroup, r.apiVersion, r.namespace ?? '', r.resource, r.subresource ?? '', r.name ?? ''];
}

// TestGetAPIRequestInfo successCases (the expectedAPIPrefix and expectedParts columns left out)
const SERVER_SUCCESS: Row[] = [
  // resource paths
  ['GET', '/api/v1/namespaces', 'list', '', 'v1', '', 'namespaces', '', ''],
  ['GET', '/api/v1/namespaces/other', 'get', '', 'v1', 'other', 'namespaces', '', 'other'],
  ['GET', '/api/v1/namespaces/other/pods', 'list', '', 'v1', 'other', 'pods', '', ''],
  ['GET', '/api/v1/namespaces/other/pods/foo', 'get', '', 'v1', 'other', 'pods', '', 'foo'],
  ['HEAD', '/api/v1/namespaces/other/pods/foo', 'get', '', 'v1', 'other', 'pods', '', 'foo'],
  ['GET', '/api/v1/pods', 'list', '', 'v1', '', 'pods', '', ''],
  ['HEAD', '/api/v1/pods', 'list', '', 'v1', '', 'pods', '', ''],
  ['GET', '/api/v1/namespaces/other/pods/foo', 'get', '', 'v1', 'other', 'pods', '', 'foo'],
  ['GET', '/api/v1/namespaces/other/pods', 'list', '', 'v1', 'other', 'pods', '', ''],
  // special verbs (the two /proxy/ rows are in SERVER_LEGACY_PROXY: refused here)
  ['GET', '/api/v1/watch/pods', 'watch', '', 'v1', '', 'pods', '', ''],
  ['GET', '/api/v1/pods?watch=true', 'watch', '', 'v1', '', 'pods', '', ''],
  ['GET', '/api/v1/pods?watch=false', 'list', '', 'v1', '', 'pods', '', ''],
  ['GET', '/api/v1/watch/namespaces/other/pods', 'watch', '', 'v1', 'other', 'pods', '', ''],
  ['GET', '/api/v1/namespaces/other/pods?watch=1', 'watch', '', 'v1', 'other', 'pods', '', ''],
  ['GET', '/api/v1/namespaces/other/pods?watch=0', 'list', '', 'v1', 'other', 'pods', '', ''],
  // subresource identification
  ['GET', '/api/v1/namespaces/other/pods/foo/status', 'get', '', 'v1', 'other', 'pods', 'status', 'foo'],
  ['GET', '/api/v1/namespaces/other/pods/foo/proxy/subpath', 'get', '', 'v1', 'other', 'pods', 'proxy', 'foo'],
  ['PUT', '/api/v1/namespaces/other/finalize', 'update', '', 'v1', 'other', 'namespaces', 'finalize', 'other'],
  ['PUT', '/api/v1/namespaces/other/status', 'update', '', 'v1', 'other', 'namespaces', 'status', 'other'],
  // verb identification
  ['PATCH', '/api/v1/namespaces/other/pods/foo', 'patch', '', 'v1', 'other', 'pods', '', 'foo'],
  ['DELETE', '/api/v1/namespaces/other/pods/foo', 'delete', '', 'v1', 'other', 'pods', '', 'foo'],
  ['POST', '/api/v1/namespaces/other/pods', 'create', '', 'v1', 'other', 'pods', '', ''],
  // deletecollection verb identification
  ['DELETE', '/api/v1/nodes', 'deletecollection', '', 'v1', '', 'nodes', '', ''],
  ['DELETE', '/api/v1/namespaces', 'deletecollection', '', 'v1', '', 'namespaces', '', ''],
  ['DELETE', '/api/v1/namespaces/other/pods', 'deletecollection', '', 'v1', 'other', 'pods', '', ''],
  ['DELETE', '/apis/extensions/v1/namespaces/other/pods', 'deletecollection', 'extensions', 'v1', 'other', 'pods', '', ''],
  // api group identification
  ['POST', '/apis/extensions/v1/namespaces/other/pods', 'create', 'extensions', 'v1', 'other', 'pods', '', ''],
  // api version identification
  ['POST', '/apis/extensions/v1beta3/namespaces/other/pods', 'create', 'extensions', 'v1beta3', 'other', 'pods', '', ''],
];

// TestGetAPIRequestInfo successCases, "special verbs": the server parses these with verb "proxy"
const SERVER_LEGACY_PROXY = [
  '/api/v1/proxy/namespaces/other/pods/foo',
  '/api/v1/proxy/namespaces/other/pods/foo/subpath/not/a/subresource',
];

// TestGetAPIRequestInfo errorCases: non-resource requests on the server
const SERVER_NON_RESOURCE: Array<[string, string, 'non-resource' | 'refused']> = [
  ['no resource path', '/', 'non-resource'],
  // not URLs the server serves ("version" is no Kubernetes version, "badprefix" no root it
  // serves): nothing to name a right for, so refused; the same shapes with real names pass below
  ['just apiversion', '/api/version/', 'refused'],
  ['just prefix, group, version', '/apis/group/version/', 'refused'],
  ['apiversion with no resource', '/api/version/', 'refused'],
  ['bad prefix', '/badprefix/version/resource', 'refused'],
  ['missing api group', '/apis/version/resource', 'refused'],
];

// TestGetNonAPIRequestInfo: whether the server sees a resource request
const SERVER_IS_RESOURCE: Array<[string, string, boolean | 'refused']> = [
  ['simple groupless', '/api/version/resource', true],
  ['simple group', '/apis/group/version/resource/name/subresource', true],
  ['more steps', '/api/version/resource/name/subresource', true],
  ['group list', '/apis/batch/v1/job', true],
  ['group get', '/apis/batch/v1/job/foo', true],
  ['group subresource', '/apis/batch/v1/job/foo/scale', true],
  // false on the server; refused here as not a known non-resource URL
  ['bad root', '/not-api/version/resource', 'refused'],
  ['group without enough steps', '/apis/extensions/v1beta1', false],
  ['group without enough steps 2', '/apis/extensions/v1beta1/', false],
  ['not enough steps', '/api/version', 'refused'], // no such version; '/api/v1' is non-resource
  ['one step', '/api', false],
  ['zero step', '/', false],
  // false on the server (Go's empty URL); a path must start with "/" here
  ['empty', '', 'refused'],
];

// TestSelectorParsing: [name, method, url, server's name, server's verb, Baton's name]. Baton does
// not take a name from `fieldSelector=metadata.name=…` (see kubernetesRequest): stricter.
const SERVER_SELECTORS: Array<[string, string, string, string, string, string]> = [
  ['no selector', 'GET', '/apis/group/version/resource', '', 'list', ''],
  ['metadata.name selector', 'GET', '/apis/group/version/resource?fieldSelector=metadata.name=name1', 'name1', 'list', ''],
  ['metadata.name selector with watch', 'GET', '/apis/group/version/resource?watch=true&fieldSelector=metadata.name=name1', 'name1', 'watch', ''],
  ['random selector', 'GET', '/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux', '', 'list', ''],
  ['invalid selector with metadata.name', 'GET', '/apis/group/version/resource?fieldSelector=metadata.name=name1,foo', '', 'list', ''],
  ['invalid selector with metadata.name with watch', 'GET', '/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=true', '', 'watch', ''],
  ['invalid selector with metadata.name with watch false', 'GET', '/apis/group/version/resource?fieldSelector=metadata.name=name1,foo&watch=false', '', 'list', ''],
  ['selector on deletecollection is honored', 'DELETE', '/apis/group/version/resource?fieldSelector=foo=bar&labelSelector=baz=qux', '', 'deletecollection', ''],
  ['selector on repeated param matches parsed param', 'GET', '/apis/group/version/resource?fieldSelector=metadata.name=foo&fieldSelector=metadata.name=bar&labelSelector=foo=bar&labelSelector=foo=baz', 'foo', 'list', ''],
  ['selector on other verb is ignored', 'GET', '/apis/group/version/resource/name?fieldSelector=foo=bar&labelSelector=foo=bar', 'name', 'get', 'name'],
  ['selector on deprecated root type watch is not parsed', 'GET', '/apis/group/version/watch/resource?fieldSelector=metadata.name=foo&labelSelector=foo=bar', '', 'watch', ''],
  ['selector on deprecated root item watch is not parsed', 'GET', '/apis/group/version/watch/resource/name?fieldSelector=metadata.name=foo&labelSelector=foo=bar', 'name', 'watch', 'name'],
];

describe("the API server's own table (requestinfo_test.go)", () => {
  it.each(SERVER_SUCCESS)('%s %s → %s', (method, url, ...want) => {
    const r = accepted(method, url);
    expect(r.resourceRequest).toBe(true);
    expect(columns(r)).toEqual(want);
    expect(r.path).toBe(url.split('?')[0]);
  });

  it.each(SERVER_LEGACY_PROXY)('GET %s (server: verb proxy) is refused', (url) => {
    expect(parse('GET', url)).toEqual({ refused: expect.stringContaining('legacy /proxy/') });
  });

  it.each(SERVER_NON_RESOURCE)('%s: %s → %s', (_name, url, want) => {
    const r = parse('GET', url);
    if (want === 'refused') expect(r).toHaveProperty('refused');
    else expect(r).toMatchObject({ resourceRequest: false, verb: 'get', resource: '', path: url });
  });

  it.each(SERVER_IS_RESOURCE)('%s: %s → %s', (_name, url, want) => {
    const r = parse('GET', url);
    if (want === 'refused') expect(r).toHaveProperty('refused');
    else expect(r).toHaveProperty('resourceRequest', want);
  });

  it.each(SERVER_SELECTORS)('%s', (_name, method, url, _serverName, verb, name) => {
    const r = accepted(method, url);
    expect(r.verb).toBe(verb);
    expect(r.name ?? '').toBe(name);
  });
});

describe('subresources and the cases the proxy cares about', () => {
  const CASES: Row[] = [
    // exec, attach, portforward: GET (WebSocket) is get, POST (SPDY) is create, as the server derives
    ['GET', '/api/v1/namespaces/prod/pods/web-1/exec?command=sh&stdin=true', 'get', '', 'v1', 'prod', 'pods', 'exec', 'web-1'],
    ['POST', '/api/v1/namespaces/prod/pods/web-1/exec?command=sh', 'create', '', 'v1', 'prod', 'pods', 'exec', 'web-1'],
    ['GET', '/api/v1/namespaces/prod/pods/web-1/attach', 'get', '', 'v1', 'prod', 'pods', 'attach', 'web-1'],
    ['POST', '/api/v1/namespaces/prod/pods/web-1/portforward', 'create', '', 'v1', 'prod', 'pods', 'portforward', 'web-1'],
    ['GET', '/api/v1/namespaces/prod/pods/web-1/log?follow=true&container=app', 'get', '', 'v1', 'prod', 'pods', 'log', 'web-1'],
    ['GET', '/api/v1/namespaces/prod/pods/web-1/proxy/metrics/x', 'get', '', 'v1', 'prod', 'pods', 'proxy', 'web-1'],
    ['POST', '/api/v1/namespaces/prod/services/http:web:80/proxy/api/v2/', 'create', '', 'v1', 'prod', 'services', 'proxy', 'http:web:80'],
    ['GET', '/api/v1/nodes/node-1/proxy/stats/summary', 'get', '', 'v1', '', 'nodes', 'proxy', 'node-1'],
    ['POST', '/api/v1/namespaces/prod/pods/web-1/eviction', 'create', '', 'v1', 'prod', 'pods', 'eviction', 'web-1'],
    ['PATCH', '/apis/apps/v1/namespaces/prod/deployments/web/scale', 'patch', 'apps', 'v1', 'prod', 'deployments', 'scale', 'web'],
    ['GET', '/apis/apps/v1/namespaces/prod/deployments/web/scale', 'get', 'apps', 'v1', 'prod', 'deployments', 'scale', 'web'],
    ['PUT', '/apis/apps/v1/namespaces/prod/deployments/web/status', 'update', 'apps', 'v1', 'prod', 'deployments', 'status', 'web'],
    // the namespace object itself, and its collection
    ['DELETE', '/api/v1/namespaces/prod', 'delete', '', 'v1', 'prod', 'namespaces', '', 'prod'],
    ['POST', '/api/v1/namespaces', 'create', '', 'v1', '', 'namespaces', '', ''],
    ['GET', '/api/v1/watch/namespaces', 'watch', '', 'v1', '', 'namespaces', '', ''],
    // cluster-scoped, grouped, custom resources
    ['GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/system:node-proxier', 'get', 'rbac.authorization.k8s.io', 'v1', '', 'clusterroles', '', 'system:node-proxier'],
    ['POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', 'create', 'authorization.k8s.io', 'v1', '', 'selfsubjectaccessreviews', '', ''],
    ['GET', '/apis/apps/v1/deployments', 'list', 'apps', 'v1', '', 'deployments', '', ''],
    ['DELETE', '/apis/example.com/v1alpha1/namespaces/prod/widgets', 'deletecollection', 'example.com', 'v1alpha1', 'prod', 'widgets', '', ''],
    // PUT/PATCH/POST keep their verb without a name, as on the server
    ['PUT', '/api/v1/namespaces/prod/configmaps', 'update', '', 'v1', 'prod', 'configmaps', '', ''],
    // watch query: only for a nameless get; first value wins; Go's bool rules
    ['GET', '/api/v1/pods?watch=', 'watch', '', 'v1', '', 'pods', '', ''],
    ['GET', '/api/v1/pods?watch=FALSE', 'list', '', 'v1', '', 'pods', '', ''],
    ['GET', '/api/v1/pods?watch=yes', 'watch', '', 'v1', '', 'pods', '', ''],
    ['GET', '/api/v1/pods?watch=false&watch=true', 'list', '', 'v1', '', 'pods', '', ''],
    ['GET', '/api/v1/pods?watch=true&watch=false', 'watch', '', 'v1', '', 'pods', '', ''],
    ['GET', '/api/v1/namespaces/prod/pods/web-1?watch=true', 'get', '', 'v1', 'prod', 'pods', '', 'web-1'],
    ['DELETE', '/api/v1/pods?watch=true', 'deletecollection', '', 'v1', '', 'pods', '', ''],
    ['GET', '/api/v1/watch/namespaces/prod/pods/web-1', 'watch', '', 'v1', 'prod', 'pods', '', 'web-1'],
    // trailing slashes are trimmed, as splitPath does
    ['GET', '/api/v1/namespaces/prod/pods/', 'list', '', 'v1', 'prod', 'pods', '', ''],
  ];

  it.each(CASES)('%s %s → %s', (method, url, ...want) => {
    expect(columns(accepted(method, url))).toEqual(want);
  });

  it('a GET to pods/exec, attach or portforward also requires create (Kubernetes ≥ 1.35, KEP-4006)', () => {
    for (const sub of ['exec', 'attach', 'portforward']) {
      expect(accepted('GET', `/api/v1/namespaces/prod/pods/web-1/${sub}`).alsoRequires).toBe('create');
      expect(accepted('HEAD', `/api/v1/namespaces/prod/pods/web-1/${sub}`).alsoRequires).toBe('create');
      expect(accepted('POST', `/api/v1/namespaces/prod/pods/web-1/${sub}`)).not.toHaveProperty('alsoRequires');
    }
    expect(accepted('GET', '/api/v1/namespaces/prod/pods/web-1/log')).not.toHaveProperty('alsoRequires');
    expect(accepted('GET', '/api/v1/namespaces/prod/pods/web-1/proxy/')).not.toHaveProperty('alsoRequires');
  });
});

describe('non-resource URLs', () => {
  const KNOWN: Array<[string, string]> = [
    ['GET', '/version'],
    ['GET', '/healthz'],
    ['GET', '/readyz/etcd'],
    ['GET', '/livez/poststarthook/rbac-bootstrap-roles'],
    ['GET', '/openapi/v2'],
    ['GET', '/openapi/v3/apis/apps/v1'],
    ['GET', '/apis'],
    ['GET', '/apis/apps'],
    ['GET', '/apis/apps/v1'],
    ['GET', '/apis/flowcontrol.apiserver.k8s.io/v1beta3'],
    ['GET', '/api/v1/'],
    ['GET', '/api'],
    ['GET', '/api/v1'],
    ['GET', '/.well-known/openid-configuration'],
    ['HEAD', '/metrics'],
    ['POST', '/healthz'],
  ];
  it.each(KNOWN)('%s %s: not a resource request, verb from the method', (method, path) => {
    expect(kubernetesRequest(method, path, new URLSearchParams())).toEqual({
      verb: method.toLowerCase(),
      apiGroup: '',
      apiVersion: '',
      resource: '',
      resourceRequest: false,
      path,
    });
  });
});

describe('refusals (fail closed)', () => {
  const REFUSED: Array<[string, string, string]> = [
    ['OPTIONS', '/api/v1/pods', 'method "OPTIONS" has no Kubernetes verb'],
    ['CONNECT', '/api/v1/namespaces/prod/pods/web-1/exec', 'method "CONNECT" has no Kubernetes verb'],
    ['get', '/api/v1/pods', 'method "get" has no Kubernetes verb'],
    ['GET', '/api/v1/watch', 'watch prefix without a resource'],
    ['GET', '/api/v1/watch/', 'watch prefix without a resource'],
    ['DELETE', '/api/v1/watch/namespaces/prod/pods', 'method "DELETE" on the watch prefix'],
    ['GET', '/api/v1/proxy/nodes/node-1', 'legacy /proxy/'],
    ['GET', '/api//v1/pods', 'empty path segment'],
    ['GET', '/api/v1/namespaces//pods', 'empty path segment'],
    ['GET', '/api/v1/namespaces/prod//pods', 'empty path segment'],
    ['GET', '/api/v1/namespaces/prod/pods//log', 'empty path segment'],
    ['GET', '/api/v1/namespaces/prod/pods/..', 'unusual characters in path segment ".."'],
    ['GET', '/api/v1/namespaces/./pods', 'unusual characters in path segment "."'],
    ['GET', '/api/v1/namespaces/prod/secrets/a%2Fb', 'unusual characters in path segment "a%2Fb"'],
    ['GET', '/api/v1/namespaces/prod/secrets/a b', 'unusual characters'],
    ['GET', '/api/v1/namespaces/prod/secrets/*', 'unusual characters'],
    ['GET', '/api/v1/namespaces/prod/secrets/a\\b', 'unusual characters'],
    ['GET', '/api/v1/namespaces/prod/secrets/ѕecret', 'unusual characters'], // Cyrillic ѕ
    ['GET', '/api/v1/namespaces/pröd/pods', 'unusual characters'],
    ['GET', '/apis/apps;x=1/v1/deployments', 'unusual characters'],
    ['GET', '/api/v1/namespaces/prod/pods/web-1/log/extra', 'path continues after subresource "log"'],
    ['POST', '/api/v1/namespaces/prod/pods/web-1/exec/sh', 'path continues after subresource "exec"'],
    ['GET', '/api/v1/pods?watch=false;x=1', 'unreadable watch parameter'],
    ['GET', '/api/v1/pods?watch=fal%C5%BFe', 'unreadable watch parameter'], // "falſe": Go's EqualFold says false
    ['GET', '/api/v1/pods?watch=%zz', 'unreadable watch parameter'],
    ['GET', '/logs/kube-apiserver.log', 'not a Kubernetes API path'],
    ['GET', '/debug/pprof/profile', 'not a Kubernetes API path'],
    ['GET', '/apis/apps/v1/extra/x/y/z/../..', 'path continues after subresource "y"'],
    ['GET', '/api/v1/namespaces/prod/services/web/proxy/../../secrets', 'dot segment in proxied path'],
    ['GET', '/api/v1/namespaces/prod/pods/web-1/proxy/a/./b', 'dot segment in proxied path'],
    ['GET', '/api/v1beta', 'not a Kubernetes API path'],
    ['GET', '/apis/-apps', 'not a Kubernetes API path'],
    ['GET', '//version', 'not a Kubernetes API path'],
    ['GET', 'api/v1/pods', 'path must start with "/"'],
    ['TRACE', '/version', 'method "TRACE" not allowed here'],
  ];

  it.each(REFUSED)('%s %s: %s', (method, url, why) => {
    const r = parse(method, url);
    expect(r).toHaveProperty('refused');
    expect((r as KubernetesRefusal).refused).toContain(why);
  });

  it('caller misuse throws TypeError', () => {
    expect(() => kubernetesRequest('GET', '/api', '' as unknown as URLSearchParams)).toThrow(TypeError);
    expect(() => kubernetesResource('bad/upstream', accepted('GET', '/api/v1/pods'))).toThrow(TypeError);
  });
});

describe('kubernetesResource', () => {
  const RESOURCES: Array<[string, string, string]> = [
    ['GET', '/api/v1/namespaces/prod/pods/web-1', 'k8s:k/prod/pods/web-1'],
    ['GET', '/api/v1/namespaces/prod/pods', 'k8s:k/prod/pods'],
    ['GET', '/api/v1/pods', 'k8s:k/_cluster/pods'],
    ['GET', '/api/v1/nodes/node-1', 'k8s:k/_cluster/nodes/node-1'],
    ['POST', '/api/v1/namespaces/prod/pods/web-1/exec', 'k8s:k/prod/pods:exec/web-1'],
    ['GET', '/api/v1/namespaces/prod/pods/exec', 'k8s:k/prod/pods/exec'], // a pod named "exec"
    ['GET', '/api/v1/namespaces/prod/pods/web-1/log', 'k8s:k/prod/pods:log/web-1'],
    ['GET', '/api/v1/namespaces/prod/services/web/proxy/a/b', 'k8s:k/prod/services:proxy/web'],
    ['PATCH', '/apis/apps/v1/namespaces/prod/deployments/web/scale', 'k8s:k/prod/deployments.apps:scale/web'],
    ['GET', '/apis/rbac.authorization.k8s.io/v1/clusterroles/system:node-proxier', 'k8s:k/_cluster/clusterroles.rbac.authorization.k8s.io/system:node-proxier'],
    ['GET', '/api/v1/namespaces/prod', 'k8s:k/prod/namespaces/prod'],
    ['PUT', '/api/v1/namespaces/prod/finalize', 'k8s:k/prod/namespaces:finalize/prod'],
    ['GET', '/api/v1/namespaces', 'k8s:k/_cluster/namespaces'],
    ['GET', '/version', 'k8s:k/_nonresource/version'],
    ['GET', '/apis/apps/v1/', 'k8s:k/_nonresource/apis/apps/v1'],
    ['GET', '/', 'k8s:k/_nonresource/'],
  ];

  it.each(RESOURCES)('%s %s → %s', (method, url, want) => {
    expect(kubernetesResource('k', accepted(method, url))).toBe(want);
  });

  it('spells only printable ASCII without spaces or backslashes (the Baton resource grammar)', () => {
    for (const [method, url] of RESOURCES) {
      expect(kubernetesResource('k', accepted(method, url))).toMatch(/^k8s:k\/[!-[\]-~]*$/);
    }
  });
});

describe('kubernetesResource and the token vocabulary', () => {
  it('is a resource of the k8s kind, and a right on pods/ never reaches a subresource', () => {
    const exec = kubernetesResource('k', accepted('POST', '/api/v1/namespaces/prod/pods/web-1/exec'));
    const get = kubernetesResource('k', accepted('GET', '/api/v1/namespaces/prod/pods/web-1'));
    const list = kubernetesResource('k', accepted('GET', '/api/v1/namespaces/prod/pods'));
    expect(parseResource(exec).kind).toBe('k8s');
    expect(covers('k8s:k/prod/pods/', get)).toBe(true);
    expect(covers('k8s:k/prod/pods/', list)).toBe(true);
    expect(covers('k8s:k/prod/pods/', exec)).toBe(false);
    expect(covers('k8s:k/prod/pods:exec/', exec)).toBe(true);
    expect(covers('k8s:k/prod/', exec)).toBe(true);
    expect(candidatePatterns(exec)).not.toContain('k8s:k/prod/pods/');
    expect(candidatePatterns(exec)).not.toContain('k8s:k/prod/pods/*');
  });
});
