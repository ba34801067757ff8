/**
 * The standalone proxy's admin HTTP listener (config `proxy.admin`): liveness, readiness and
 * Prometheus metrics. Off unless `proxy.admin.port` is set; loopback by default. It serves no
 * secrets, but readiness reasons and metrics describe the deployment: expose it to the scraper and
 * the orchestrator's probes only.
 *
 * - `GET /healthz` — 200 while the process runs (event loop answering).
 * - `GET /readyz` — 200 when every check passes; 503 `{status:'unavailable', reasons:[…]}` naming
 *   each failing one (keys loaded and fresh, revocation state fresh, audit writer healthy and its
 *   database answering, the Postgres listener up).
 * - `GET /metrics` — the process's registry (text exposition format).
 *
 * Requests to these are logged at debug (probes come every few seconds).
 */
import Fastify, { type FastifyBaseLogger } from 'fastify';
import type { Registry } from 'prom-client';
import { HealthRouteLogController } from '../../broker/metrics.ts';

/** One readiness condition: resolves to why it is not met, or undefined when it is. */
export interface ReadinessCheck {
  name: string;
  check(): string | undefined | Promise<string | undefined>;
}

export interface AdminServerOptions {
  host: string;
  /** 0 = any free port. */
  port: number;
  registry: Registry;
  checks: readonly ReadinessCheck[];
  /** Per check, ms; a check that takes longer fails. Default 2000. */
  checkTimeoutMs?: number;
  logger?: FastifyBaseLogger;
}

export interface RunningAdminServer {
  host: string;
  port: number;
  url: string;
  close(): Promise<void>;
}

export async function startAdminServer(opts: AdminServerOptions): Promise<RunningAdminServer> {
  const app = Fastify({ ...(opts.logger ? { loggerInstance: opts.logger } : {}), return503OnClosing: true, logController: new HealthRouteLogController() });
  const timeoutMs = opts.checkTimeoutMs ?? 2000;

  app.get('/healthz', async () => ({ status: 'ok' }));
  app.get('/readyz', async (request, reply) => {
    const results = await Promise.all(opts.checks.map(async (c) => [c.name, await runCheck(c, timeoutMs)] as const));
    const reasons = results.filter(([, r]) => r !== undefined).map(([name, r]) => `${name}: ${r}`);
    if (reasons.length === 0) return { status: 'ready', checks: results.map(([name]) => name) };
    request.log.warn({ reasons }, 'not ready');
    return reply.status(503).send({ status: 'unavailable', reasons });
  });
  app.get('/metrics', async (_request, reply) => {
    reply.type(opts.registry.contentType);
    return opts.registry.metrics();
  });

  await app.listen({ host: opts.host, port: opts.port });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : opts.port;
  const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
  return { host: opts.host, port, url: `http://${host}:${port}`, close: () => app.close() };
}

async function runCheck(c: ReadinessCheck, timeoutMs: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      Promise.resolve().then(() => c.check()),
      new Promise<string>((resolve) => {
        timer = setTimeout(() => resolve(`no answer within ${timeoutMs} ms`), timeoutMs);
      }),
    ]);
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    clearTimeout(timer);
  }
}
