/**
 * The HTTP proxy in front of a Kubernetes API server (issue 13, point 6): the official
 * `@kubernetes/client-node` as the client, a loopback server answering the API paths as the upstream.
 * Verbs and resources are the API server's own; subresources (pods/log, pods/exec) need their own right.
 */
import http from 'node:http';
import * as k8s from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listenOnLoopback } from '../../helpers/loopback.ts';
import { queryAudit } from '../../../src/audit/query.ts';
import { httpUpstream, startHttpTestStack, type HttpTestStack } from '../../helpers/http-stack.ts';

const pod = (name: string, namespace = 'default') => ({ apiVersion: 'v1', kind: 'Pod', metadata: { name, namespace }, spec: { containers: [{ name: 'c', image: 'busybox' }] } });

/** Answers the few API paths the tests use, and records what it saw. */
async function startApiServer() {
  const seen: { method: string; url: string; authorization?: string }[] = [];
  const server = http.createServer((req, res) => {
    seen.push({ method: req.method!, url: req.url!, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) });
    const url = new URL(req.url!, 'http://k');
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    const m = /^\/api\/v1\/namespaces\/([^/]+)\/(pods|secrets)(?:\/([^/]+))?(?:\/(log))?$/.exec(url.pathname);
    if (!m) return json(404, { kind: 'Status', status: 'Failure', code: 404 });
    const [, namespace, resource, name, sub] = m;
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.write(JSON.stringify({ type: 'ADDED', object: pod('web-1', namespace) }) + '\n');
      const t = setInterval(() => res.write(JSON.stringify({ type: 'MODIFIED', object: pod('web-1', namespace) }) + '\n'), 100);
      res.on('close', () => clearInterval(t));
      return;
    }
    if (sub === 'log') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return res.end('hello from web-1\n');
    }
    if (req.method === 'POST') return json(201, pod('created', namespace));
    if (name) return json(200, resource === 'pods' ? pod(name, namespace) : { apiVersion: 'v1', kind: 'Secret', metadata: { name, namespace } });
    return json(200, { apiVersion: 'v1', kind: resource === 'pods' ? 'PodList' : 'SecretList', metadata: {}, items: resource === 'pods' ? [pod('web-1', namespace), pod('web-2', namespace)] : [] });
  });
  return { ...(await listenOnLoopback(server)), seen };
}

let s: HttpTestStack;
let api: Awaited<ReturnType<typeof startApiServer>>;
let root: string;

/** A CoreV1Api talking to the proxy's `kube` upstream with `token` as its bearer token. */
function core(token: string): k8s.CoreV1Api {
  const kc = new k8s.KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: 'proxy', server: `${s.url}/kube`, skipTLSVerify: true }],
    users: [{ name: 'agent', token }],
    contexts: [{ name: 'c', cluster: 'proxy', user: 'agent' }],
    currentContext: 'c',
  });
  return kc.makeApiClient(k8s.CoreV1Api);
}

async function status(p: Promise<unknown>): Promise<number> {
  try {
    await p;
    return 200;
  } catch (e) {
    return (e as { code?: number }).code ?? -1;
  }
}

beforeAll(async () => {
  api = await startApiServer();
  s = await startHttpTestStack('http_k8s', {
    upstreams: { kube: httpUpstream(api.url, { kubernetes: true, credential: { type: 'bearer', token: 'cluster-sa-token' } }) },
  });
  root = await s.token('root', ['admins']);
}, 60_000);

afterAll(async () => {
  await s?.stop();
  await api?.close();
});

