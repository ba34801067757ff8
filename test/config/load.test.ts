import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { assertModeFitsEnvironment, loadConfig } from '../../src/config/load.ts';

const run = promisify(execFile);

const file = (text: string) => {
  const path = join(mkdtempSync(join(tmpdir(), 'baton-config-')), 'baton.yaml');
  writeFileSync(path, text);
  return path;
};

describe('configuration', () => {
  it('applies defaults in dev mode and freezes the result', () => {
    const c = loadConfig({ env: {}, overrides: { mode: 'dev' } });
    expect(c.broker).toMatchObject({ host: '127.0.0.1', port: 8080 });
    expect(c.proxy).toMatchObject({ port: 6432, revocationStalenessSeconds: 5, allowInsecure: false });
    expect(Object.isFrozen(c.proxy)).toBe(true);
  });

  it('reads a YAML file, then the environment, which wins', () => {
    const path = file('mode: dev\nbroker:\n  port: 9000\nproxy:\n  upstreams:\n    appdb: { url: "postgres://proxy:pw@db:5432/app" }\n');
    const c = loadConfig({ file: path, env: { BATON_BROKER_PORT: '9100', DATABASE_URL: 'postgres://x@y/z', REDIS_URL: 'redis://r:6379' } });
    expect(c.broker.port).toBe(9100);
    expect(c.databaseUrl).toBe('postgres://x@y/z');
    expect(c.redisUrl).toBe('redis://r:6379');
    expect(c.proxy.upstreams.appdb!.url).toBe('postgres://proxy:pw@db:5432/app');
  });

  it('refuses unknown keys and bad values with the path at fault', () => {
    expect(() => loadConfig({ env: {}, overrides: { mode: 'dev', brokr: {} } as never })).toThrow(/brokr/);
    expect(() => loadConfig({ file: file('mode: dev\nproxy:\n  port: 99999\n'), env: {} })).toThrow(/proxy\.port/);
    expect(() => loadConfig({ file: file('mode: dev\nproxy:\n  upstreams:\n    appdb: { url: "mysql://x" }\n'), env: {} })).toThrow(/postgres:\/\//);
    expect(() => loadConfig({ file: file('oidc:\n  issuers:\n    - { issuer: "https://idp", audiences: [a], algorithms: [HS256] }\n'), env: {} })).toThrow(/HS256/);
    expect(() => loadConfig({ file: '/nonexistent/baton.yaml', env: {} })).toThrow(/cannot read config file/);
  });

  it('refuses to start in production without the settings production needs', () => {
    expect(() => loadConfig({ env: {} })).toThrow(/refusing to start in production mode[\s\S]*DATABASE_URL[\s\S]*policyFile[\s\S]*oidc\.issuers/);
    expect(() => loadConfig({ env: { DATABASE_URL: 'postgres://x@y/z' }, role: 'proxy' })).toThrow(/brokerUrl[\s\S]*keySetUrl[\s\S]*upstreams/);
    expect(() =>
      loadConfig({
        env: { DATABASE_URL: 'postgres://x@y/z', BATON_POLICY_FILE: 'p.yaml' },
        overrides: { oidc: { issuers: [{ issuer: 'https://idp.example.com', audiences: ['baton'] }] }, proxy: { allowInsecure: true } },
      }),
    ).toThrow(/allowInsecure is not allowed in production/);
    const ok = loadConfig({
      env: { DATABASE_URL: 'postgres://x@y/z', BATON_POLICY_FILE: 'p.yaml' },
      overrides: { oidc: { issuers: [{ issuer: 'https://idp.example.com', audiences: ['baton'] }] } },
    });
    expect(ok.mode).toBe('production');
  });

  it('refuses dev mode when NODE_ENV=production, saying which settings clash', () => {
    const message = /mode: dev but NODE_ENV=production/;
    expect(() => assertModeFitsEnvironment(loadConfig({ env: {}, overrides: { mode: 'dev' } }), { NODE_ENV: 'production' })).toThrow(message);
    expect(() => assertModeFitsEnvironment({ mode: 'dev' }, { NODE_ENV: 'development' })).not.toThrow();
    expect(() => assertModeFitsEnvironment({ mode: 'dev' }, {})).not.toThrow();
    expect(() => assertModeFitsEnvironment({ mode: 'production' }, { NODE_ENV: 'production' })).not.toThrow();
  });
});

describe('baton serve', () => {
  it('refuses a dev-mode configuration under NODE_ENV=production before starting anything', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'baton-serve-'));
    const config = file(`mode: dev\ndataDir: ${JSON.stringify(join(dataDir, 'data'))}\nbroker:\n  port: 0\n`);
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production' };
    for (const name of ['DATABASE_URL', 'REDIS_URL', 'BATON_CONFIG', 'BATON_DATA_DIR']) delete env[name];
    // without the refusal the broker would start (and keep running until the timeout kills it)
    const result = await run('node', ['bin/baton.mjs', 'serve', '--config', config], { env, timeout: 15_000 }).then(
      (r) => ({ code: 0, stderr: r.stderr }),
      (e: { code: number | null; stderr: string }) => ({ code: e.code, stderr: e.stderr }),
    );
    try {
      expect(result.code).toBe(1);
      expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^baton: refusing to start: the configuration says mode: dev but NODE_ENV=production/)]);
      expect(existsSync(join(dataDir, 'data'))).toBe(false); // nothing was created
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  }, 20_000);
});

