/**
 * The SDK as a consumer gets it (issue #11): `npm pack` of packages/sdk, installed alone into a
 * scratch project. attenuate() and a verified inspect() run from plain Node (.mjs, no loader), a
 * TypeScript consumer type-checks with `strict` (module NodeNext, no skipLibCheck), and the install
 * stays within 10 MB. The npm registry (or the local npm cache) provides the SDK's two dependencies.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Keyring } from '../../src/keys/keyring.ts';
import { mintToken } from '../../src/token/mint.ts';

const exec = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const npm = (args: string[], cwd: string) => exec('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error'], { cwd, timeout: 120_000 });
let scratch: string;

beforeAll(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'baton-sdk-consumer-'));
  await exec(process.execPath, ['bin/build.mjs', 'sdk'], { cwd: root, timeout: 120_000 });
  await npm(['pack', '--workspace', 'packages/sdk', '--pack-destination', scratch], root);
  const tarball = readdirSync(scratch).find((f) => f.endsWith('.tgz'));
  if (!tarball) throw new Error('npm pack wrote no tarball');
  writeFileSync(join(scratch, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
  await npm(['install', '--prefer-offline', `./${tarball}`], scratch);
}, 240_000);

afterAll(() => {
  if (scratch) rmSync(scratch, { recursive: true, force: true });
});

function token() {
  const keyring = Keyring.ephemeral();
  const minted = mintToken(
    { subject: 'alice@example.com', issuer: 'https://idp.example.com', agent: 'planner', rights: [{ resource: 'pg:appdb/public.*', operation: 'read' }, { resource: 'pg:appdb/public.*', operation: 'insert' }], expiresAt: new Date(Date.now() + 3600_000) },
    keyring.signingKey(),
  );
  return { token: minted.token, keys: { keys: keyring.published() } };
}

describe('@batonhq/sdk tarball', () => {
  it('installs alone within 10 MB, with no server package', async () => {
    const installed = readdirSync(join(scratch, 'node_modules')).flatMap((d) => (d.startsWith('@') ? readdirSync(join(scratch, 'node_modules', d)).map((s) => `${d}/${s}`) : [d]));
    expect(installed.filter((d) => !d.startsWith('.')).sort()).toEqual(['@batonhq/sdk', 'long', 'protobufjs']);
    const { stdout } = await exec('du', ['-sk', join(scratch, 'node_modules')]);
    const kib = Number(stdout.split('\t')[0]);
    expect(kib).toBeGreaterThan(0);
    expect(kib).toBeLessThanOrEqual(10 * 1024);
  });

  it('attenuate() and a verified inspect() from plain Node', async () => {
    const { token: parent, keys } = token();
    writeFileSync(
      join(scratch, 'run.mjs'),
      `import { attenuate, inspect, parseKeySet } from '@batonhq/sdk';
const child = attenuate(process.env.PARENT, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'helper-7', purpose: 'count' });
const seen = inspect(child, { publicKeys: parseKeySet(JSON.parse(process.env.KEYS)) });
process.stdout.write(JSON.stringify({ verified: seen.verified, lineage: seen.lineage, effective: seen.effective }));
`,
    );
    const { stdout, stderr } = await exec(process.execPath, ['run.mjs'], { cwd: scratch, env: { ...process.env, PARENT: parent, KEYS: JSON.stringify(keys) }, timeout: 30_000 });
    expect(stderr).toBe('');
    const out = JSON.parse(stdout);
    expect(out.verified).toBe(true);
    expect(out.lineage).toHaveLength(2);
    expect(out.lineage[1]).toMatchObject({ delegatedTo: 'helper-7', purpose: 'count', operations: ['read'] });
    expect(out.effective).toMatchObject({ resources: ['pg:appdb/public.orders'], operations: ['read'] });
  });

  it('a TypeScript consumer type-checks with --strict (module NodeNext, libraries checked too)', async () => {
    writeFileSync(
      join(scratch, 'consumer.ts'),
      `import { attenuate, exchange, inspect, BatonError, ExchangeError, type AttenuateOptions, type Inspection, type KeySetDocument } from '@batonhq/sdk';
declare const parent: string;
declare const keys: KeySetDocument;
const options: AttenuateOptions = { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'helper-7' };
const child: string = attenuate(parent, options);
const seen: Inspection = inspect(child, { publicKeys: keys });
const depth: number = seen.lineage.length;
export async function get(jwt: string): Promise<string> {
  try {
    return await exchange({ broker: 'http://127.0.0.1:8080', subjectToken: jwt });
  } catch (e) {
    if (e instanceof ExchangeError) return e.error;
    if (e instanceof BatonError) return e.code;
    throw e;
  }
}
export { depth };
`,
    );
    const tsc = join(root, 'node_modules/typescript/bin/tsc');
    const args = ['--strict', '--noEmit', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', 'consumer.ts'];
    const result = await exec(process.execPath, [tsc, ...args], { cwd: scratch, timeout: 120_000 }).then(
      (r) => ({ code: 0, out: r.stdout }),
      (e: { code: number; stdout: string }) => ({ code: e.code, out: e.stdout }),
    );
    expect(result.out).toBe('');
    expect(result.code).toBe(0);
  });
});
