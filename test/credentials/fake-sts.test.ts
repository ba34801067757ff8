/**
 * The loopback STS endpoint (test/helpers/fake-sts.ts), driven by the real AWS SDK: what it
 * accepts comes back as credentials the SDK parses, and what AWS would refuse comes back as
 * the exception the SDK raises for AWS's answer (name = the error's class or code,
 * $metadata.httpStatusCode = AWS's status). Error tests use maxAttempts: 1 so a refusal is
 * seen once; the retry tests show what the SDK's default retries do with it.
 */
import { createHash } from 'node:crypto';
import { AssumeRoleCommand, GetCallerIdentityCommand, STSClient, type AssumeRoleCommandInput, type STSClientConfig } from '@aws-sdk/client-sts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFakeSts, type FakeSts } from '../helpers/fake-sts.ts';

const ACCESS_KEY_ID = 'AKIAFAKESTS000000001';
const SECRET = 'fake-sts-secret-0123456789abcdefghijklmn';
const ROLE = 'arn:aws:iam::123456789012:role/deploy';
const LONG_ROLE = 'arn:aws:iam::210987654321:role/team/ci/long-runner';
const POLICY = { Version: '2012-10-17', Statement: [{ Effect: 'Allow', Action: ['s3:GetObject'], Resource: 'arn:aws:s3:::reports/*' }] };

let fake: FakeSts;
beforeAll(async () => {
  fake = await startFakeSts({
    accessKeyId: ACCESS_KEY_ID,
    secretAccessKey: SECRET,
    roles: { [ROLE]: {}, [LONG_ROLE]: { maxSessionDuration: 43200 } },
  });
});
afterAll(async () => fake?.close());

function client(config: Partial<STSClientConfig> = {}): STSClient {
  return new STSClient({
    endpoint: fake.url,
    region: 'us-east-1',
    credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET },
    maxAttempts: 1,
    ...config,
  });
}

function assumeRole(input: Partial<AssumeRoleCommandInput> = {}, sts = client()) {
  return sts.send(new AssumeRoleCommand({ RoleArn: ROLE, RoleSessionName: 'agent-7', ...input }));
}

interface SdkError {
  name: string;
  message: string;
  Code?: string;
  $fault?: string;
  $metadata: { httpStatusCode?: number; requestId?: string; attempts?: number };
}

/** Awaits a rejection and checks the SDK exception's name, HTTP status and (optionally) message. */
async function expectStsError(promise: Promise<unknown>, name: string, status: number, message?: RegExp): Promise<SdkError> {
  const error = (await promise.then(
    () => expect.unreachable(`expected ${name}`),
    (e: unknown) => e,
  )) as SdkError;
  expect(error.name).toBe(name);
  expect(error.$metadata.httpStatusCode).toBe(status);
  expect(error.$metadata.requestId).toMatch(/^[0-9a-f-]{36}$/);
  if (message) expect(error.message).toMatch(message);
  return error;
}

/** Runs fn and checks that it recorded no call. */
async function recordsNothing(fn: () => Promise<unknown>): Promise<void> {
  const before = fake.calls.length;
  await fn();
  expect(fake.calls.length).toBe(before);
}

