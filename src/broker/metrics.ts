/**
 * Prometheus metrics of every Baton process — the broker, the standalone proxy (`baton proxy`) and
 * both in one process (`baton dev`). One definition per metric, here; each process creates its own
 * registry and feeds what it has.
 *
 * Names: the standard process and Node.js metrics under their standard names (`process_cpu_seconds_total`,
 * `nodejs_heap_size_used_bytes`, …), Baton's own prefixed `baton_`. Labels are small closed sets
 * (never a resource, subject or SQL text).
 */
import { LogController, type FastifyReply, type FastifyRequest } from 'fastify';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What the gauges read when scraped; a process sets the ones it has. */
export interface MetricSources {
  /** Client sessions past authentication. */
  sessions?: () => number;
  /** Audit entries queued or in flight, per chain kind. */
  auditQueue?: () => { events: number; outcomes: number };
  /** Seconds since the last successful revocation sync started. */
  revocationStaleness?: () => number | undefined;
  /** Seconds since the broker key set was last fetched (or confirmed unchanged). */
  keySetAge?: () => number | undefined;
  /** Pooled upstream connections (proxy.pooling: transaction). */
  upstreamPool?: () => { open: number; idle: number; waiting: number } | undefined;
}

/** `reason` label values of denied statements (a closed set: the reason text names resources). */
export const DENY_REASONS = ['permission', 'statement_refused', 'revoked', 'expired', 'key_retired', 'audit_unavailable', 'other'] as const;
export type DenyReason = (typeof DENY_REASONS)[number];

/** The reason class of a denial's audit reason text (baton-gate's wording). */
export function denyReason(reason: string | undefined): DenyReason {
  if (!reason) return 'other';
  if (reason.startsWith('permission denied')) return 'permission';
  if (reason.startsWith('statement refused')) return 'statement_refused';
  if (reason.includes('has been revoked')) return 'revoked';
  if (reason.includes('has expired')) return 'expired';
  if (reason.includes('has been retired')) return 'key_retired';
  return 'other';
}

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const sources: MetricSources = {};
  const read = (g: Gauge, value: number | undefined) => {
    g.reset();
    if (value !== undefined && Number.isFinite(value)) g.set(value);
  };
  return {
    registry,
    /** Set by the process: what the gauges below read at scrape time. */
    sources,
    exchanges: new Counter({
      name: 'baton_token_exchanges_total',
      help: 'Token exchanges by outcome (granted or the error code)',
      labelNames: ['outcome'],
      registers: [registry],
    }),
    exchangeSeconds: new Histogram({
      name: 'baton_token_exchange_seconds',
      help: 'Time to answer a token exchange',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5],
      registers: [registry],
    }),
    statements: new Counter({
      name: 'baton_proxy_statements_total',
      help: 'Statements decided by the proxy: decision allowed|denied; reason (denied only) permission, statement_refused, revoked, expired, key_retired, audit_unavailable or other',
      labelNames: ['decision', 'reason'],
      registers: [registry],
    }),
    sessions: new Gauge({
      name: 'baton_proxy_sessions',
      help: 'Client sessions past authentication',
      registers: [registry],
      collect() {
        read(this, sources.sessions?.());
      },
    }),
    upstreamConnections: new Gauge({
      name: 'baton_proxy_upstream_connections',
      help: 'Pooled upstream connections (proxy.pooling: transaction) by state: in_use or idle',
      labelNames: ['state'],
      registers: [registry],
      collect() {
        this.reset();
        const p = sources.upstreamPool?.();
        if (p) {
          this.set({ state: 'in_use' }, p.open - p.idle);
          this.set({ state: 'idle' }, p.idle);
        }
      },
    }),
    poolWaiting: new Gauge({
      name: 'baton_proxy_pool_waiting_sessions',
      help: 'Sessions waiting for a pooled upstream connection (proxy.pooling: transaction)',
      registers: [registry],
      collect() {
        read(this, sources.upstreamPool?.()?.waiting);
      },
    }),
    upstreamSeconds: new Histogram({
      name: 'baton_proxy_upstream_seconds',
      help: "Allowed statements: from the proxy's check to the upstream's answer",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10, 30],
      registers: [registry],
    }),
    auditQueue: new Gauge({
      name: 'baton_audit_queue_depth',
      help: 'Audit entries queued or in flight, by chain (events gate statements; outcomes gate nothing)',
      labelNames: ['chain'],
      registers: [registry],
      collect() {
        this.reset();
        const q = sources.auditQueue?.();
        if (q) {
          this.set({ chain: 'events' }, q.events);
          this.set({ chain: 'outcomes' }, q.outcomes);
        }
      },
    }),
    auditCommitSeconds: new Histogram({
      name: 'baton_audit_commit_seconds',
      help: 'Time for one audit entry to become durable (append to COMMIT flushed)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5],
      registers: [registry],
    }),
    revocationStaleness: new Gauge({
      name: 'baton_revocation_staleness_seconds',
      help: 'Seconds since the last successful revocation sync started (the proxy fails closed past proxy.revocationStalenessSeconds)',
      registers: [registry],
      collect() {
        read(this, sources.revocationStaleness?.());
      },
    }),
    keySetAge: new Gauge({
      name: 'baton_keyset_age_seconds',
      help: "Seconds since the broker's key set was last fetched or confirmed unchanged",
      registers: [registry],
      collect() {
        read(this, sources.keySetAge?.());
      },
    }),
  };
}
export type Metrics = ReturnType<typeof createMetrics>;

/** Liveness, readiness and metrics: requests to these are logged at debug, not info (probes every few seconds). */
export const HEALTH_ROUTES: ReadonlySet<string> = new Set(['/healthz', '/readyz', '/metrics']);

const isHealthRoute = (request: FastifyRequest) => HEALTH_ROUTES.has((request.url ?? '').split('?')[0]!);

/**
 * Fastify's request logs, with health routes at debug instead of info (errors stay errors).
 *
 * @example
 * const app = Fastify({ logger, logController: new HealthRouteLogController() });
 */
export class HealthRouteLogController extends LogController {
  override incomingRequest(request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (!isHealthRoute(request)) return super.incomingRequest(request, reply, metadata);
    if (!this.isLogDisabled(request)) request.log.debug({ req: request }, 'incoming request');
  }

  override requestCompleted(error: Error | null | undefined, request: FastifyRequest, reply: FastifyReply, metadata?: Record<string, unknown>): void {
    if (error || !isHealthRoute(request)) return super.requestCompleted(error, request, reply, metadata);
    if (!this.isLogDisabled(request)) reply.log.debug({ res: reply, responseTime: reply.elapsedTime }, 'request completed');
  }
}
