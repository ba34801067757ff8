/**
 * The compiled CLI (issue #11): `npm run build` writes dist/, and bin/baton.mjs runs dist/cli.js with
 * no TypeScript loader. --help lists the command table, an unknown command exits 2, and attenuate /
 * inspect work from the compiled output (biscuit-wasm and protobufjs found from dist/).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/commands/index.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { mintToken } from '../../src/token/mint.ts';

const exec = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
// BATON_CLI_FROM=dist: the compiled output even when a source file is newer than the build
const env = { ...process.env, BATON_CLI_FROM: 'dist', XDG_CONFIG_HOME: '/nonexistent-baton-test' };

const baton = (args: string[], extra: Record<string, string> = {}) =>
  exec(process.execPath, ['bin/baton.mjs', ...args], { cwd: root, env: { ...env, ...extra }, timeout: 30_000 }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );

// dist/ is built once by the suite's global set-up (test/global-setup.ts): rebuilding it here would
// swap it under the CLI processes other test files are running.

describe('compiled CLI', () => {
  it('dist/ mirrors src/ as plain JavaScript: relative imports end in .js, nothing refers to tsx', () => {
    const cli = readFileSync(`${root}dist/cli.js`, 'utf8');
    expect(cli).toMatch(/from "\.\/commands\/index\.js"/);
    const index = readFileSync(`${root}dist/commands/index.js`, 'utf8');
    expect(index).toMatch(/import\("\.\/attenuate\.js"\)/);
    expect(index).not.toMatch(/\.ts["']/);
    expect(existsSync(`${root}dist/store/migrate.js`)).toBe(true);
  });

  it('the vendored protobufjs bundle is the same library, with its optional Long support', async () => {
    const vendored = ((await import(`${root}dist/vendor/protobufjs.js`)) as { default: typeof import('protobufjs') }).default;
    const original = ((await import('protobufjs')) as { default: typeof import('protobufjs') }).default;
    expect(Boolean(vendored.util.Long)).toBe(Boolean(original.util.Long));
    expect(readFileSync(`${root}dist/token/wire/schema.js`, 'utf8')).toMatch(/from "\.\.\/\.\.\/vendor\/protobufjs\.js"/);
    const proto = 'syntax = "proto2"; message M { optional int64 big = 1; optional string s = 2; }';
    const bytes = original.parse(proto).root.lookupType('M').encode({ big: '9007199254740993', s: 'é' }).finish();
    const decode = (p: typeof original) => p.parse(proto).root.lookupType('M').toObject(p.parse(proto).root.lookupType('M').decode(bytes), { longs: String });
    expect(decode(vendored)).toEqual(decode(original));
    expect(decode(vendored)).toEqual({ big: '9007199254740993', s: 'é' });
  });

  it('--help lists every command and exits 0; no arguments exits 2; an unknown command exits 2', async () => {
    const help = await baton(['--help']);
    expect(help.code).toBe(0);
    for (const [name, entry] of Object.entries(COMMANDS)) {
      expect(help.stdout).toContain(`  ${name.padEnd(12)} ${entry.summary}`);
    }
    expect((await baton([])).code).toBe(2);
    const unknown = await baton(['frobnicate']);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    expect((await baton(['constructor'])).code).toBe(2); // not an Object.prototype key
  });

  it('--help imports only the dispatcher and the command table, from dist/ (no command module, no package)', async () => {
    // a module.register() hook that records every module Node loads (appendFileSync: the hooks run on
    // their own thread, whose stderr writes may be lost when the process exits)
    const dir = mkdtempSync(join(tmpdir(), 'baton-cli-hook-'));
    const log = join(dir, 'loaded.txt');
    try {
      writeFileSync(log, '');
      writeFileSync(
        join(dir, 'hook.mjs'),
        `import { appendFileSync } from 'node:fs';\nexport async function load(url, context, next) { if (!url.startsWith('node:')) appendFileSync(${JSON.stringify(log)}, url + '\\n'); return next(url, context); }\n`,
      );
      writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hook.mjs')).href)});\n`);
      const { stdout } = await exec(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, 'bin/baton.mjs', '--help'], { cwd: root, env, timeout: 30_000 });
      expect(stdout).toContain('usage: baton');
      const loaded = readFileSync(log, 'utf8').split('\n').filter(Boolean).map((u) => u.replace(pathToFileURL(root).href, ''));
      expect(loaded.sort()).toEqual(['bin/baton.mjs', 'dist/cli.js', 'dist/commands/index.js', 'dist/commands/terminal-text.js']);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('attenuate and inspect run from dist/ (wasm and protobuf loaded from node_modules)', async () => {
    const keyring = Keyring.ephemeral();
    const { token } = mintToken(
      { subject: 'alice@example.com', issuer: 'https://idp.example.com', agent: 'planner', rights: [{ resource: 'pg:appdb/public.*', operation: 'read' }], expiresAt: new Date(Date.now() + 3600_000) },
      keyring.signingKey(),
    );
    const child = await baton(['attenuate', '--to', 'helper-7', '--resource', 'pg:appdb/public.orders', '--op', 'read', '--ttl', '5m'], { BATON_TOKEN: token });
    expect(child.stderr).toBe('');
    expect(child.code).toBe(0);
    const seen = await baton(['inspect', '--json'], { BATON_TOKEN: child.stdout.trim() });
    expect(seen.code).toBe(0);
    expect(JSON.parse(seen.stdout)).toMatchObject({ lineage: [{ subject: 'alice@example.com' }, { delegatedTo: 'helper-7' }] });
  });
});

describe('the packed @batonhq/baton tarball', () => {
  let scratch: string;
  beforeAll(async () => {
    scratch = mkdtempSync(join(tmpdir(), 'baton-cli-consumer-'));
    const { stdout } = await exec('npm', ['pack', '--pack-destination', scratch, '--ignore-scripts', '--loglevel=error'], { cwd: root, timeout: 120_000 });
    const tarball = stdout.trim().split('\n').at(-1)!;
    writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
    await exec('npm', ['install', '--prefer-offline', '--omit=dev', '--no-audit', '--no-fund', '--loglevel=error', `./${tarball}`], { cwd: scratch, timeout: 240_000 });
  }, 300_000);

  it('installs into a scratch project whose `baton` runs compiled code with no dev dependency', async () => {
    const installed = join(scratch, 'node_modules', '@batonhq', 'baton');
    expect(existsSync(join(installed, 'src'))).toBe(false); // dist only: bin/baton.mjs cannot fall back to tsx
    expect(existsSync(join(scratch, 'node_modules', 'tsx'))).toBe(false);
    const bin = join(scratch, 'node_modules', '.bin', 'baton');
    const help = await exec(bin, ['--help'], { cwd: scratch, timeout: 30_000 });
    expect(help.stdout).toContain('attenuate');

    const keyring = Keyring.ephemeral();
    const { token } = mintToken(
      { subject: 'alice@example.com', issuer: 'https://idp.example.com', agent: 'planner', rights: [{ resource: 'pg:appdb/public.*', operation: 'read' }], expiresAt: new Date(Date.now() + 3600_000) },
      keyring.signingKey(),
    );
    const child = await exec(bin, ['attenuate', '--to', 'helper-7', '--resource', 'pg:appdb/public.orders', '--op', 'read', '--ttl', '5m'], {
      cwd: scratch,
      env: { ...process.env, BATON_TOKEN: token, XDG_CONFIG_HOME: '/nonexistent-baton-test' },
      timeout: 30_000,
    });
    const seen = await exec(bin, ['inspect', '--json'], { cwd: scratch, env: { ...process.env, BATON_TOKEN: child.stdout.trim(), XDG_CONFIG_HOME: '/nonexistent-baton-test' }, timeout: 30_000 });
    expect(JSON.parse(seen.stdout)).toMatchObject({ lineage: [{ subject: 'alice@example.com' }, { delegatedTo: 'helper-7' }] });
    // the proxy's classifier workers run from dist/ without tsx (large statements go to them)
    const script = join(scratch, 'classify.mjs'); // a file, not -e: workers inherit --input-type
    writeFileSync(
      script,
      `const { createClassifierPool } = await import(${JSON.stringify(pathToFileURL(join(installed, 'dist/proxy/pg/classify/pool.js')).href)});\n` +
        "const p = createClassifierPool({ workers: 1 });\nconst r = await p.classify('SELECT 1 FROM t', { upstream: 'a', searchPath: ['public'] });\nawait p.close();\nconsole.log(JSON.stringify(r.ok));\n",
    );
    const classify = await exec(process.execPath, [script], { cwd: scratch, timeout: 60_000 });
    expect(classify.stdout.trim()).toBe('true');
  }, 120_000);
});
