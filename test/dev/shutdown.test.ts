/**
 * `baton dev` as a person runs it: a readable log (not JSON), health probes kept out of it, the
 * in-process proxy's metrics on the broker's /metrics, and Ctrl-C — the terminal signals the whole
 * foreground process group; the child runs in its own group here and gets SIGINT the same way. It
 * must stop in order — one line, exit 0, no stack trace — with its embedded PostgreSQL (the slow
 * part: generous timeouts).
 */
import { spawn } from 'node:child_process';
import net from 'node:net';
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
    // the HTTP proxy's default port taken (by us here, or by anything else): dev takes a free one and says so
    const squatter = net.createServer();
    await new Promise<void>((r) => squatter.once('error', () => r()).listen(8081, '127.0.0.1', () => r()));
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
      const httpProxy = /HTTP proxy (http:\/\/127\.0\.0\.1:(\d+))/.exec(stdout)!;
      expect(httpProxy[2]).not.toBe('8081');
      expect(stdout).toMatch(/port 8081 is in use: the HTTP proxy listens on http:\/\/127\.0\.0\.1:\d+/);
      expect((await fetch(`${httpProxy[1]}/billing/invoices`)).status).toBe(401); // serving: no token
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
      squatter.close();
    }
  }, 200_000);
});

/** A node process running `onShutdown(close)` with the given close body; resolves once it waits for signals. */
async function shutdownChild(closeBody: string) {
  const script = `
    import { onShutdown } from ${JSON.stringify(new URL('../../src/util/shutdown.ts', import.meta.url).pathname)};
    onShutdown(async () => { ${closeBody} }, { timeoutMs: 1500 });
    setInterval(() => {}, 1000);
    process.stdout.write('ready\\n');
  `;
  const child = spawn('node', ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  for (let i = 0; i < 200 && !stdout.includes('ready'); i++) await new Promise((r) => setTimeout(r, 50));
  expect(stdout).toContain('ready');
  return { child, exited, stderr: () => stderr };
}

describe('onShutdown (src/util/shutdown.ts)', () => {
  it('swallows errors stores raise while going away: one line, exit 0', async () => {
    const c = await shutdownChild(`
      setImmediate(() => { throw new Error('terminating connection due to administrator command'); });
      Promise.reject(new Error('socket hang up'));
      await new Promise((r) => setTimeout(r, 100));`);
    c.child.kill('SIGTERM');
    expect(await c.exited).toBe(0);
    expect(c.stderr()).toBe('baton: SIGTERM received, shutting down\n');
  });

  it('a failing close: one line, exit 1', async () => {
    const c = await shutdownChild(`throw new Error('pool did not close\\n   at some stack frame');`);
    c.child.kill('SIGINT');
    expect(await c.exited).toBe(1);
    expect(c.stderr()).toBe('baton: SIGINT received, shutting down\nbaton: shutdown error: pool did not close\n');
  });

  it('a second signal exits at once; a hung close times out', async () => {
    const hung = `await new Promise(() => {});`;
    const twice = await shutdownChild(hung);
    twice.child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 200));
    twice.child.kill('SIGINT');
    expect(await twice.exited).toBe(1);
    expect(twice.stderr()).toBe('baton: SIGINT received, shutting down\nbaton: SIGINT received again, exiting without finishing shutdown\n');
    const slow = await shutdownChild(hung);
    slow.child.kill('SIGTERM');
    expect(await slow.exited).toBe(1);
    expect(slow.stderr()).toBe('baton: SIGTERM received, shutting down\nbaton: shutdown did not finish within 1500 ms, exiting\n');
  });
});
