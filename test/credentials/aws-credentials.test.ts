/**
 * POST /v1/credentials/aws end to end (issue 14): a dev-mode broker (its seeded role `reports`) with
 * the real @aws-sdk/client-sts, pointed by the standard AWS_ENDPOINT_URL_STS at a loopback STS that
 * verifies SigV4 with the configured key and checks AssumeRole as AWS does (test/helpers/fake-sts.ts);
 * tokens from the broker narrowed by real attenuation; the audit trail; the CLI.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { queryAudit } from '../../src/audit/query.ts';
import { attenuate } from '../../src/token/attenuate.ts';
import { exchange } from '../../src/sdk/exchange.ts';
import { startTestBroker, type TestBroker } from '../helpers/broker.ts';
import { runCli } from '../helpers/cli.ts';
import { startFakeSts, type FakeSts } from '../helpers/fake-sts.ts';

const KEY = { accessKeyId: 'AKIABATONBROKERTEST1', secretAccessKey: 'broker-secret-key-for-the-loopback-sts' };
const DEV_ROLE = 'arn:aws:iam::000000000000:role/baton-reports';
const TABLES_ROLE = 'arn:aws:iam::000000000000:role/baton-tables';

let sts: FakeSts;
let broker: TestBroker;
let tables: TestBroker;
let engineer: string;
const saved: Record<string, string | undefined> = {};

function setEnv(values: Record<string, string | undefined>): void {
  for (const [k, v] of Object.entries(values)) {
    if (!(k in saved)) saved[k] = process.env[k];
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

beforeAll(async () => {
  sts = await startFakeSts({ ...KEY, roles: { [DEV_ROLE]: {}, [TABLES_ROLE]: { maxSessionDuration: 7200 } } });
  // the broker's AWS identity and endpoint come from the SDK's standard variables
  setEnv({ AWS_ENDPOINT_URL_STS: sts.url, AWS_ACCESS_KEY_ID: KEY.accessKeyId, AWS_SECRET_ACCESS_KEY: KEY.secretAccessKey, AWS_SESSION_TOKEN: undefined, AWS_PROFILE: undefined, AWS_EC2_METADATA_DISABLED: 'true' });
  broker = await startTestBroker('aws_credentials', { credentials: { perTokenPerMinute: 40 } }); // dev mode: the seeded role `reports`
  tables = await startTestBroker('aws_credentials_tables', {
    aws: {
      roles: {
        tables: { roleArn: TABLES_ROLE, region: 'us-east-1', resources: ['dynamodb:orders'], maxSessionSeconds: 7200 },
        untrusted: { roleArn: 'arn:aws:iam::000000000000:role/not-trusting-baton', region: 'us-east-1', resources: ['s3:x-bucket/'] },
      },
    },
    broker: { policyFile: adminPolicy() },
  });
  engineer = await exchange({ broker: broker.url, subjectToken: await broker.devToken('alice', ['engineers']) });
}, 60_000);

afterAll(async () => {
  await broker?.stop();
  await tables?.stop();
  await sts?.close();
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
});

/** The dev policy's admins rule only: "*" on everything, for the second broker's own roles. */
function adminPolicy(): string {
  return new URL('../../config/dev-policy.yaml', import.meta.url).pathname;
}

function request(b: TestBroker, token: string | undefined, role: unknown = 'reports'): Promise<Response> {
  return fetch(`${b.url}/v1/credentials/aws`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify({ role }),
  });
}

interface Issued {
  access_key_id: string;
  secret_access_key: string;
  session_token: string;
  expiration: string;
  policy: { Statement: Array<{ Action: string[]; Resource: string[]; Condition: Record<string, Record<string, unknown>> }> };
  role_arn: string;
  role_session_name: string;
  source_identity: string;
}

