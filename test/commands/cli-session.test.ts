/**
 * The README session through the real `baton` CLI (child processes) against a real dev-issuer broker
 * and proxy: login caches a 0600 token, attenuate/inspect/db connect find it, usage errors are one
 * line and exit 2, `--ttl 5 minutes` is refused, psql runs through the proxy, completion covers every
 * command.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { COMMANDS } from '../../src/commands/index.ts';
import { inspect } from '../../src/sdk/inspect.ts';
import { runCli, type CliOptions } from '../helpers/cli.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const SLOW = 180_000;
let stack: TestStack;
let home: string;
let env: Record<string, string | undefined>;

beforeAll(async () => {
  stack = await startTestStack('cli');
  home = mkdtempSync(join(tmpdir(), 'baton-cli-home-'));
  env = { HOME: home, XDG_CONFIG_HOME: join(home, 'config'), BATON_BROKER: stack.broker.url, BATON_PSQL: undefined };
});
afterAll(async () => {
  await stack?.stop();
  if (home) rmSync(home, { recursive: true, force: true });
});

const baton = (args: string[], opts: CliOptions = {}) => runCli(args, { ...opts, env: { ...env, ...opts.env } });
const cacheFile = () => join(home, 'config', 'baton', 'tokens.json');
const lines = (s: string) => s.trimEnd().split('\n');

describe('baton login → attenuate → inspect → db connect', () => {
  it(
    'logs in at the dev issuer, caches the token 0600 in a 0700 dir, and attenuate/inspect use it',
    async () => {
      const login = await baton(['login', '--sub', 'alice', '--groups', 'engineers']);
      expect(login.stderr).toBe('');
      expect(login.code).toBe(0);
      expect(login.stdout).toMatch(new RegExp(`^logged in to ${stack.broker.url.replace(/[.]/g, '\\.')} as alice .*token cached in ${cacheFile()}\\n$`));
      expect(statSync(cacheFile()).mode & 0o777).toBe(0o600);
      expect(statSync(join(home, 'config', 'baton')).mode & 0o777).toBe(0o700);
      const cached = JSON.parse(readFileSync(cacheFile(), 'utf8')) as { tokens: Record<string, { token: string; subject: string; expires_at: string }> };
      expect(Object.keys(cached.tokens)).toEqual([stack.broker.url]);
      expect(cached.tokens[stack.broker.url]).toMatchObject({ subject: 'alice' });
      expect(new Date(cached.tokens[stack.broker.url]!.expires_at).getTime()).toBeGreaterThan(Date.now());

      // attenuate from the cache (no BATON_TOKEN, nothing on stdin), "5 minutes" as one argument
      const child = await baton(['attenuate', '--resource', 'pg:appdb/public.orders', '--op', 'read', '--ttl', '5 minutes', '--to', 'helper-7', '--json']);
      expect(child.stderr).toBe('');
      expect(child.code).toBe(0);
      const { token } = JSON.parse(child.stdout) as { token: string };
      const expires = new Date(inspect(token).effective.expiresAt!).getTime();
      expect(expires - Date.now()).toBeGreaterThan(3 * 60_000); // minutes, not 5 seconds
      expect(expires - Date.now()).toBeLessThanOrEqual(5 * 60_000 + 1000);

      const shown = await baton(['inspect', '--json'], { env: { BATON_TOKEN: token } });
      expect(shown.code).toBe(0);
      const parsed = JSON.parse(shown.stdout) as { verified: boolean; lineage: { subject?: string; delegatedTo?: string }[] };
      expect(parsed.lineage.map((l) => l.subject ?? l.delegatedTo)).toEqual(['alice', 'helper-7']);
      // verified against the broker's keys, the cached token itself
      const root = await baton(['inspect', '--verify', '--json']);
      expect(root.code).toBe(0);
      expect(JSON.parse(root.stdout)).toMatchObject({ verified: true, lineage: [{ subject: 'alice' }] });

      // exchange: any OIDC token on stdin → a Baton token on stdout (cached unless --no-cache)
      const jwt = await stack.broker.devToken('bob', ['engineers']);
      const exchanged = await baton(['exchange', '--no-cache'], { input: jwt });
      expect(exchanged.code).toBe(0);
      expect(inspect(exchanged.stdout.trim()).lineage[0]).toMatchObject({ subject: 'bob' });
      expect(JSON.parse(readFileSync(cacheFile(), 'utf8')).tokens[stack.broker.url].subject).toBe('alice');
      const refused = await baton(['exchange', '--json'], { input: 'not-a-jwt' });
      expect(refused.code).toBe(1);
      expect(JSON.parse(refused.stderr)).toMatchObject({ error: { code: 'invalid_grant', command: 'exchange' } });
    },
    SLOW,
  );

  it(
    'db connect runs psql through the proxy with the token in PGPASSWORD and exits with psql\'s code',
    async () => {
      const port = String(stack.proxy.port);
      const one = await baton(['db', 'connect', 'appdb', '--port', port, '--', '-XtAc', 'select 1']);
      expect(one.stderr).toBe('');
      expect(one.stdout).toBe('1\n');
      expect(one.code).toBe(0);
      // a read-only child: the DELETE is refused by the proxy, and psql's exit code comes back
      const parent = JSON.parse(readFileSync(cacheFile(), 'utf8')).tokens[stack.broker.url].token as string;
      const readOnly = stack.attenuate(parent, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'helper-7' });
      const denied = await baton(['db', 'connect', 'appdb', '--port', port, '--', '-Xc', 'DELETE FROM orders'], { env: { BATON_TOKEN: readOnly } });
      expect(denied.code).toBe(1);
      expect(denied.stderr).toMatch(/ERROR: .*permission denied|42501/i);
      // psql missing: one clear line, 127
      const emptyPath = mkdtempSync(join(tmpdir(), 'baton-nopsql-'));
      const missing = await baton(['db', 'connect', 'appdb', '--port', port, '--', '-c', 'select 1'], { env: { PATH: emptyPath } });
      expect(missing.code).toBe(127);
      expect(lines(missing.stderr)).toEqual([expect.stringMatching(/^baton: psql not found on PATH/)]);
    },
    SLOW,
  );

  it(
    'refuses an expired cached token and a cache file others can read',
    async () => {
      const other = { XDG_CONFIG_HOME: join(home, 'other') };
      const login = await baton(['login', '--sub', 'carol', '--groups', 'engineers', '--ttl', '2s', '--json'], { env: other });
      expect(login.code).toBe(0);
      const info = JSON.parse(login.stdout) as Record<string, string>;
      expect(info).toMatchObject({ broker: stack.broker.url, subject: 'carol' });
      expect(info.token).toBeUndefined(); // login never prints the token
      await new Promise((r) => setTimeout(r, Math.max(0, new Date(info.expires_at!).getTime() - Date.now() + 200)));
      const expired = await baton(['attenuate', '--to', 'x'], { env: other });
      expect(expired.code).toBe(1);
      expect(lines(expired.stderr)).toEqual([expect.stringMatching(/^baton: the cached token for .* expired at .*; run `baton login` again$/)]);
      const loose = join(home, 'other', 'baton', 'tokens.json');
      chmodSync(loose, 0o644);
      const unsafe = await baton(['inspect'], { env: other });
      expect(unsafe.code).toBe(1);
      expect(lines(unsafe.stderr)).toEqual([expect.stringMatching(/^baton: refusing to use .*tokens\.json: others can read it \(mode 644\)/)]);
      const none = await baton(['inspect'], { env: { XDG_CONFIG_HOME: join(home, 'nobody') } });
      expect(none.code).toBe(1);
      expect(lines(none.stderr)).toEqual([expect.stringMatching(/^baton: no token: set BATON_TOKEN, pipe one on stdin, or run `baton login`/)]);
    },
    SLOW,
  );
});

describe('usage errors: one line, exit 2', () => {
  it(
    'leftover words, unknown options and ambiguous TTLs are refused, naming what was wrong',
    async () => {
      const cases: [string[], RegExp][] = [
        [['attenuate', '--to', 'x', '--ttl', '5', 'minutes'], /^baton attenuate: unexpected argument "minutes" after --ttl 5 \(quote a value that has spaces\)$/],
        [['attenuate', '--to', 'x', '--ttl', '5'], /^baton attenuate: --ttl "5" needs a unit: 5s, 5m, 5h/],
        [['attenuate', '--to', 'x', '--ttl', 'soon'], /^baton attenuate: --ttl "soon" is not a duration/],
        [['attenuate', '--foo'], /^baton attenuate: unknown option --foo$/],
        [['attenuate', '--ttl'], /^baton attenuate: option --ttl needs a value$/],
        [['inspect', 'extra'], /^baton inspect: unexpected argument "extra"$/],
        [['login', 'alice'], /^baton login: unexpected argument "alice"$/],
        [['exchange', '--subject'], /^baton exchange: unknown option --subject$/],
        [['revoke', 'now'], /^baton revoke: unexpected argument "now"$/],
        [['keys', 'list', '--bogus'], /^baton keys: unknown option --bogus$/],
        [['db', 'connect', 'appdb', '-c', 'select 1'], /^baton db: unknown option -c \(arguments for the program go after --\)$/],
        [['db', 'connect', 'appdb host=evil.example'], /^baton db: "appdb host=evil.example" is not an upstream name/],
        [['completion', 'tcsh'], /^baton completion: unknown shell "tcsh"/],
        [['serve', 'extra'], /^baton serve: unexpected argument "extra"$/],
      ];
      const results = [];
      // four at a time: a shared 2-core machine
      for (let i = 0; i < cases.length; i += 4) results.push(...(await Promise.all(cases.slice(i, i + 4).map(([args]) => baton(args, { env: { BATON_TOKEN: 'unused' } })))));
      results.forEach((r, i) => {
        expect({ args: cases[i]![0], code: r.code, stdout: r.stdout }).toEqual({ args: cases[i]![0], code: 2, stdout: '' });
        expect(lines(r.stderr)).toEqual([expect.stringMatching(cases[i]![1])]);
      });
      const json = await baton(['attenuate', '--json', '--ttl', '5', 'minutes']);
      expect(json.code).toBe(2);
      expect(JSON.parse(json.stderr)).toEqual({ error: { code: 'BATON_CLI_USAGE', message: 'unexpected argument "minutes" after --ttl 5 (quote a value that has spaces)', command: 'attenuate' } });
    },
    SLOW,
  );
});

describe('baton completion', () => {
  it(
    'bash, zsh and fish scripts name every command; bash completes commands, options and subcommands',
    async () => {
      const names = Object.keys(COMMANDS);
      for (const shell of ['bash', 'zsh', 'fish']) {
        const out = await baton(['completion', shell]);
        expect(out.code).toBe(0);
        for (const name of names) expect(out.stdout, `${shell}: ${name}`).toMatch(new RegExp(`(^|[\\s'(|])${name}[\\s):']`));
      }
      const table = await baton(['completion', '--json']);
      const commands = (JSON.parse(table.stdout) as { commands: { name: string; options: { name: string }[] }[] }).commands;
      expect(commands.map((c) => c.name)).toEqual(names);
      expect(commands.find((c) => c.name === 'attenuate')!.options.map((o) => o.name)).toEqual(expect.arrayContaining(['to', 'ttl', 'resource', 'op', 'json', 'help']));

      // the server commands declare no spec: their completed options must still be real ones
      for (const name of ['dev', 'serve', 'proxy']) {
        const help = (await baton([name, '--help'])).stdout;
        for (const o of commands.find((c) => c.name === name)!.options) expect(help + ' --help --json', `${name} --${o.name}`).toContain(`--${o.name}`);
      }

      const script = join(home, 'baton.bash');
      writeFileSync(script, (await baton(['completion', 'bash'])).stdout);
      const complete = (...words: string[]) =>
        execFileSync('bash', ['-c', `source "$1"; COMP_WORDS=("\${@:2}"); COMP_CWORD=$(( $# - 2 )); _baton_completion; printf '%s\\n' "\${COMPREPLY[@]}"`, 'x', script, ...words], { encoding: 'utf8' })
          .trim()
          .split('\n');
      expect(complete('baton', 'att')).toEqual(['attenuate']);
      expect(complete('baton', 'attenuate', '--t').sort()).toEqual(['--to', '--ttl']);
      expect(complete('baton', 'audit', '').sort()).toEqual(['export', 'tail', 'tree', 'verify']);
      expect(complete('baton', 'db', '')).toEqual(['connect']);
      expect(complete('baton', 'completion', 'f')).toEqual(['fish']);
    },
    SLOW,
  );

  // zsh and fish are not part of the test toolchain: checked where installed (Debian: zsh, fish)
  const has = (shell: string) => spawnSync(shell, ['-c', 'exit 0']).status === 0;
  it.skipIf(!has('zsh'))(
    'the zsh script parses (zsh -n)',
    async () => {
      const script = join(home, '_baton');
      writeFileSync(script, (await baton(['completion', 'zsh'])).stdout);
      expect(spawnSync('zsh', ['-n', script], { encoding: 'utf8' })).toMatchObject({ status: 0, stderr: '' });
    },
    SLOW,
  );
  it.skipIf(!has('fish'))(
    'fish completes commands, options, subcommands and file names after --keys',
    async () => {
      const script = join(home, 'baton.fish');
      writeFileSync(script, (await baton(['completion', 'fish'])).stdout);
      const complete = (line: string) =>
        execFileSync('fish', ['-c', `source $argv[1]; complete -C $argv[2]`, script, line], {
          encoding: 'utf8',
          env: { ...process.env, HOME: home, XDG_CONFIG_HOME: join(home, 'fish-config'), XDG_DATA_HOME: join(home, 'fish-data') }, // fish writes its own state there
        })
          .trim()
          .split('\n')
          .map((l) => l.split('\t')[0]);
      expect(complete('baton att')).toEqual(['attenuate']);
      expect(complete('baton attenuate --t').sort()).toEqual(['--to', '--ttl']);
      expect(complete('baton audit ').sort()).toEqual(['export', 'tail', 'tree', 'verify']);
      expect(complete(`baton inspect --keys ${script.slice(0, -3)}`)).toEqual([script]);
    },
    SLOW,
  );
});