describe('Kubernetes through the proxy with @kubernetes/client-node', () => {
  it('a token for pods in default lists and reads them; the API server sees the proxy service account, not the token', async () => {
    const reader = s.attenuate(root, { resources: ['k8s:kube/default/pods/'], operations: ['get', 'list'], delegateTo: 'k8s-reader' });
    const list = await core(reader).listNamespacedPod({ namespace: 'default' });
    expect(list.items.map((p) => p.metadata?.name)).toEqual(['web-1', 'web-2']);
    const one = await core(reader).readNamespacedPod({ name: 'web-1', namespace: 'default' });
    expect(one.metadata?.name).toBe('web-1');
    expect(api.seen.at(-1)).toMatchObject({ method: 'GET', url: '/api/v1/namespaces/default/pods/web-1', authorization: 'Bearer cluster-sa-token' });
  });

  it('subresources need their own right: pods/ does not reach pods/log; pods:log/ does', async () => {
    const reader = s.attenuate(root, { resources: ['k8s:kube/default/pods/'], operations: ['get', 'list'] });
    expect(await status(core(reader).readNamespacedPodLog({ name: 'web-1', namespace: 'default' }))).toBe(403);
    const logs = s.attenuate(root, { resources: ['k8s:kube/default/pods:log/'], operations: ['get'] });
    expect(await core(logs).readNamespacedPodLog({ name: 'web-1', namespace: 'default' })).toContain('hello from web-1');
    expect(await status(core(logs).readNamespacedPod({ name: 'web-1', namespace: 'default' }))).toBe(403);
  });

  it('verbs are the API server’s: list is not get, create needs create, other namespaces and resources are denied', async () => {
    const getOnly = s.attenuate(root, { resources: ['k8s:kube/default/pods/'], operations: ['get'] });
    expect(await status(core(getOnly).listNamespacedPod({ namespace: 'default' }))).toBe(403);
    expect(await status(core(getOnly).createNamespacedPod({ namespace: 'default', body: pod('x') }))).toBe(403);
    expect(await status(core(getOnly).readNamespacedPod({ name: 'web-1', namespace: 'kube-system' }))).toBe(403);
    expect(await status(core(getOnly).listNamespacedSecret({ namespace: 'default' }))).toBe(403);
    const creator = s.attenuate(root, { resources: ['k8s:kube/default/pods/'], operations: ['create'] });
    expect((await core(creator).createNamespacedPod({ namespace: 'default', body: pod('x') })).metadata?.name).toBe('created');
  });

  it('a watch is the verb watch, streams, and ends when the token is revoked', async () => {
    const lister = s.attenuate(root, { resources: ['k8s:kube/default/pods/'], operations: ['list'] });
    expect((await s.fetch('/kube/api/v1/namespaces/default/pods?watch=true', lister)).status).toBe(403);
    const watcher = s.attenuate(root, { resources: ['k8s:kube/default/pods/'], operations: ['watch'], delegateTo: 'k8s-watcher' });
    const res = await s.fetch('/kube/api/v1/namespaces/default/pods?watch=true', watcher);
    expect(res.status).toBe(200);
    const reader = res.body!.getReader();
    expect(new TextDecoder().decode((await reader.read()).value)).toContain('"ADDED"');
    await fetch(`${s.broker.url}/v1/revoke`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ token: watcher }) });
    const started = Date.now();
    const ended = await (async () => {
      for (;;) if ((await reader.read()).done) return 'done';
    })().catch(() => 'cut');
    expect(ended).toMatch(/done|cut/);
    expect(Date.now() - started).toBeLessThan(1500);
    const { events } = await queryAudit(s.broker.db.pool, { delegate: 'k8s-watcher' });
    const watch = events.find((e) => e.resource !== undefined && e.resource !== null);
    expect(watch).toMatchObject({ decision: 'allow', resource: 'k8s:kube/default/pods', operation: 'watch', http: { method: 'GET', verb: 'watch', path: '/kube/api/v1/namespaces/default/pods?watch=*' } });
    await expect.poll(async () => (await queryAudit(s.broker.db.pool, { delegate: 'k8s-watcher' })).events.find((e) => e.seq === watch!.seq)?.recordedOutcome?.outcome).toMatchObject({ status: 200, tag: expect.stringMatching(/revoked/) });
  });

  it('Impersonate-* headers are refused: the API server must not act as someone else', async () => {
    for (const header of ['Impersonate-User', 'Impersonate-Group', 'Impersonate-Uid', 'Impersonate-Extra-scopes']) {
      const res = await s.fetch('/kube/api/v1/namespaces/default/pods', root, { headers: { [header]: 'system:admin' } });
      expect(res.status).toBe(403);
      expect(((await res.json()) as { title: string }).title).toMatch(/Impersonate/);
    }
    expect((await s.fetch('/kube/api/v1/namespaces/default/pods', root)).status).toBe(200);
  });

  it('exec over a GET upgrade is refused (the proxy does not carry protocol switches)', async () => {
    const status = await new Promise<number>((resolve, reject) => {
      const req = http.request(`${s.url}/kube/api/v1/namespaces/default/pods/web-1/exec?command=sh`, { headers: { authorization: `Bearer ${root}`, connection: 'Upgrade', upgrade: 'websocket' } });
      req.on('response', (r) => {
        r.resume();
        resolve(r.statusCode!);
      });
      req.on('upgrade', () => resolve(101));
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(501);
    expect(api.seen.some((r) => r.url.includes('/exec'))).toBe(false);
  });
});
