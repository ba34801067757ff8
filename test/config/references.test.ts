/** Config values from the environment (`${VAR}`) and from files (`*_FILE`), resolved before validation. */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config/load.ts';
import { upstreamMap } from '../../src/proxy/pg/upstreams.ts';

const dir = mkdtempSync(join(tmpdir(), 'baton-config-refs-'));
let n = 0;
const file = (text: string, name = `f${n++}`) => {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
};
const SECRET = 'p@ss:w/rd%"sécret';
const errorOf = (f: () => unknown): string => {
  try {
    f();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
};

describe('configuration references', () => {
  it('replaces ${VAR} in string values of the file with the environment', () => {
    const path = file('mode: dev\nredisUrl: "redis://${REDIS_HOST}:6379"\nproxy:\n  upstreams:\n    appdb: { url: "postgres://proxy:${APPDB_PW}@db:5432/app" }\n');
    const c = loadConfig({ file: path, env: { REDIS_HOST: 'cache', APPDB_PW: 'hunter2' } });
    expect(c.redisUrl).toBe('redis://cache:6379');
    expect(c.proxy.upstreams.appdb!.url).toBe('postgres://proxy:hunter2@db:5432/app');
  });

  it('keeps $${…} as a literal ${…} and leaves other dollars alone', () => {
    const c = loadConfig({ file: file('mode: dev\ndataDir: "/data/$${HOME}/$x/$$y"\n'), env: {} });
    expect(c.dataDir).toBe('/data/${HOME}/$x/$$y');
  });

  it('names an unset variable, the key that references it, and never the other values', () => {
    const msg = errorOf(() => loadConfig({ file: file(`mode: dev\nproxy:\n  upstreams:\n    appdb: { url: "postgres://proxy:\${APPDB_PW}@db/app" }\ndatabaseUrl: "postgres://x:${encodeURIComponent(SECRET)}@y/z"\n`), env: {} }));
    expect(msg).toContain('proxy.upstreams.appdb.url');
    expect(msg).toContain('APPDB_PW');
    expect(msg).toMatch(/not set/);
    expect(msg).not.toContain(encodeURIComponent(SECRET));
    expect(errorOf(() => loadConfig({ file: file('mode: dev\ndataDir: "${not a name}"\n'), env: {} }))).toMatch(/dataDir.*not a valid environment variable name/);
    expect(errorOf(() => loadConfig({ file: file('mode: dev\ndataDir: "x${OPEN"\n'), env: { OPEN: 'y' } }))).toMatch(/dataDir: unterminated/);
  });

  it('reads key_FILE from a file (one trailing newline dropped) and an upstream password into its url', () => {
    const secret = file(`${SECRET}\n`);
    const url = file('postgres://baton@db:5432/appdb\n');
    const path = file(`mode: dev\nproxy:\n  upstreams:\n    appdb: { url: "postgres://proxy@db:5432/app", password_FILE: "${secret}" }\n    other: { url_FILE: "${url}" }\n`);
    const c = loadConfig({ file: path, env: {} });
    expect(c.proxy.upstreams.other!.url).toBe('postgres://baton@db:5432/appdb');
    expect(c.proxy.upstreams.appdb).toEqual({ url: expect.stringMatching(/^postgres:\/\/proxy:[^@]+@db:5432\/app$/) });
    // what the proxy connects with: the password exactly, special characters and all
    expect(upstreamMap(c.proxy.upstreams).get('appdb')).toMatchObject({ user: 'proxy', password: SECRET, host: 'db', port: 5432, database: 'app' });
  });

  it('interpolates a _FILE path, refuses both forms, and names an unreadable file without its content', () => {
    const secret = file('hunter2', 'pw');
    const c = loadConfig({ file: file('mode: dev\nproxy:\n  upstreams:\n    appdb: { url: "postgres://proxy@db/app", password_FILE: "${SECRETS}/pw" }\n'), env: { SECRETS: dir } });
    expect(upstreamMap(c.proxy.upstreams).get('appdb')!.password).toBe('hunter2');
    expect(errorOf(() => loadConfig({ file: file(`mode: dev\nproxy:\n  upstreams:\n    appdb: { url: "postgres://p@db/app", password: "x", password_FILE: "${secret}" }\n`), env: {} }))).toMatch(
      /proxy\.upstreams\.appdb\.password is set twice.*password_FILE/,
    );
    const missing = errorOf(() => loadConfig({ file: file('mode: dev\nproxy:\n  upstreams:\n    appdb: { url: "postgres://p@db/app", password_FILE: "/nonexistent/secret" }\n'), env: {} }));
    expect(missing).toContain('proxy.upstreams.appdb.password_FILE');
    expect(missing).toContain('/nonexistent/secret');
    expect(missing).toContain('ENOENT');
    expect(errorOf(() => loadConfig({ file: file('mode: dev\nproxy:\n  upstreams:\n    appdb: { url: "postgres://p:a@db/app", password: "b" }\n'), env: {} }))).toMatch(/url has a password and password is set too/);
    // an unknown key stays an error (the schema is closed): a typo'd _FILE key is caught
    expect(errorOf(() => loadConfig({ file: file(`mode: dev\nproxy:\n  upstreams:\n    appdb: { url: "postgres://p@db/app", pasword_FILE: "${secret}" }\n`), env: {} }))).toMatch(/pasword/);
  });

  it('reads environment variables from NAME_FILE, refuses both, names the variable', () => {
    const db = file('postgres://audit:s3cret@db/baton\n');
    const c = loadConfig({ env: { DATABASE_URL_FILE: db }, overrides: { mode: 'dev' } });
    expect(c.databaseUrl).toBe('postgres://audit:s3cret@db/baton');
    expect(errorOf(() => loadConfig({ env: { DATABASE_URL_FILE: db, DATABASE_URL: 'postgres://x' }, overrides: { mode: 'dev' } }))).toMatch(/both DATABASE_URL and DATABASE_URL_FILE/);
    const msg = errorOf(() => loadConfig({ env: { REDIS_URL_FILE: '/nonexistent/redis' }, overrides: { mode: 'dev' } }));
    expect(msg).toMatch(/environment variable REDIS_URL_FILE: cannot read \/nonexistent\/redis \(ENOENT\)/);
  });

  it('configures the admin listener from the file or the environment; off by default', () => {
    expect(loadConfig({ env: {}, overrides: { mode: 'dev' } }).proxy.admin).toBeUndefined();
    expect(loadConfig({ env: { BATON_PROXY_ADMIN_PORT: '9464' }, overrides: { mode: 'dev' } }).proxy.admin).toEqual({ host: '127.0.0.1', port: 9464 });
    expect(loadConfig({ file: file('mode: dev\nproxy:\n  admin: { host: 0.0.0.0, port: 0 }\n'), env: {} }).proxy.admin).toEqual({ host: '0.0.0.0', port: 0 });
    expect(errorOf(() => loadConfig({ file: file('mode: dev\nproxy:\n  admin: { host: 0.0.0.0 }\n'), env: {} }))).toMatch(/proxy\.admin\.port/);
  });
});
