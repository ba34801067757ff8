/** Prometheus metrics of the broker (and, in one process, the proxy). */
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: 'baton_' });
  return {
    registry,
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
  };
}
export type Metrics = ReturnType<typeof createMetrics>;
