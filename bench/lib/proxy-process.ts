/**
 * `baton proxy` (bin/baton.mjs) as its own process, configured the way an operator would: a config
 * file with the upstreams, the broker's URL and key set from the environment, audit into the broker's
 * database, revocations by Redis fan-out + HTTP resync. Resolves once it prints its listening line.
 */
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './child.ts';

export interface ProxyProcessOptions {
  brokerUrl: string;
  /** The broker's (migrated) database: the proxy appends its audit entries there. */
  databaseUrl: string;
  redisUrl: string;
  /** Upstream name → PostgreSQL URL. */
  upstreams: Record<string, string>;
  /** Where the config file goes (and the proxy's data dir). */
  dir: string;
}

export interface ProxyProcess {
  port: number;
  /** What the proxy reported as its revocation transport (`redis` or `memory`). */
  revocations: string;
  /** Everything it wrote on stderr so far (for error messages). */
  stderr(): string;
  stop(): Promise<void>;
}

const READY = /proxy listening on [^\s]+:(\d+) \(audit: [^,]+, revocations: (\w+)\)/;

export function startProxyProcess(opts: ProxyProcessOptions, timeoutMs = 15_000): Promise<ProxyProcess> {
  const config = join(opts.dir, 'proxy.yaml');
  const upstreams = Object.fromEntries(Object.entries(opts.upstreams).map(([name, url]) => [name, { url }]));
  writeFileSync(config, JSON.stringify({ proxy: { host: '127.0.0.1', port: 0, upstreams } }));
  const child = spawn(process.execPath, ['bin/baton.mjs', 'proxy', '--config', config], {
    cwd: REPO_ROOT,
    env: {
      ...process.env,
      DATABASE_URL: opts.databaseUrl,
      REDIS_URL: opts.redisUrl,
      BATON_BROKER_URL: opts.brokerUrl,
      BATON_KEYSET_URL: `${opts.brokerUrl}/.well-known/baton-keys.json`,
      BATON_DATA_DIR: opts.dir,
      BATON_LOG_LEVEL: 'warn',
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`baton proxy not listening after ${timeoutMs} ms: ${stderr.slice(0, 2000)}`));
    }, timeoutMs);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`baton proxy exited before listening (code ${code}, signal ${signal}): ${stderr.slice(0, 2000)}`));
    });
    // keep reading after ready so the child never blocks on a full pipe
    child.stderr!.on('data', (chunk: Buffer) => {
      const before = stderr;
      stderr += chunk.toString('utf8');
      const m = READY.exec(stderr);
      if (!m || READY.test(before)) return;
      clearTimeout(timer);
      resolve({
        port: Number(m[1]),
        revocations: m[2]!,
        stderr: () => stderr,
        async stop() {
          if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
          await exited;
        },
      });
    });
  });
}
