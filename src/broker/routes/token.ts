/** POST /v1/token — RFC 8693 token exchange. */
import type { FastifyInstance } from 'fastify';
import { z } from 'zod';
import { BatonError } from '../../errors.ts';
import { exchangeToken, type ExchangeDeps } from '../exchange.ts';
import { TokenExchangeRequest } from '../exchange-request.ts';
import type { Metrics } from '../metrics.ts';

export interface TokenRouteDeps extends ExchangeDeps {
  metrics: Metrics;
  /** Called after a refused exchange (audit, best effort). Must not throw. */
  onRefused?: (error: BatonError) => Promise<void>;
}

export function tokenRoutes(app: FastifyInstance, deps: TokenRouteDeps): void {
  app.post('/v1/token', async (request, reply) => {
    const stop = deps.metrics.exchangeSeconds.startTimer();
    try {
      const parsed = TokenExchangeRequest.safeParse(request.body ?? {});
      if (!parsed.success) {
        throw new BatonError('BATON_ERR_INVALID_REQUEST', describeIssues(parsed.error));
      }
      const result = await exchangeToken(parsed.data, deps);
      deps.metrics.exchanges.inc({ outcome: 'granted' });
      // RFC 6749 §5.1: token responses must not be cached
      return reply.header('cache-control', 'no-store').header('pragma', 'no-cache').send(result.response);
    } catch (err) {
      const code = err instanceof BatonError ? err.code : 'BATON_ERR_SERVER';
      deps.metrics.exchanges.inc({ outcome: code });
      if (err instanceof BatonError) {
        await deps.onRefused?.(err);
        const retry = /retry-after=(\d+)/.exec(err.detail ?? '');
        if (retry) reply.header('retry-after', retry[1]);
      }
      throw err;
    } finally {
      stop();
    }
  });
}

/** One readable line naming the fields at fault (never echoing their values: they may be tokens). */
function describeIssues(error: z.ZodError): string {
  const fields = [...new Set(error.issues.map((i) => i.path.join('.') || 'body'))];
  const first = error.issues[0];
  const missing = error.issues.filter((i) => i.code === 'invalid_type' && i.input === undefined).map((i) => i.path.join('.'));
  if (missing.length) return `missing required parameter(s): ${missing.join(', ')}`;
  return `invalid parameter(s): ${fields.join(', ')}${first ? ` (${first.message})` : ''}`;
}