describe('a valid AssumeRole', () => {
  it('returns credentials the SDK parses and records the call', async () => {
    const before = fake.calls.length;
    const started = Date.now();
    const out = await assumeRole({
      RoleSessionName: 'agent-7@build.42',
      DurationSeconds: 1800,
      Policy: JSON.stringify(POLICY, null, 2),
      SourceIdentity: 'alice@example.com',
      Tags: [
        { Key: 'team', Value: 'données' },
        { Key: 'cost center', Value: '' },
      ],
      TransitiveTagKeys: ['team'],
    });

    const creds = out.Credentials!;
    expect(creds.AccessKeyId).toMatch(/^ASIA[A-Z2-7]{16}$/);
    expect(creds.SecretAccessKey).toHaveLength(40);
    expect(creds.SessionToken!.length).toBeGreaterThan(100);
    expect(creds.Expiration).toBeInstanceOf(Date);
    const lifetime = creds.Expiration!.getTime() - started;
    expect(lifetime).toBeGreaterThan(1795_000);
    expect(lifetime).toBeLessThanOrEqual(1801_000);
    expect(out.AssumedRoleUser!.Arn).toBe('arn:aws:sts::123456789012:assumed-role/deploy/agent-7@build.42');
    expect(out.AssumedRoleUser!.AssumedRoleId).toMatch(/^AROA[A-Z2-7]{17}:agent-7@build\.42$/);
    expect(out.SourceIdentity).toBe('alice@example.com');
    expect(out.PackedPolicySize).toBeGreaterThan(0);
    expect(out.PackedPolicySize).toBeLessThan(50);

    expect(fake.calls.length).toBe(before + 1);
    expect(fake.calls.at(-1)).toEqual({
      roleArn: ROLE,
      roleSessionName: 'agent-7@build.42',
      durationSeconds: 1800,
      policy: POLICY,
      policyText: JSON.stringify(POLICY, null, 2),
      sourceIdentity: 'alice@example.com',
      tags: [
        { key: 'team', value: 'données' },
        { key: 'cost center', value: '' },
      ],
      transitiveTagKeys: ['team'],
      accessKeyId: ACCESS_KEY_ID,
    });
  });

  it('defaults DurationSeconds to 3600, reports no PackedPolicySize without policy or tags, keeps the role id stable', async () => {
    const first = await assumeRole();
    const second = await assumeRole({ RoleSessionName: 'other' });
    expect(first.PackedPolicySize).toBeUndefined();
    expect(first.SourceIdentity).toBeUndefined();
    expect(fake.calls.at(-2)).toEqual({
      roleArn: ROLE,
      roleSessionName: 'agent-7',
      durationSeconds: 3600,
      tags: [],
      transitiveTagKeys: [],
      accessKeyId: ACCESS_KEY_ID,
    });
    expect(first.AssumedRoleUser!.AssumedRoleId!.split(':')[0]).toBe(second.AssumedRoleUser!.AssumedRoleId!.split(':')[0]);
    expect(first.Credentials!.AccessKeyId).not.toBe(second.Credentials!.AccessKeyId);
  });

  it("allows up to the role's MaxSessionDuration and drops the role path from the assumed-role ARN", async () => {
    const out = await assumeRole({ RoleArn: LONG_ROLE, DurationSeconds: 43200 });
    expect(out.AssumedRoleUser!.Arn).toBe('arn:aws:sts::210987654321:assumed-role/long-runner/agent-7');
    expect(fake.calls.at(-1)!.durationSeconds).toBe(43200);
    await expectStsError(
      assumeRole({ RoleArn: LONG_ROLE, DurationSeconds: 43201 }),
      'ValidationError',
      400,
      /at 'durationSeconds' failed to satisfy constraint: Member must have value less than or equal to 43200/,
    );
  });

  it('takes the endpoint from AWS_ENDPOINT_URL_STS and the credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY', async () => {
    const names = ['AWS_ENDPOINT_URL_STS', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION', 'AWS_IGNORE_CONFIGURED_ENDPOINT_URLS'];
    const saved = Object.fromEntries(names.map((n) => [n, process.env[n]]));
    try {
      for (const n of names) delete process.env[n];
      process.env.AWS_ENDPOINT_URL_STS = fake.url;
      process.env.AWS_ACCESS_KEY_ID = ACCESS_KEY_ID;
      process.env.AWS_SECRET_ACCESS_KEY = SECRET;
      process.env.AWS_REGION = 'us-east-1';
      const sts = new STSClient({ maxAttempts: 1 }); // after the variables are set: it reads them now
      const out = await sts.send(new AssumeRoleCommand({ RoleArn: ROLE, RoleSessionName: 'from-env' }));
      expect(out.AssumedRoleUser!.Arn).toBe('arn:aws:sts::123456789012:assumed-role/deploy/from-env');
      expect(fake.calls.at(-1)).toMatchObject({ roleSessionName: 'from-env', accessKeyId: ACCESS_KEY_ID });
    } finally {
      for (const n of names) {
        if (saved[n] === undefined) delete process.env[n];
        else process.env[n] = saved[n];
      }
    }
  });
});

describe('SigV4', () => {
  it('refuses a signature made with the wrong secret', async () => {
    await recordsNothing(() =>
      expectStsError(
        assumeRole({}, client({ credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: `${SECRET}x` } })),
        'SignatureDoesNotMatch',
        403,
        /^The request signature we calculated does not match/,
      ),
    );
  });

  it('refuses an unknown access key id', async () => {
    await expectStsError(
      assumeRole({}, client({ credentials: { accessKeyId: 'AKIAUNKNOWN000000000', secretAccessKey: SECRET } })),
      'InvalidClientTokenId',
      403,
      /security token included in the request is invalid/,
    );
  });

  it('refuses session credentials (a session token the fake never issued)', async () => {
    await expectStsError(
      assumeRole({}, client({ credentials: { accessKeyId: ACCESS_KEY_ID, secretAccessKey: SECRET, sessionToken: 'token' } })),
      'InvalidClientTokenId',
      403,
    );
  });

  it('refuses a credential scoped to another region', async () => {
    await expectStsError(assumeRole({}, client({ region: 'eu-west-1' })), 'SignatureDoesNotMatch', 403, /scoped to a valid region, not 'eu-west-1'/);
  });

  it('refuses a body changed after signing, whether or not x-amz-content-sha256 was changed with it', async () => {
    const tamper = (fixHash: boolean) => {
      const sts = client();
      // The deserialize step runs after signing, just before the request goes out.
      sts.middlewareStack.add(
        (next) => async (args) => {
          const request = args.request as { body: string; headers: Record<string, string> };
          request.body = request.body.replace('DurationSeconds=900', 'DurationSeconds=901');
          if (fixHash) request.headers['x-amz-content-sha256'] = createHash('sha256').update(request.body).digest('hex');
          return next(args);
        },
        { step: 'deserialize', name: 'tamperAfterSigning' },
      );
      return assumeRole({ DurationSeconds: 900 }, sts);
    };
    await recordsNothing(async () => {
      await expectStsError(tamper(false), 'SignatureDoesNotMatch', 403, /x-amz-content-sha256' header does not match/);
      await expectStsError(tamper(true), 'SignatureDoesNotMatch', 403, /^The request signature we calculated does not match/);
    });
  });

  it('refuses a changed signed header but ignores an added unsigned one', async () => {
    const withHeader = (name: string, value: string) => {
      const sts = client();
      sts.middlewareStack.add(
        (next) => async (args) => {
          (args.request as { headers: Record<string, string> }).headers[name] = value;
          return next(args);
        },
        { step: 'deserialize', name: 'headerAfterSigning' },
      );
      return assumeRole({}, sts);
    };
    await expectStsError(withHeader('amz-sdk-request', 'attempt=2; max=3'), 'SignatureDoesNotMatch', 403);
    await expect(withHeader('x-not-signed', 'anything')).resolves.toHaveProperty('Credentials');
  });

  it('refuses a signature more than 15 minutes old or ahead', async () => {
    const minutes = 60_000;
    await expectStsError(assumeRole({}, client({ systemClockOffset: -16 * minutes })), 'SignatureDoesNotMatch', 403, /^Signature expired: \d{8}T\d{6}Z is now earlier than .* - 15 min\.\)$/);
    await expectStsError(assumeRole({}, client({ systemClockOffset: 16 * minutes })), 'SignatureDoesNotMatch', 403, /^Signature not yet current: .* \+ 15 min\.\)$/);
    await expect(assumeRole({}, client({ systemClockOffset: -14 * minutes }))).resolves.toHaveProperty('Credentials');
  });

  it("lets the SDK correct its clock from the answer's Date header, so its next call succeeds, as against AWS", async () => {
    const sts = client({ systemClockOffset: -20 * 60_000 });
    await expectStsError(assumeRole({}, sts), 'SignatureDoesNotMatch', 403, /^Signature expired/);
    expect(Math.abs(await sts.config.systemClockOffset)).toBeLessThan(5_000);
    await expect(assumeRole({}, sts)).resolves.toHaveProperty('Credentials');
  });

  it('answers an unsigned request with MissingAuthenticationToken in the awsQuery error format', async () => {
    const res = await fetch(fake.url, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: `Action=AssumeRole&Version=2011-06-15&RoleArn=${encodeURIComponent(ROLE)}&RoleSessionName=x1`,
    });
    expect(res.status).toBe(403);
    expect(res.headers.get('content-type')).toBe('text/xml');
    const requestId = res.headers.get('x-amzn-requestid');
    expect(await res.text()).toBe(
      '<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/"><Error><Type>Sender</Type>' +
        '<Code>MissingAuthenticationToken</Code><Message>Request is missing Authentication Token</Message></Error>' +
        `<RequestId>${requestId}</RequestId></ErrorResponse>`,
    );
  });
});

