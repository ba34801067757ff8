/** Starting the HTTP enforcement proxy: gate (token chains, revocations, audit) + listener. */
import type { AuditWriter } from '../../audit/writer.ts';
import type { Config } from '../../config/schema.ts';
import type { RevocationView } from '../../revocation/view.ts';
import type { KeySetSource } from '../pg/keyset.ts';
import type { ProxyLogger } from '../pg/log.ts';
import { assertRoutes } from './access.ts';
import { createHttpGate } from './gate.ts';
import { createHttpProxy, type HttpProxy, type HttpUpstreamConfig } from './server.ts';

export type HttpProxyConfig = Config['proxy']['http'];

export interface HttpProxyDeps {
  keys: KeySetSource;
  revocations: RevocationView;
  audit: AuditWriter;
  /** `config.audit.ordering`: `strict` makes every entry durable before its request is forwarded. */
  auditOrdering?: 'default' | 'strict';
  /** Upstreams besides the configured ones (dev mode's demo upstreams). */
  extraUpstreams?: ReadonlyMap<string, HttpUpstreamConfig>;
  logger?: ProxyLogger;
}

export interface RunningHttpProxy {
  proxy: HttpProxy;
  host: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

/**
 * @example const http = await startHttpProxy(config.proxy.http, { keys, revocations, audit });
 * @throws TypeError when a route names an operation or resource outside the vocabulary
 */
export async function startHttpProxy(config: HttpProxyConfig, deps: HttpProxyDeps): Promise<RunningHttpProxy> {
  const upstreams = new Map<string, HttpUpstreamConfig>([...Object.entries(config.upstreams), ...(deps.extraUpstreams ?? [])]);
  for (const [name, u] of upstreams) {
    assertRoutes(name, u.routes);
    if (u.mcp && u.kubernetes) throw new TypeError(`proxy.http.upstreams.${name}: an upstream is either mcp or kubernetes, not both`);
  }
  const log = deps.logger ? (event: Record<string, unknown>) => deps.logger!.warn(event, String(event.event ?? 'http')) : undefined;
  const current = deps.keys.current?.bind(deps.keys);
  const gate = createHttpGate({
    keys: (id) => deps.keys.resolver(id),
    ...(current ? { currentKeys: current } : {}),
    revocations: deps.revocations,
    audit: deps.audit,
    tokenCacheSize: config.tokenCacheSize,
    ...(log ? { log } : {}),
  });
  const proxy = createHttpProxy({
    gate,
    upstreams,
    host: config.host,
    port: config.port,
    maxConnections: config.maxConnections,
    ordering: deps.auditOrdering ?? 'default',
    ...(log ? { log } : {}),
  });
  const address = await proxy.listen();
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  return {
    proxy,
    host: config.host,
    port: address.port,
    url: `http://${host}:${address.port}`,
    async close() {
      await proxy.close();
      gate.close();
    },
  };
}
