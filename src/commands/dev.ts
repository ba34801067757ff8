/**
 * `baton dev` — zero-setup: broker + dev OIDC issuer + seeded policy + embedded stores (+ the proxy
 * and its demo upstream). Refuses NODE_ENV=production.
 */
import { loadConfig } from '../config/load.ts';
import { prettyLogStream } from '../dev/pretty-log.ts';
import { startDev } from '../dev/start.ts';
import { onShutdown } from '../util/shutdown.ts';
import { defineCommand } from './command.ts';

const USAGE = `usage: baton dev [--broker-port N] [--proxy-port N] [--http-port N] [--data-dir DIR]
  --http-port   the HTTP proxy (demo upstreams billing and tools), default 8081 (any free port when 8081 is taken)
  DEV MODE: a built-in OIDC issuer mints tokens for anyone. Never expose it.`;

export const dev = defineCommand(
  'run broker + proxy with embedded defaults and a dev OIDC issuer',
  {
    name: 'dev',
    usage: USAGE,
    options: { 'broker-port': { type: 'string' }, 'proxy-port': { type: 'string' }, 'http-port': { type: 'string' }, 'data-dir': { type: 'string' } },
  },
  async ({ values }) => {
    if (process.env.NODE_ENV === 'production') throw new Error('baton dev refuses to run with NODE_ENV=production');
    const config = loadConfig({
      overrides: {
        mode: 'dev',
        ...(values['data-dir'] ? { dataDir: values['data-dir'] } : {}),
        broker: { port: Number(values['broker-port'] ?? process.env.BATON_BROKER_PORT ?? 8080) },
        proxy: {
          port: Number(values['proxy-port'] ?? process.env.BATON_PROXY_PORT ?? 6432),
          http: { port: Number(values['http-port'] ?? process.env.BATON_PROXY_HTTP_PORT ?? 8081) },
        },
      },
    });
    // a person reads this log: one short line per entry (servers keep JSON)
    const httpPortAsked = values['http-port'] !== undefined || process.env.BATON_PROXY_HTTP_PORT !== undefined;
    const running = await startDev(config, { logStream: prettyLogStream(), httpPortFallback: !httpPortAsked });
    process.stdout.write(running.banner);
    onShutdown(() => running.close());
    return -1;
  },
);
