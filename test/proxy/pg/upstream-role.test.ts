/**
 * The second lock (DESIGN rule 8): the proxy's upstream login holds only what it fronts. `baton dev`'s
 * demo role cannot read server files, import large objects, run programs or signal backends even
 * when a statement reaches the upstream directly; `baton proxy` refuses a superuser upstream unless
 * `proxy.allowSuperuserUpstream` is set.
 */
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { demoProxyRole, dropDemoUpstream, ensureDemoUpstream } from '../../../src/dev/demo-upstream.ts';
import { upstreamFromUrl, upstreamRoleProblems } from '../../../src/proxy/pg/upstreams.ts';
import { startTestBroker, type TestBroker } from '../../helpers/broker.ts';
import { TEST_DATABASE_URL } from '../../helpers/database.ts';
import { launchStandaloneProxy } from '../../helpers/standalone-proxy.ts';

const admin = new URL(TEST_DATABASE_URL);
admin.pathname = '/postgres';
const database = `baton_t_role_appdb_${randomBytes(3).toString('hex')}`;
let proxyUrl: string;
let superUrl: string;

beforeAll(async () => {
  proxyUrl = await ensureDemoUpstream(admin.toString(), database);
  const u = new URL(admin);
  u.pathname = `/${database}`;
  superUrl = u.toString();
});

afterAll(async () => {
  await dropDemoUpstream(admin.toString(), database);
});

async function asProxyRole<T>(f: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: proxyUrl });
  c.on('error', () => {});
  await c.connect();
  try {
    return await f(c);
  } finally {
    await c.end().catch(() => {});
  }
}

const sqlstate = (p: Promise<unknown>): Promise<string | undefined> => p.then(() => undefined, (e: { code?: string }) => e.code ?? 'no code');

describe("baton dev's upstream role", () => {
  it('logs in as a dedicated role that is not a superuser and holds no dangerous privilege', async () => {
    expect(new URL(proxyUrl).username).toBe(demoProxyRole(database));
    expect(await upstreamRoleProblems(upstreamFromUrl(proxyUrl))).toEqual([]);
    // the check itself does see a superuser
    expect(await upstreamRoleProblems(upstreamFromUrl(superUrl))).toContain('is a superuser (rolsuper)');
  });

  it('can use the demo tables and their sequences, nothing more', async () => {
    await asProxyRole(async (c) => {
      expect((await c.query('SELECT count(*)::int AS n FROM orders')).rows[0].n).toBe(300);
      await c.query('BEGIN');
      await c.query("INSERT INTO audit_notes (note) VALUES ('role test')");
      await c.query('UPDATE orders SET amount_cents = amount_cents WHERE id = 1');
      await c.query('DELETE FROM audit_notes WHERE note = $1', ['role test']);
      await c.query('ROLLBACK');
      expect(await sqlstate(c.query('CREATE TABLE evil (x int)'))).toBe('42501');
      expect(await sqlstate(c.query('CREATE TEMP TABLE evil (x int)'))).toBe('42501');
      expect(await sqlstate(c.query('CREATE SCHEMA evil'))).toBe('42501');
      expect(await sqlstate(c.query('DROP TABLE orders'))).toBe('42501');
      expect(await sqlstate(c.query('ALTER TABLE orders ADD COLUMN x int'))).toBe('42501');
      expect(await sqlstate(c.query(`ALTER DATABASE ${database} SET standard_conforming_strings = off`))).toBe('42501');
      expect(await sqlstate(c.query('SELECT * FROM pg_authid'))).toBe('42501');
    });
  });

  it('cannot read server files, import or create large objects, run programs or signal backends', async () => {
    const other = new pg.Client({ connectionString: superUrl });
    await other.connect();
    try {
      const pid = (await other.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number;
      await asProxyRole(async (c) => {
        expect(await sqlstate(c.query("SELECT pg_read_file('/etc/passwd')"))).toBe('42501');
        expect(await sqlstate(c.query("SELECT pg_read_binary_file('/etc/passwd')"))).toBe('42501');
        expect(await sqlstate(c.query("SELECT pg_ls_dir('.')"))).toBe('42501');
        expect(await sqlstate(c.query("SELECT lo_import('/etc/passwd')"))).toBe('42501');
        expect(await sqlstate(c.query('SELECT lo_create(0)'))).toBe('42501');
        expect(await sqlstate(c.query("SELECT lo_from_bytea(0, 'x')"))).toBe('42501');
        expect(await sqlstate(c.query("COPY orders TO PROGRAM 'cat > /tmp/baton-owned'"))).toBe('42501');
        expect(await sqlstate(c.query("COPY orders FROM '/etc/passwd'"))).toBe('42501');
        expect(await sqlstate(c.query('SELECT pg_terminate_backend($1)', [pid]))).toBe('42501');
        expect(await sqlstate(c.query('SELECT pg_cancel_backend($1)', [pid]))).toBe('42501');
        // not even another session of its own role (other proxied sessions log in as it)
        const own = await asProxyRole(async (d) => (await d.query('SELECT pg_backend_pid() AS pid')).rows[0].pid as number);
        expect(await sqlstate(c.query('SELECT pg_terminate_backend($1)', [own]))).toBe('42501');
        expect(await sqlstate(c.query('SET ROLE postgres'))).toBe('42501');
        expect(await sqlstate(c.query("SELECT set_config('session_authorization', 'postgres', false)"))).toBe('42501');
      });
      expect((await other.query('SELECT 1 AS x')).rows[0].x).toBe(1); // still alive
    } finally {
      await other.end();
    }
  });
});

describe('baton proxy start-up check', () => {
  let broker: TestBroker;
  beforeAll(async () => {
    broker = await startTestBroker('proxyrole');
  });
  afterAll(async () => {
    await broker?.stop();
  });

  /** Runs `baton proxy` until it listens (then stops it) or exits; returns its stderr. */
  async function runProxy(extra: Record<string, unknown>, url = superUrl): Promise<{ listening: boolean; code: number | null; stderr: string }> {
    const { child, stderr, exited } = await launchStandaloneProxy(broker, { appdb: url }, extra);
    const poll = setInterval(() => {
      if (/proxy listening/.test(stderr())) child.kill('SIGTERM');
    }, 50);
    const timer = setTimeout(() => child.kill('SIGTERM'), 15_000);
    const code = await exited;
    clearInterval(poll);
    clearTimeout(timer);
    return { listening: /proxy listening/.test(stderr()), code, stderr: stderr() };
  }

  it('refuses a superuser upstream login, saying why and what to do', async () => {
    const r = await runProxy({});
    expect(r.code).not.toBe(0);
    expect(r.stderr).toMatch(/refusing to start: upstream appdb logs in as postgres, which is a superuser \(rolsuper\)/);
    expect(r.stderr).toContain('proxy.allowSuperuserUpstream: true');
  }, 30_000);

  it('starts with proxy.allowSuperuserUpstream: true (with a warning)', async () => {
    const r = await runProxy({ allowSuperuserUpstream: true });
    expect(r.stderr).toMatch(/warning: upstream appdb logs in as postgres, which is a superuser .* accepted because proxy\.allowSuperuserUpstream is true/);
    expect(r.listening).toBe(true);
  }, 30_000);

  it('starts without warnings when the upstream login is least-privileged', async () => {
    const r = await runProxy({}, proxyUrl);
    expect(r.listening).toBe(true);
    expect(r.stderr).not.toContain('warning');
  }, 30_000);
});
