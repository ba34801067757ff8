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
  app.get('/.well-known/baton-keys.json', async (_request, reply) => {
    // short cache: rotations must reach proxies quickly, retirements too
    reply.header('cache-control', 'public, max-age=60');
    return { keys: deps.keyring.published() };
  });
}
