import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { attenuate, exchange, ExchangeError, inspect } from '../../src/sdk/index.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';

const run = promisify(execFile);
let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker('sdk');
});
afterAll(async () => broker?.stop());

describe('SDK round trip', () => {
  it('exchange (dev issuer) → attenuate ×3 → inspect shows 4 links with subjects, delegates, purposes, constraints', async () => {
    const jwt = await broker.devToken('alice@example.com', ['engineers'], { client_id: 'planner' });
    const token = await exchange({ broker: broker.url, subjectToken: jwt });
    const helper = attenuate(token, { resources: ['pg:appdb/public.*'], operations: ['read', 'insert'], ttl: '10m', delegateTo: 'helper', purpose: 'triage' });
    const grand = attenuate(helper, { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '5m', delegateTo: 'grand-helper', purpose: 'count orders' });
    const great = attenuate(grand, { ttl: 60, delegateTo: 'great-grand-helper' });
    const keys = await (await fetch(`${broker.url}/.well-known/baton-keys.json`)).json();
    const seen = inspect(great, { publicKeys: keys });
    expect(seen.verified).toBe(true);
    expect(seen.lineage).toHaveLength(4);
    expect(seen.lineage[0]).toMatchObject({ depth: 0, subject: 'alice@example.com', agent: 'planner' });
    expect(seen.lineage[1]).toMatchObject({ depth: 1, delegatedTo: 'helper', purpose: 'triage', resources: ['pg:appdb/public.*'], operations: ['read', 'insert'] });
    expect(seen.lineage[2]).toMatchObject({ depth: 2, delegatedTo: 'grand-helper', purpose: 'count orders', resources: ['pg:appdb/public.orders'], operations: ['read'] });
    expect(seen.lineage[3]).toMatchObject({ depth: 3, delegatedTo: 'great-grand-helper' });
    expect(seen.lineage[3]!.resources).toBeUndefined();
    expect(seen.effective).toMatchObject({ resources: ['pg:appdb/public.orders'], operations: ['read'], approximate: false });
    const expiries = seen.lineage.map((l) => Date.parse(l.expiresAt!));
    expect(expiries).toEqual([...expiries].sort((a, b) => b - a)); // TTL only shrinks down the chain
    expect(inspect(great).verified).toBe(false);
  });

  it('surfaces broker refusals as typed errors with the RFC code', async () => {
    const jwt = await broker.devToken('eve', ['visitors']);
    const err = await exchange({ broker: broker.url, subjectToken: jwt }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(ExchangeError);
    expect(err).toMatchObject({ error: 'unauthorized_client', status: 400 });
  });
});

describe('CLI', () => {
  const baton = (args: string[], env: Record<string, string> = {}) =>
    run('node', ['bin/baton.mjs', ...args], { env: { ...process.env, ...env } }).then(
      (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
      (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
    );

  it('attenuates from BATON_TOKEN, inspects as JSON and as a tree, and fails with one clear line', async () => {
    const token = await exchange({ broker: broker.url, subjectToken: await broker.devToken('alice', ['analysts']) });
    const child = await baton(['attenuate', '--resource', 'pg:appdb/public.orders', '--op', 'read', '--ttl', '5m', '--to', 'helper-7', '--purpose', 'count'], { BATON_TOKEN: token });
    expect(child.code).toBe(0);
    const json = await baton(['inspect', '--json'], { BATON_TOKEN: child.stdout.trim() });
    expect(JSON.parse(json.stdout).lineage[1]).toMatchObject({ delegatedTo: 'helper-7', purpose: 'count' });
    const tree = await baton(['inspect', '--broker', broker.url], { BATON_TOKEN: child.stdout.trim() });
    expect(tree.stdout).toMatch(/VERIFIED/);
    expect(tree.stdout).toMatch(/→ helper-7/);
    const widen = await baton(['attenuate', '--op', 'delete', '--to', 'x'], { BATON_TOKEN: child.stdout.trim() });
    expect(widen.code).toBe(1);
    expect(widen.stderr.trim().split('\n')).toEqual([expect.stringMatching(/^baton: the parent token does not allow operation "delete"$/)]);
    // a right-to-left override would make the recorded name display as another one
    const bidi = await baton(['attenuate', '--to', 'helper\u202e7-txe', '--purpose', 'count'], { BATON_TOKEN: token });
    expect(bidi.code).toBe(1);
    expect(bidi.stderr.trim().split('\n')).toEqual(['baton: delegateTo contains a control, format or separator character (U+202E at position 6); use printable text']);
    expect(bidi.stdout).toBe('');
    const garbage = await baton(['inspect'], { BATON_TOKEN: 'not-a-token' });
    expect(garbage.code).toBe(1);
    expect(garbage.stderr).toMatch(/^baton: malformed token/);
  });
});
