/** Operations endpoints: liveness, readiness, Prometheus metrics, the public key set. */
import type { FastifyInstance } from 'fastify';
import type { Keyring } from '../../keys/keyring.ts';
import type { Metrics } from '../metrics.ts';

export interface OpsDeps {
  keyring: Keyring;
  metrics: Metrics;
  /** Resolves when every backing store answers; rejects naming the one that does not. */
  ready: () => Promise<void>;
}

export function opsRoutes(app: FastifyInstance, deps: OpsDeps): void {
  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    try {
      await deps.ready();
      return { status: 'ready' };
    } catch (err) {
      request.log.warn({ err: (err as Error).message }, 'not ready');
      return reply.status(503).send({ status: 'unavailable', reason: (err as Error).message });
    }
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(deps.metrics.registry.contentType);
    return deps.metrics.registry.metrics();
  });
  app.get('/.well-known/baton-keys.json', async (request, reply) => {
    // Proxies poll this every few seconds (a retirement must reach them quickly): they revalidate
    // with If-None-Match and get an empty 304 while nothing changed. Caches must revalidate too.
    const etag = `"${deps.keyring.tag}"`;
    reply.header('cache-control', 'no-cache').header('etag', etag);
    if (ifNoneMatch(request.headers['if-none-match'], etag)) return reply.status(304).send();
    return { keys: deps.keyring.published() };
  });
}

/** RFC 9110 §13.1.2: `*` or any listed (weakly compared) entity tag matches. */
function ifNoneMatch(header: string | undefined, etag: string): boolean {
  if (!header) return false;
  return header.split(',').some((t) => {
    const v = t.trim();
    return v === '*' || v.replace(/^W\//, '') === etag;
  });
}