describe('the request, checked as AWS does', () => {
  it('refuses any action but AssumeRole', async () => {
    await expectStsError(client().send(new GetCallerIdentityCommand({})), 'InvalidAction', 400, /^Could not find operation GetCallerIdentity for version 2011-06-15$/);
  });

  it('refuses a role the caller may not assume with AccessDenied', async () => {
    const arn = 'arn:aws:iam::123456789012:role/admin';
    await recordsNothing(() =>
      expectStsError(assumeRole({ RoleArn: arn }), 'AccessDenied', 403, new RegExp(`^User: \\S+ is not authorized to perform: sts:AssumeRole on resource: ${arn}$`)),
    );
  });

  it.each([
    [899, /^1 validation error detected: Value '899' at 'durationSeconds' failed to satisfy constraint: Member must have value greater than or equal to 900$/],
    [3601, /^The requested DurationSeconds exceeds the MaxSessionDuration set for this role\.$/],
  ])('refuses DurationSeconds %i', async (duration, message) => {
    await recordsNothing(() => expectStsError(assumeRole({ DurationSeconds: duration }), 'ValidationError', 400, message));
  });

  it.each([
    ['a', /Member must have length greater than or equal to 2/],
    ['a b', /Member must satisfy regular expression pattern/],
    ['x'.repeat(65), /Member must have length less than or equal to 64/],
  ])('refuses RoleSessionName %j', async (name, message) => {
    await expectStsError(assumeRole({ RoleSessionName: name }), 'ValidationError', 400, message);
  });

  it('lists every violated constraint in one ValidationError', async () => {
    const e = await expectStsError(assumeRole({ RoleSessionName: 'a b', DurationSeconds: 60, SourceIdentity: 'x' }), 'ValidationError', 400);
    expect(e.message).toMatch(/^3 validation errors detected: /);
    expect(e.message).toContain("at 'roleSessionName'");
    expect(e.message).toContain("at 'durationSeconds'");
    expect(e.message).toContain("at 'sourceIdentity'");
  });
});

