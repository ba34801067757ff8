/** `baton proxy` as its own process (bin/baton.mjs), configured against a test broker and one upstream. */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../src/util/free-port.ts';
import type { TestBroker } from './broker.ts';

export interface StandaloneProxy {
  process: ChildProcess;
  port: number;
  /** Everything the process wrote to stderr so far (its logs). */
  readonly stderr: string;
  /** The admin listener's base URL (/healthz, /readyz, /metrics), when `proxy.admin` was configured. */
  adminUrl?: string;
  /** SIGTERM (or `signal`) and wait for the exit; safe to call twice. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

/** Starts `baton proxy` without waiting: its child process, port and a live view of its stderr. */
export async function launchStandaloneProxy(
  broker: TestBroker,
  upstreams: Record<string, string>,
  proxy: Record<string, unknown> = {},
  env: Record<string, string> = {},
  /** Other top-level config sections (e.g. `credentials`). */
  top: Record<string, unknown> = {},
): Promise<{ child: ChildProcess; port: number; stderr: () => string; exited: Promise<number | null> }> {
  const port = await freePort();
  const dir = mkdtempSync(join(tmpdir(), 'baton-proxy-'));
  const config = join(dir, 'proxy.yaml');
  const ups = Object.fromEntries(Object.entries(upstreams).map(([name, url]) => [name, { url }]));
  writeFileSync(config, JSON.stringify({ ...top, proxy: { port, upstreams: ups, ...proxy } }));
  const child = spawn('node', ['bin/baton.mjs', 'proxy', '--config', config], {
    env: {
      ...process.env,
      DATABASE_URL: broker.testDb.url,
      BATON_BROKER_URL: broker.url,
      BATON_KEYSET_URL: `${broker.url}/.well-known/baton-keys.json`,
      BATON_DATA_DIR: dir,
      // the seeded dev policy's masking and approval rules (production mode requires a policy file)
      BATON_PROXY_POLICY_FILE: fileURLToPath(new URL('../../config/dev-policy.yaml', import.meta.url)),
      ...env,
    },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, port, stderr: () => stderr, exited };
}

/** Starts `baton proxy` and waits until it listens (throws with its stderr if it does not). */
export async function spawnStandaloneProxy(
  broker: TestBroker,
  upstreams: Record<string, string>,
  proxy: Record<string, unknown> = {},
  env: Record<string, string> = {},
  top: Record<string, unknown> = {},
): Promise<StandaloneProxy> {
  const { child, port, stderr, exited } = await launchStandaloneProxy(broker, upstreams, proxy, env, top);
  for (let i = 0; i < 100 && !/proxy listening/.test(stderr()) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
  if (!/proxy listening/.test(stderr())) {
    child.kill('SIGKILL');
    throw new Error(`baton proxy did not start: ${stderr()}`);
  }
  const admin = /admin on (http:\/\/\S+) /.exec(stderr())?.[1];
  return {
    process: child,
    port,
    ...(admin ? { adminUrl: admin } : {}),
    get stderr() {
      return stderr();
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
