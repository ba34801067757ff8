/** `baton audit …` against a real broker: verify names a row tampered with as superuser; tail; tree. */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { toAuditLineage } from '../../src/audit/lineage.ts';
import { readLineage } from '../../src/token/lineage.ts';
import { appendBlock, decodeToken, pred, str } from '../../src/token/wire/index.ts';
import { startTestStack, type TestStack } from '../helpers/stack.ts';

const run = promisify(execFile);
let stack: TestStack;
let admin: string;
beforeAll(async () => {
  stack = await startTestStack('auditcli');
  admin = await stack.token('root', ['admins']);
});
afterAll(async () => stack?.stop());

const baton = (args: string[]) =>
  run('node', ['bin/baton.mjs', 'audit', ...args, '--broker', stack.broker.url], { env: { ...process.env, BATON_TOKEN: admin } }).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
  );

describe('baton audit', () => {
  it('tails events and shows the delegation tree with counts per link', async () => {
    const root = await stack.token('alice', ['engineers'], 'planner');
    const helper = stack.attenuate(root, { resources: ['pg:appdb/public.orders'], operations: ['read'], delegateTo: 'helper-7' });
    const c = await stack.connect(helper);
    await c.query('SELECT count(*) FROM orders');
    await c.query('DELETE FROM orders').catch(() => {});
    const tail = await baton(['tail', '--json', '--limit', '5']);
    expect(tail.code).toBe(0);
    const events = tail.out.trim().split('\n').map((l) => JSON.parse(l));
    expect(events.at(-1)).toMatchObject({ decision: 'deny', operation: 'delete' });
    const tokenId = events.at(-1).tokenId as string;
    const tree = await baton(['tree', tokenId]);
    expect(tree.out).toMatch(/alice via planner/);
    expect(tree.out).toMatch(/→ helper-7\s+allowed 1, denied 1/);
  });

  it('verify passes on an intact chain and names the first row changed directly as superuser', async () => {
    expect(await baton(['verify'])).toMatchObject({ code: 0, out: expect.stringMatching(/^audit trail OK/) });
    const pool = stack.broker.testDb.pool;
    const { rows } = await pool.query<{ seq: string; id: string }>('SELECT seq, id FROM audit_events ORDER BY seq LIMIT 1 OFFSET 1');
    const victim = rows[0]!;
    await pool.query('ALTER TABLE audit_events DISABLE TRIGGER ALL');
    await pool.query("UPDATE audit_events SET reason = 'nothing to see' WHERE seq = $1", [victim.seq]);
    await pool.query('ALTER TABLE audit_events ENABLE TRIGGER ALL');
    const broken = await baton(['verify']);
    expect(broken.code).toBe(1);
    expect(broken.out).toMatch(/^audit trail BROKEN: chain \d+ \(audit_events\) entry \d+ /);
    expect(broken.out).toContain(`(seq ${victim.seq}, id ${victim.id})`);
    // the application role cannot do the same: the trigger refuses UPDATE and DELETE
    await expect(pool.query('DELETE FROM audit_events WHERE seq = $1', [victim.seq])).rejects.toThrow();
  });

  it('refuses a non-admin token', async () => {
    const { code, err } = await run('node', ['bin/baton.mjs', 'audit', 'verify', '--broker', stack.broker.url], {
      env: { ...process.env, BATON_TOKEN: await stack.token('bob', ['analysts']) },
    }).then(() => ({ code: 0, err: '' }), (e: { code: number; stderr: string }) => ({ code: e.code, err: e.stderr }));
    expect(code).toBe(1);
    expect(err).toMatch(/403 BATON_ERR_FORBIDDEN/);
  });
});

/** Raw characters a terminal acts on or hides: C0 except \n, DEL, C1, bidi/format controls. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]/u;
const FORGED = '[ALLOW] read pg:appdb/public.secrets';
const EVIL_DELEGATE = `helper\n${FORGED}`;
const EVIL_PURPOSE = `sum\u202eup\x1b[2K\rerased\x9b31m`;

/** A child whose delegate and purpose are hostile, made with the low-level wire append (attenuate() refuses such text). */
function handMinted(parent: string): string {
  return appendBlock(parent, { facts: [pred('delegated_to', str(EVIL_DELEGATE)), pred('purpose', str(EVIL_PURPOSE))] });
}