describe('POST /v1/credentials/aws', () => {
  it('a child narrowed to reports-bucket/2026/ for 10 minutes gets exactly that, ending with it', async () => {
    const child = attenuate(engineer, { resources: ['aws:reports/s3:reports-bucket/2026/'], operations: ['read'], ttl: '10m', delegateTo: 'helper-7', purpose: 'q1 report' });
    const res = await request(broker, child);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const c = (await res.json()) as Issued;
    expect(c.access_key_id).toMatch(/^ASIA/);
    expect(c.secret_access_key.length).toBeGreaterThan(20);
    expect(c.session_token.length).toBeGreaterThan(20);
    expect(c).toMatchObject({ role_arn: DEV_ROLE, role_session_name: 'helper-7', source_identity: 'alice' });

    const call = sts.calls.at(-1)!;
    expect(call).toMatchObject({ roleArn: DEV_ROLE, roleSessionName: 'helper-7', sourceIdentity: 'alice', durationSeconds: 900, accessKeyId: KEY.accessKeyId });
    expect(call.policy).toEqual(c.policy);
    const ends = new Date(c.expiration).getTime();
    expect(ends - Date.now()).toBeGreaterThan(590_000);
    expect(ends - Date.now()).toBeLessThanOrEqual(600_000);
    for (const s of c.policy.Statement) expect(s.Condition.DateLessThan).toEqual({ 'aws:CurrentTime': c.expiration.replace(/\.\d{3}Z$/, 'Z') });
    expect(c.policy.Statement.map((s) => s.Resource)).toEqual([['arn:aws:s3:::reports-bucket/2026/*'], ['arn:aws:s3:::reports-bucket']]);
    expect(c.policy.Statement[1]!.Condition.StringLike).toEqual({ 's3:prefix': ['2026/', '2026/*'] });
    expect(Object.fromEntries(call.tags.map((t) => [t.key, t.value]))).toMatchObject({ 'baton:subject': 'alice', 'baton:depth': '1', 'baton:delegates': 'helper-7', 'baton:purpose': 'q1 report', 'baton:token-id': expect.stringMatching(/^tok_/) });
    expect(call.transitiveTagKeys).toEqual(['baton:token-id', 'baton:subject']);

    const { events } = await queryAudit(broker.db.pool, { delegate: 'helper-7' });
    const entry = events.find((e) => e.action === 'credentials.aws.issue');
    expect(entry).toMatchObject({ decision: 'allow', resource: 'aws:reports/', operation: 'assume', accesses: [{ resource: 'aws:reports/s3:reports-bucket/2026/', operation: 'read' }] });
    expect(entry!.reason).toMatch(/AssumeRole arn:aws:iam::000000000000:role\/baton-reports as helper-7 for 900 s/);
    await expect.poll(async () => (await queryAudit(broker.db.pool, { delegate: 'helper-7' })).events.find((e) => e.id === entry!.id)?.recordedOutcome?.outcome).toEqual({ status: 200, tag: 'issued' });
  });

  it('the parent engineer (dev policy: read on the whole bucket) gets the bucket, read-only', async () => {
    const c = (await (await request(broker, engineer)).json()) as Issued;
    const actions = c.policy.Statement.flatMap((s) => s.Action);
    expect(actions).toContain('s3:GetObject');
    expect(actions.some((a) => a.startsWith('s3:Put') || a.startsWith('s3:Delete') || a === 's3:*')).toBe(false);
    expect(c.role_session_name).toBe(sts.calls.at(-1)!.roleSessionName);
  });

  it('refuses: no token 401, nothing granted 403 (audited), unknown role 404, bad body 400, revoked token 401', async () => {
    expect((await request(broker, undefined)).status).toBe(401);
    const analyst = await exchange({ broker: broker.url, subjectToken: await broker.devToken('bob', ['analysts']) });
    const forbidden = await request(broker, analyst);
    expect(forbidden.status).toBe(403);
    expect(await forbidden.json()).toMatchObject({ code: 'BATON_ERR_FORBIDDEN', title: expect.stringContaining('aws:reports/s3:reports-bucket/') });
    const { events } = await queryAudit(broker.db.pool, { subject: 'bob' });
    expect(events.find((e) => e.action === 'credentials.aws.issue')).toMatchObject({ decision: 'deny', reason: expect.stringMatching(/^BATON_ERR_FORBIDDEN/) });

    const unknown = await request(broker, engineer, 'billing');
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { title: string }).title).toMatch(/configured: reports/);
    expect((await request(broker, engineer, '../x')).status).toBe(400);

    const doomed = attenuate(engineer, { delegateTo: 'doomed' });
    await fetch(`${broker.url}/v1/revoke`, { method: 'POST', body: new URLSearchParams({ token: doomed }) });
    const calls = sts.calls.length;
    expect((await request(broker, doomed)).status).toBe(401);
    expect(sts.calls.length).toBe(calls);
  });

  it('maps STS refusals and outages to clear errors, and records them as outcomes', async () => {
    sts.failNext('AccessDenied', 403, 'not authorized to perform sts:AssumeRole');
    const denied = await request(broker, engineer);
    expect(denied.status).toBe(502);
    expect(await denied.json()).toMatchObject({ code: 'BATON_ERR_CREDENTIALS_REFUSED', title: expect.stringMatching(/trust the broker's identity/) });

    sts.failNext('RegionDisabledException', 403);
    expect(((await (await request(broker, engineer)).json()) as { code: string }).code).toBe('BATON_ERR_CREDENTIALS_UNAVAILABLE');

    sts.failNext('InternalFailure', 500);
    sts.failNext('InternalFailure', 500); // the SDK retries once
    const outage = await request(broker, engineer);
    expect(outage.status).toBe(503);
    expect(((await outage.json()) as { title: string }).title).toMatch(/STS is unavailable/);

    const untrusted = await request(tables, await exchange({ broker: tables.url, subjectToken: await tables.devToken('root', ['admins']) }), 'untrusted');
    expect(untrusted.status).toBe(502); // the loopback STS does not know that role: AccessDenied, as AWS says

    const { events } = await queryAudit(broker.db.pool, { subject: 'alice', limit: 50 });
    const tags = events.filter((e) => e.action === 'credentials.aws.issue').map((e) => e.recordedOutcome?.outcome.tag);
    expect(tags).toEqual(expect.arrayContaining(['BATON_ERR_CREDENTIALS_REFUSED', 'BATON_ERR_CREDENTIALS_UNAVAILABLE']));
  });

  it('when AWS finds policy + tags too large, retries once with the identifying tags only and says so', async () => {
    sts.failNext('PackedPolicyTooLarge', 400, 'Serialized token too large for session');
    const res = await request(broker, engineer);
    expect(res.status).toBe(200);
    expect(((await res.json()) as { lineage_cut?: string }).lineage_cut).toMatch(/cut to baton:token-id and baton:subject/);
    expect(sts.calls.at(-1)!.tags.map((t) => t.key)).toEqual(['baton:token-id', 'baton:subject']);
    // far too large for any tags: 422, nothing issued
    const calls = sts.calls.length;
    sts.failNext('PackedPolicyTooLarge', 400);
    sts.failNext('PackedPolicyTooLarge', 400);
    const refused = await request(broker, engineer);
    expect(refused.status).toBe(422);
    expect(((await refused.json()) as { code: string }).code).toBe('BATON_ERR_CREDENTIALS_UNREPRESENTABLE');
    expect(sts.calls.length).toBe(calls);
  });

  it('DynamoDB rights, and an admin “*” cut to what the role serves', async () => {
    const admin = await exchange({ broker: tables.url, subjectToken: await tables.devToken('root', ['admins']) });
    const narrowed = attenuate(admin, { resources: ['aws:tables/dynamodb:orders'], operations: ['read', 'write'], ttl: '10m', delegateTo: 'etl' });
    const res = await request(tables, narrowed, 'tables');
    expect(res.status).toBe(200);
    const c = (await res.json()) as Issued;
    expect(c.policy.Statement.map((s) => [s.Action, s.Resource])).toEqual([
      [['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:DescribeTable', 'dynamodb:ConditionCheckItem'], ['arn:aws:dynamodb:us-east-1:000000000000:table/orders']],
      [['dynamodb:Query', 'dynamodb:Scan'], ['arn:aws:dynamodb:us-east-1:000000000000:table/orders/index/*']],
      [['dynamodb:PutItem', 'dynamodb:UpdateItem'], ['arn:aws:dynamodb:us-east-1:000000000000:table/orders']],
    ]);
    // a 10-minute token: STS's floor of 900 s, not the role's 2 h
    expect(sts.calls.at(-1)!.durationSeconds).toBe(900);

    const whole = (await (await request(tables, admin, 'tables')).json()) as Issued;
    expect(whole.policy.Statement.map((s) => [s.Action, s.Resource])).toEqual([
      [['dynamodb:*'], ['arn:aws:dynamodb:us-east-1:000000000000:table/orders', 'arn:aws:dynamodb:us-east-1:000000000000:table/orders/index/*']],
    ]);
  });

  it('the broker without valid AWS credentials of its own: 503 saying so', async () => {
    setEnv({ AWS_ACCESS_KEY_ID: 'AKIAWRONGWRONGWRONG1' });
    const other = await startTestBroker('aws_credentials_nokey');
    try {
      const token = await exchange({ broker: other.url, subjectToken: await other.devToken('alice', ['engineers']) });
      const res = await request(other, token);
      expect(res.status).toBe(503);
      expect(((await res.json()) as { title: string }).title).toMatch(/refused the broker's own AWS credentials \(InvalidClientTokenId\)/);
    } finally {
      setEnv({ AWS_ACCESS_KEY_ID: KEY.accessKeyId });
      await other.stop();
    }
  });
});

describe('rate limit', () => {
  it('a lineage gets credentials.perTokenPerMinute issuances a minute, children together; then 429 with Retry-After', async () => {
    const dana = await exchange({ broker: broker.url, subjectToken: await broker.devToken('dana', ['engineers']) });
    const statuses: number[] = [];
    for (let i = 0; i < 41; i++) statuses.push((await request(broker, attenuate(dana, { delegateTo: `w${i % 3}` }))).status);
    expect(statuses.slice(0, 40).every((x) => x === 200)).toBe(true);
    const last = await request(broker, dana);
    expect(statuses[40]).toBe(429);
    expect(last.status).toBe(429);
    expect(Number(last.headers.get('retry-after'))).toBeGreaterThan(0);
  });
});

describe('baton credentials aws', () => {
  it('prints eval-able export lines (--env), a commented form by default, and JSON', async () => {
    const env = { BATON_TOKEN: engineer, BATON_BROKER: broker.url };
    const plain = await runCli(['credentials', 'aws', '--role', 'reports'], { env });
    expect(plain.code).toBe(0);
    expect(plain.stdout).toMatch(/^# AWS credentials: arn:aws:iam::000000000000:role\/baton-reports as \S+ \(source identity alice\), until \S+\n/);
    const onlyEnv = await runCli(['credentials', 'aws', '--role', 'reports', '--env'], { env });
    const lines = onlyEnv.stdout.trim().split('\n');
    expect(lines.map((l) => l.split('=')[0])).toEqual(['export AWS_ACCESS_KEY_ID', 'export AWS_SECRET_ACCESS_KEY', 'export AWS_SESSION_TOKEN', 'export AWS_CREDENTIAL_EXPIRATION']);
    const { execFileSync } = await import('node:child_process');
    const evaluated = execFileSync('bash', ['-c', `eval "$1"; printf '%s' "$AWS_ACCESS_KEY_ID"`, 'x', onlyEnv.stdout], { encoding: 'utf8' });
    expect(evaluated).toMatch(/^ASIA/);
    const json = await runCli(['credentials', 'aws', '--role', 'reports', '--json'], { env });
    expect(JSON.parse(json.stdout)).toMatchObject({ role_arn: DEV_ROLE, source_identity: 'alice', access_key_id: expect.stringMatching(/^ASIA/) });
    const missing = await runCli(['credentials', 'aws'], { env });
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/--role NAME/);
    const refused = await runCli(['credentials', 'aws', '--role', 'nope'], { env });
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toMatch(/404.*no AWS role named "nope"/);
  });
});
