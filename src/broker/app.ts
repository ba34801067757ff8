/**
 * The broker's HTTP app: a fastify instance with its routes. Pure wiring — every dependency is passed
 * in, so tests build it against real stores on loopback.
 */
import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { installErrorHandling } from './http-errors.ts';
import { HealthRouteLogController } from './metrics.ts';
import { opsRoutes, type OpsDeps } from './routes/ops.ts';
import { tokenRoutes, type TokenRouteDeps } from './routes/token.ts';

export type BrokerDeps = TokenRouteDeps & OpsDeps & {
  /** Extra route plugins (dev issuer, revocation, audit …), registered after the core routes. */
  plugins?: Array<(app: FastifyInstance) => void | Promise<void>>;
};

/** Request bodies larger than this are refused with 413 (tokens are a few KiB). */
export const BODY_LIMIT = 64 * 1024;

export const LOG_REDACT = ['req.headers.authorization', 'req.body', 'body.subject_token', 'body.actor_token', 'body.token'];

const registeredRoutes = new WeakMap<FastifyInstance, { method: string; url: string }[]>();

/** Every (method, url) the app serves — what openapi.yaml must describe (HEAD routes excluded). */
export function routesOf(app: FastifyInstance): { method: string; url: string }[] {
  return registeredRoutes.get(app) ?? [];
}

export async function buildBrokerApp(deps: BrokerDeps, logger: FastifyServerOptions['logger'] = false): Promise<FastifyInstance> {
  // probes hit /healthz, /readyz and /metrics every few seconds: logged at debug, not info
  const app = Fastify({ logger, bodyLimit: BODY_LIMIT, trustProxy: false, return503OnClosing: true, logController: new HealthRouteLogController() });
  const routes: { method: string; url: string }[] = [];
  registeredRoutes.set(app, routes);
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) if (method !== 'HEAD') routes.push({ method, url: r.url });
  });
  installErrorHandling(app);
  await app.register(formbody, { bodyLimit: BODY_LIMIT });
  tokenRoutes(app, deps);
  opsRoutes(app, deps);
  for (const plugin of deps.plugins ?? []) await plugin(app);
  return app;
}