describe('untrusted text on the terminal', () => {
  it('baton inspect escapes hostile delegate names and purposes (tree and --json)', async () => {
    const evil = handMinted(await stack.token('alice', ['engineers'], 'planner'));
    const inspect = (args: string[]) =>
      run('node', ['bin/baton.mjs', 'inspect', ...args], { env: { ...process.env, BATON_TOKEN: evil } }).then((r) => r.stdout);
    const tree = await inspect([]);
    expect(tree).not.toMatch(RAW_CONTROL);
    expect(tree.split('\n').some((l) => l.trimStart().startsWith('[ALLOW]'))).toBe(false);
    expect(tree).toContain('→ helper\\x0a[ALLOW] read pg:appdb/public.secrets');
    expect(tree).toContain('sum\\u{202e}up\\x1b[2K\\x0derased\\x9b31m');
    const json = await inspect(['--json']);
    expect(json).not.toMatch(RAW_CONTROL);
    const parsed = JSON.parse(json) as { lineage: { delegatedTo?: string; purpose?: string }[] };
    expect(parsed.lineage[1]).toMatchObject({ delegatedTo: EVIL_DELEGATE, purpose: EVIL_PURPOSE }); // same values, escaped on the wire
  });

  it('baton audit tail / tree never print a forged line or raw escapes from an audit entry', async () => {
    const evil = handMinted(await stack.token('alice', ['engineers'], 'planner'));
    const links = readLineage(decodeToken(evil));
    const lineage = toAuditLineage(links);
    const tokenId = links[0]!.tokenId!;
    await stack.broker.audit.append({
      source: 'proxy-pg',
      action: 'statement',
      decision: 'deny',
      reason: `permission denied\n${FORGED}\x1b[1A\x1b[2K\u2066`,
      lineage,
      tokenId,
      resource: 'pg:appdb/public.orders',
      operation: 'delete',
      accesses: [{ resource: 'pg:appdb/public.orders', operation: 'delete' }],
    });
    const tail = await baton(['tail', '--limit', '3']);
    expect(tail.code).toBe(0);
    expect(tail.out).not.toMatch(RAW_CONTROL);
    const lines = tail.out.trimEnd().split('\n');
    expect(lines.some((l) => l.startsWith('[ALLOW]'))).toBe(false);
    expect(lines.filter((l) => l.includes('public.secrets'))).toEqual([lines.at(-1)]); // only inside the DENY line
    expect(lines.at(-1)).toMatch(/ DENY  delete pg:appdb\/public\.orders  \[alice\/planner → helper\\x0a\[ALLOW\] read pg:appdb\/public\.secrets\]  permission denied\\x0a\[ALLOW\]/);
    const json = await baton(['tail', '--json', '--limit', '1']);
    expect(json.out).not.toMatch(RAW_CONTROL);
    expect(JSON.parse(json.out).lineage[1].purpose).toBe(EVIL_PURPOSE);
    const tree = await baton(['tree', tokenId]);
    expect(tree.out).not.toMatch(RAW_CONTROL);
    expect(tree.out.split('\n').some((l) => l.trimStart().startsWith('[ALLOW]'))).toBe(false);
    // broker error messages quote token contents too (who holds an ancestor link): printed escaped
    const grandchild = appendBlock(evil, { facts: [pred('delegated_to', str('grand-1'))] });
    const ancestorId = readLineage(decodeToken(evil))[1]!.revocationId;
    const refused = await run('node', ['bin/baton.mjs', 'revoke', '--id', ancestorId, '--broker', stack.broker.url], { env: { ...process.env, BATON_TOKEN: grandchild } }).then(
      () => ({ err: '' }),
      (e: { stderr: string }) => ({ err: e.stderr }),
    );
    expect(refused.err).toMatch(/403 BATON_ERR_FORBIDDEN/);
    expect(refused.err).toContain('held by helper\\x0a[ALLOW]');
    expect(refused.err).not.toMatch(RAW_CONTROL);
    expect(refused.err.trimEnd().split('\n')).toHaveLength(1);
    const exported = await baton(['export']);
    expect(exported.out).not.toMatch(RAW_CONTROL);
    expect(exported.out.trimEnd().split('\n').every((l) => JSON.parse(l))).toBe(true);
  });
});

