/**
 * `baton dev` as a person runs it: a readable log (not JSON), health probes kept out of it, the
 * in-process proxy's metrics on the broker's /metrics, and Ctrl-C — the terminal signals the whole
 * foreground process group; the child runs in its own group here and gets SIGINT the same way. It
 * must stop in order — one line, exit 0, no stack trace — with its embedded PostgreSQL (the slow
 * part: generous timeouts).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const dataDir = mkdtempSync(join(tmpdir(), 'baton-dev-sigint-'));
afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

describe('baton dev shutdown', () => {
  it('logs readably, serves metrics, and stops on SIGINT to its process group with one line and exit 0', async () => {
    const env: NodeJS.ProcessEnv = { ...process.env, BATON_LOG_LEVEL: 'info' };
    for (const name of ['DATABASE_URL', 'REDIS_URL', 'BATON_CONFIG', 'NODE_ENV']) delete env[name]; // zero-setup: embedded stores
    const child = spawn('node', ['bin/baton.mjs', 'dev', '--broker-port', '0', '--proxy-port', '0', '--data-dir', dataDir], {
      env,
      detached: true, // its own process group, like a shell's foreground job
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => child.once('exit', (code, signal) => r({ code, signal })));
    try {
      const t0 = Date.now();
      while (!/DEV MODE/.test(stdout) && child.exitCode === null && Date.now() - t0 < 150_000) await new Promise((r) => setTimeout(r, 200));
      expect(stdout, stderr).toMatch(/DEV MODE/);
      expect(stdout).toMatch(/^\d\d:\d\d:\d\d INFO  Server listening at http:\/\/127\.0\.0\.1:\d+/m);
      expect(stdout).not.toMatch(/^\{"level"/m);
      const broker = /broker\s+(http:\/\/\S+)/.exec(stdout)![1]!;
      expect((await fetch(`${broker}/healthz`)).status).toBe(200);
      const metrics = await (await fetch(`${broker}/metrics`)).text();
      expect(metrics).toMatch(/^process_cpu_seconds_total /m);
      expect(metrics).toMatch(/^baton_proxy_sessions 0$/m);
      expect(metrics).toMatch(/^baton_audit_queue_depth\{chain="events"\} 0$/m);
      await fetch(`${broker}/nope`);
      await new Promise((r) => setTimeout(r, 300));
      expect(stdout).toMatch(/INFO  request completed .*status=404/);
      expect(stdout).not.toMatch(/healthz|metrics/); // probes are logged at debug
      const before = stderr;
      process.kill(-child.pid!, 'SIGINT');
      const { code, signal } = await exited;
      const said = stderr.slice(before.length);
      expect({ code, signal, said }).toEqual({ code: 0, signal: null, said: 'baton: SIGINT received, shutting down\n' });
    } finally {
      if (child.exitCode === null && child.signalCode === null) process.kill(-child.pid!, 'SIGKILL');
    }
  }, 200_000);
});