describe('the session policy', () => {
  /** A valid policy padded with a Sid to exactly `length` characters (compressible, so well within the packed budget). */
  const policyOfLength = (length: number) => {
    const text = (sid: string) => JSON.stringify({ Version: '2012-10-17', Statement: [{ Sid: sid, Effect: 'Allow', Action: 's3:GetObject', Resource: '*' }] });
    return text('A'.repeat(length - text('').length));
  };

  it('accepts 2048 characters and refuses 2049 with ValidationError (the parameter limit, as AWS answers it)', async () => {
    expect(policyOfLength(2048)).toHaveLength(2048);
    await expect(assumeRole({ Policy: policyOfLength(2048) })).resolves.toHaveProperty('PackedPolicySize');
    await recordsNothing(() =>
      expectStsError(
        assumeRole({ Policy: policyOfLength(2049) }),
        'ValidationError',
        400,
        /at 'policy' failed to satisfy constraint: Member must have length less than or equal to 2048$/,
      ),
    );
  });

  it('refuses characters outside tab, LF, CR and U+0020-U+00FF', async () => {
    await expectStsError(assumeRole({ Policy: JSON.stringify({ ...POLICY, Id: 'cost: 5€' }) }), 'ValidationError', 400, /at 'policy'.*regular expression pattern/);
  });

  it.each([
    ['invalid JSON', '{"Version": "2012-10-17", "Statement": [', /^The policy is not in the valid JSON format\.$/],
    ['no Statement', JSON.stringify({ Version: '2012-10-17' }), /^Syntax errors in policy\.$/],
    ['an empty Statement', JSON.stringify({ Version: '2012-10-17', Statement: [] }), /^Syntax errors in policy\.$/],
    ['a bad Version', JSON.stringify({ ...POLICY, Version: '2020-01-01' }), /valid version string/],
    ['Effect "allow"', JSON.stringify({ Statement: [{ Effect: 'allow', Action: '*', Resource: '*' }] }), /^Invalid effect: allow$/],
    ['no Action', JSON.stringify({ Statement: [{ Effect: 'Allow', Resource: '*' }] }), /must contain actions/],
    ['an Action without vendor', JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 'GetObject', Resource: '*' }] }), /prefaced by a vendor/],
    ['no Resource', JSON.stringify({ Statement: [{ Effect: 'Allow', Action: 's3:*' }] }), /must contain resources/],
    ['a Principal', JSON.stringify({ Statement: [{ Effect: 'Allow', Principal: '*', Action: 's3:*', Resource: '*' }] }), /should not specify a principal/],
  ])('refuses a policy with %s as MalformedPolicyDocument', async (_, policy, message) => {
    await recordsNothing(() => expectStsError(assumeRole({ Policy: policy }), 'MalformedPolicyDocumentException', 400, message));
  });

  it('gives the modelled exception its class name, with the wire code in Code', async () => {
    const e = await expectStsError(assumeRole({ Policy: '[]' }), 'MalformedPolicyDocumentException', 400);
    expect(e.Code).toBe('MalformedPolicyDocument');
    expect(e.$fault).toBe('client');
  });

  it('accepts what IAM accepts: no Version, a single Statement object, NotAction/NotResource, a Condition', async () => {
    const policy = { Statement: { Effect: 'Deny', NotAction: ['s3:Get*', 'kms:Decrypt'], NotResource: '*', Condition: { Bool: { 'aws:SecureTransport': 'false' } } } };
    await assumeRole({ Policy: JSON.stringify(policy) });
    expect(fake.calls.at(-1)!.policy).toEqual(policy);
  });
});

