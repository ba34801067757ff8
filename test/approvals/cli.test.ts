/**
 * `baton approvals` as people run it (the compiled CLI as a child process) against a real broker:
 * list, approve, deny, usage errors, the broker's refusals, and untrusted text escaped on output.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Approval } from '../../src/approvals/approval.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { runCli } from '../helpers/cli.ts';
import { brokerToken, heldStatement } from './held.ts';

/** Spawned CLIs on a loaded 2-core machine. */
const SLOW = 180_000;

let broker: TestBroker;
let approver: string;
let requester: string;
let env: Record<string, string>;

const baton = (args: string[], token = approver) => runCli(['approvals', ...args, '--broker', broker.url], { env: { ...env, BATON_TOKEN: token } });

beforeAll(async () => {
  broker = await startTestBroker('approvals_cli');
  approver = await brokerToken(broker, 'root-admin', ['admins']);
  requester = await brokerToken(broker, 'alice', ['engineers']);
  const home = mkdtempSync(join(tmpdir(), 'baton-approvals-cli-'));
  env = { HOME: home, XDG_CONFIG_HOME: home };
});
afterAll(async () => broker?.stop());

describe('baton approvals', () => {
  it(
    'lists pending requests (escaped), approves and denies them',
    async () => {
      const input = heldStatement(broker, requester, 'DELETE FROM orders');
      // a delegate name chosen to forge a line and clear the screen
      input.lineage = [...input.lineage, { depth: 1, delegatedTo: 'bot\n[APPROVED] x\u001b[2J', constraints: {}, revocationId: input.binding.revocationId }];
      const first = await broker.approvals.admit(input);
      const second = await broker.approvals.admit(heldStatement(broker, requester));

      const list = await baton(['list', '--state', 'pending']);
      expect(list.code, list.stderr).toBe(0);
      const lines = list.stdout.trim().split('\n');
      expect(lines).toHaveLength(2);
      expect(lines[0]).toContain(second.id);
      expect(lines[1]).toContain(`${first.id} PENDING  appdb  [alice/`);
      expect(lines[1]).toContain('bot\\x0a[APPROVED] x\\x1b[2J');
      expect(list.stdout).not.toContain('\u001b');

      const json = await baton(['list', '--json']);
      expect(json.code).toBe(0);
      expect((JSON.parse(json.stdout) as { approvals: Approval[] }).approvals.map((a) => a.id)).toEqual([second.id, first.id]);

      const approved = await baton(['approve', first.id, '--reason', 'acceptance']);
      expect(approved.code, approved.stderr).toBe(0);
      expect(approved.stdout).toMatch(new RegExp(`^${first.id} approved \\(usable once until .+\\): appdb DELETE FROM orders\\n$`));

      const denied = await baton(['deny', second.id, '--reason', 'not now', '--json']);
      expect(denied.code, denied.stderr).toBe(0);
      expect(JSON.parse(denied.stdout)).toMatchObject({ id: second.id, state: 'denied', reason: 'not now', decidedBy: 'root-admin' });

      // the broker's refusals: decided already (409), the requester itself (403)
      const again = await baton(['approve', first.id, '--json']);
      expect(again.code).toBe(1);
      expect(JSON.parse(again.stderr).error.message).toMatch(/409 BATON_ERR_APPROVAL_CONFLICT/);
      const third = await broker.approvals.admit(heldStatement(broker, requester));
      const own = await baton(['approve', third.id], requester);
      expect(own.code).toBe(1);
      expect(own.stderr).toMatch(/^baton: broker refused \(403 BATON_ERR_FORBIDDEN\)/);
    },
    SLOW,
  );

  it(
    'usage errors exit 2 before any request',
    async () => {
      for (const args of [[], ['approve'], ['deny', 'apr_AAAAAAAAAAAAAAAAAAAAAA'], ['list', '--state', 'bogus'], ['list', 'extra'], ['frob']]) {
        const r = await baton(args);
        expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(2);
      }
      const r = await baton(['deny', 'apr_AAAAAAAAAAAAAAAAAAAAAA']);
      expect(r.stderr).toContain('deny needs --reason TEXT');
    },
    SLOW,
  );
});
