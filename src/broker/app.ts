/**
 * The broker's HTTP app: a fastify instance with its routes. Pure wiring — every dependency is passed
 * in, so tests build it against real stores on loopback.
 */
import formbody from '@fastify/formbody';
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { installErrorHandling } from './http-errors.ts';
import { opsRoutes, type OpsDeps } from './routes/ops.ts';
import { tokenRoutes, type TokenRouteDeps } from './routes/token.ts';

export type BrokerDeps = TokenRouteDeps & OpsDeps & {
  /** Extra route plugins (dev issuer, revocation, audit …), registered after the core routes. */
  plugins?: Array<(app: FastifyInstance) => void | Promise<void>>;
};

/** Request bodies larger than this are refused with 413 (tokens are a few KiB). */
export const BODY_LIMIT = 64 * 1024;

export const LOG_REDACT = ['req.headers.authorization', 'req.body', 'body.subject_token', 'body.actor_token', 'body.token'];

export async function buildBrokerApp(deps: BrokerDeps, logger: FastifyServerOptions['logger'] = false): Promise<FastifyInstance> {
  const app = Fastify({ logger, bodyLimit: BODY_LIMIT, trustProxy: false, return503OnClosing: true });
  installErrorHandling(app);
  await app.register(formbody, { bodyLimit: BODY_LIMIT });
  tokenRoutes(app, deps);
  opsRoutes(app, deps);
  for (const plugin of deps.plugins ?? []) await plugin(app);
  return app;
}