describe('SourceIdentity', () => {
  it.each([
    // AWS reserves the aws: prefix, but ':' is outside the pattern anyway, so the pattern refuses it.
    ['aws:x', /at 'sourceIdentity' failed to satisfy constraint: Member must satisfy regular expression pattern/],
    ['a b', /at 'sourceIdentity' failed to satisfy constraint: Member must satisfy regular expression pattern/],
    ['s'.repeat(65), /at 'sourceIdentity' failed to satisfy constraint: Member must have length less than or equal to 64/],
  ])('refuses %j with ValidationError', async (sourceIdentity, message) => {
    await recordsNothing(() => expectStsError(assumeRole({ SourceIdentity: sourceIdentity }), 'ValidationError', 400, message));
  });
});

describe('session tags', () => {
  const tags = (n: number) => Array.from({ length: n }, (_, i) => ({ Key: `k${i}`, Value: `v${i}` }));

  it('accepts 50 tags of maximal length when they pack small', async () => {
    const big = Array.from({ length: 50 }, (_, i) => ({ Key: `${i}`.padStart(128, 'k'), Value: 'v'.repeat(256) }));
    const out = await assumeRole({ Tags: big });
    expect(out.PackedPolicySize).toBeLessThanOrEqual(100);
    expect(fake.calls.at(-1)!.tags).toHaveLength(50);
  });

  it.each([
    ['51 tags', tags(51), /at 'tags' failed to satisfy constraint: Member must have length less than or equal to 50/],
    ['a 257-character value', [{ Key: 'k', Value: 'v'.repeat(257) }], /at 'tags\.1\.member\.value' failed to satisfy constraint: Member must have length less than or equal to 256/],
    ['a 129-character key', [{ Key: 'k'.repeat(129), Value: 'v' }], /at 'tags\.1\.member\.key' failed to satisfy constraint: Member must have length less than or equal to 128/],
    ['an empty key', [{ Key: '', Value: 'v' }], /at 'tags\.1\.member\.key' failed to satisfy constraint: Member must have length greater than or equal to 1/],
    ['a key with "*"', [...tags(1), { Key: 'team*', Value: 'v' }], /at 'tags\.2\.member\.key' failed to satisfy constraint: Member must satisfy regular expression pattern/],
    ['a value with "!"', [{ Key: 'k', Value: 'hi!' }], /at 'tags\.1\.member\.value' failed to satisfy constraint: Member must satisfy regular expression pattern/],
  ])('refuses %s with ValidationError', async (_, list, message) => {
    await recordsNothing(() => expectStsError(assumeRole({ Tags: list }), 'ValidationError', 400, message));
  });

  it.each([
    ['keys that differ only in case', { Tags: [{ Key: 'Team', Value: 'a' }, { Key: 'team', Value: 'b' }] }, /Duplicate tag keys/],
    ['an aws: key', { Tags: [{ Key: 'AWS:team', Value: 'a' }] }, /reserved prefix 'aws:'/],
    ['a transitive key that names no tag', { Tags: tags(2), TransitiveTagKeys: ['k0', 'k9'] }, /transitive tag key k9 is not among the session tags/],
  ])('refuses %s with InvalidParameterValue', async (_, input, message) => {
    await recordsNothing(() => expectStsError(assumeRole(input), 'InvalidParameterValue', 400, message));
  });

  it('matches transitive keys to tags regardless of case, and records them as sent', async () => {
    await assumeRole({ Tags: tags(2), TransitiveTagKeys: ['K1'] });
    expect(fake.calls.at(-1)!.transitiveTagKeys).toEqual(['K1']);
  });

  it('refuses policy and tags that do not pack into the budget with PackedPolicyTooLarge', async () => {
    // Varied values compress badly: ~50 x 64 random-looking characters.
    const varied = Array.from({ length: 50 }, (_, i) => ({ Key: `k${i}`, Value: createHash('sha256').update(String(i)).digest('hex') }));
    const e = await expectStsError(assumeRole({ Tags: varied }), 'PackedPolicyTooLargeException', 400, /^Packed policy consumes \d{3}% of allotted space/);
    expect(e.Code).toBe('PackedPolicyTooLarge');
    expect(Number(/(\d+)%/.exec(e.message)![1])).toBeGreaterThan(100);
  });
});

