/** Starting the Postgres enforcement proxy: gate (token, classifier, revocations, audit) + listener. */
import { readFileSync } from 'node:fs';
import type { AuditWriter } from '../../audit/writer.ts';
import type { Config } from '../../config/schema.ts';
import type { RevocationView } from '../../revocation/view.ts';
import { createBatonGate } from './baton-gate.ts';
import { createClassifierCache, initClassifier } from './classify/index.ts';
import type { UpstreamTarget } from './gate.ts';
import type { KeySetSource } from './keyset.ts';
import type { ProxyLogger } from './log.ts';
import { createPgProxy, type PgProxy } from './server.ts';

export interface PgProxyDeps {
  keys: KeySetSource;
  revocations: RevocationView;
  audit: AuditWriter;
  upstreams: ReadonlyMap<string, UpstreamTarget>;
  /** PEM certificate + key; default from config.tls files. */
  tls?: { cert: string; key: string };
  /** Structured logger (pino/fastify shape); never given tokens or SQL text. Default: silent. */
  logger?: ProxyLogger;
}

export interface RunningPgProxy {
  proxy: PgProxy;
  host: string;
  port: number;
  close(): Promise<void>;
}

export async function startPgProxy(config: Config['proxy'], deps: PgProxyDeps): Promise<RunningPgProxy> {
  await initClassifier();
  const classifier = createClassifierCache({ maxEntries: 10_000 });
  const gate = createBatonGate({
    keys: (id) => deps.keys.resolver(id),
    revocations: deps.revocations,
    audit: deps.audit,
    classify: (sql, ctx) => classifier.classify(sql, ctx),
    upstreams: deps.upstreams,
    ...(deps.logger ? { log: (event: Record<string, unknown>) => deps.logger!.warn(event, String(event.event ?? 'gate')) } : {}),
  });
  const tls = deps.tls ?? (config.tls ? { cert: readFileSync(config.tls.certFile, 'utf8'), key: readFileSync(config.tls.keyFile, 'utf8') } : undefined);
  const proxy = createPgProxy({ gate, host: config.host, port: config.port, allowInsecure: config.allowInsecure, ...(tls ? { tls } : {}), ...(deps.logger ? { logger: deps.logger } : {}) });
  const address = await proxy.listen();
  return { proxy, host: config.host, port: address.port, close: () => proxy.close() };
}
