/**
 * The HTTP data path on loopback for tests: a dev-mode broker on a fresh database (its seeded policy
 * grants engineers http:billing/ and mcp:tools/), the demo upstreams of `baton dev` (billing, tools),
 * any upstreams a test adds, and the HTTP proxy in front of them, with its own revocation set fed like
 * a separate process's (channel + HTTP resync).
 */
import { HttpUpstreamSchema } from '../../src/config/schema.ts';
import { startDemoHttpUpstreams, type DemoHttpUpstreams } from '../../src/dev/demo-http.ts';
import type { HttpUpstreamConfig } from '../../src/proxy/http/server.ts';
import { startHttpProxy, type RunningHttpProxy } from '../../src/proxy/http/start.ts';
import { RevocationSet } from '../../src/revocation/set.ts';
import { httpRevocationSource } from '../../src/revocation/sources.ts';
import type { AuditWriter } from '../../src/audit/writer.ts';
import { attenuate, type AttenuateOptions } from '../../src/token/attenuate.ts';
import { exchange } from '../../src/sdk/exchange.ts';
import { startTestBroker, type TestBroker } from './broker.ts';

export interface HttpTestStack {
  broker: TestBroker;
  proxy: RunningHttpProxy;
  demo: DemoHttpUpstreams;
  /** The proxy's base URL (`http://127.0.0.1:<port>`). */
  url: string;
  token(sub: string, groups: string[]): Promise<string>;
  attenuate(token: string, opts: Omit<AttenuateOptions, 'delegateTo'> & { delegateTo?: string }): string;
  /** fetch through the proxy with `Authorization: Bearer <token>` (when given). */
  fetch(path: string, token: string | undefined, init?: RequestInit): Promise<Response>;
  stop(): Promise<void>;
}

/** Upstream config with the schema's defaults (test timeouts: connect 2 s, response 10 s), for tests. */
export function httpUpstream(url: string, over: Partial<HttpUpstreamConfig> = {}): HttpUpstreamConfig {
  return HttpUpstreamSchema.parse({ url, timeouts: { connectMs: 2_000, responseMs: 10_000, idleMs: 60_000 }, ...over });
}

export async function startHttpTestStack(
  area: string,
  opts: { upstreams?: Record<string, HttpUpstreamConfig>; audit?: (broker: TestBroker) => AuditWriter; auditOrdering?: 'default' | 'strict' } = {},
): Promise<HttpTestStack> {
  const broker = await startTestBroker(area);
  const demo = await startDemoHttpUpstreams();
  const revocations = new RevocationSet({ source: httpRevocationSource(broker.url), state: broker.state });
  await revocations.start();
  const proxy = await startHttpProxy(
    { host: '127.0.0.1', port: 0, upstreams: opts.upstreams ?? {}, maxConnections: 10_000, tokenCacheSize: 64 },
    {
      keys: { resolver: async () => broker.keyring, current: () => broker.keyring },
      revocations,
      audit: opts.audit ? opts.audit(broker) : broker.audit,
      extraUpstreams: demo.upstreams,
      ...(opts.auditOrdering ? { auditOrdering: opts.auditOrdering } : {}),
    },
  );
  return {
    broker,
    proxy,
    demo,
    url: proxy.url,
    async token(sub, groups) {
      return exchange({ broker: broker.url, subjectToken: await broker.devToken(sub, groups) });
    },
    attenuate: (token, o) => attenuate(token, { delegateTo: 'helper', ...o }),
    fetch(path, token, init = {}) {
      const headers = new Headers(init.headers);
      if (token !== undefined) headers.set('authorization', `Bearer ${token}`);
      return fetch(`${proxy.url}${path}`, { ...init, headers });
    },
    async stop() {
      await proxy.close();
      await demo.close();
      await revocations.stop();
      await broker.stop();
    },
  };
}