describe('failNext', () => {
  it.each([
    ['RegionDisabledException', 403, 'STS is not activated in this region for account:123456789012.'],
    ['ExpiredTokenException', 400, 'The security token included in the request is expired'],
    ['InternalFailure', 500, undefined],
  ] as const)('makes the next valid call fail with %s %i', async (code, status, message) => {
    fake.failNext(code, status, message);
    await recordsNothing(() =>
      expectStsError(assumeRole(), code, status, message === undefined ? /^InternalFailure/ : new RegExp(`^${message.replace(/\./g, '\\.')}$`)),
    );
    await expect(assumeRole()).resolves.toHaveProperty('Credentials');
  });

  it('gives a server fault the Receiver type, and the SDK marks it as a server fault', async () => {
    fake.failNext('ServiceUnavailable', 503, 'try later');
    const e = await expectStsError(assumeRole(), 'ServiceUnavailable', 503, /^try later$/);
    expect(e.$fault).toBe('server');
  });

  it('lets a request AWS would refuse anyway keep its own error and waits for the next valid one', async () => {
    fake.failNext('RegionDisabledException', 403);
    await expectStsError(assumeRole({ DurationSeconds: 60 }), 'ValidationError', 400);
    await expectStsError(assumeRole(), 'RegionDisabledException', 403);
    await expect(assumeRole()).resolves.toHaveProperty('Credentials');
  });

  it('is retried by the SDK when it is a 500, so with default retries the next attempt succeeds', async () => {
    const before = fake.calls.length;
    fake.failNext('InternalFailure', 500);
    const out = await assumeRole({}, client({ maxAttempts: 3 }));
    expect(out.$metadata.attempts).toBe(2);
    expect(fake.calls.length).toBe(before + 1);
  });
});
