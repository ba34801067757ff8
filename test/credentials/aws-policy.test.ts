/**
 * The AssumeRole request Baton derives from a token (src/credentials/aws-policy.ts), on real tokens
 * narrowed by real attenuation: the exact session policy for a chain of narrowing tokens, the time
 * condition at the token's expiry, names and tags within AWS's limits, and the refusals.
 */
import { describe, expect, it } from 'vitest';
import { AwsRoleSchema } from '../../src/config/schema.ts';
import { awsName, awsSessionRequest } from '../../src/credentials/aws-policy.ts';
import { attenuate } from '../../src/token/attenuate.ts';
import { effectiveRights, readLineage } from '../../src/token/lineage.ts';
import { decodeToken } from '../../src/token/wire/index.ts';
import { appendDatalog, NOW, rootToken } from '../token/fixtures.ts';

const role = AwsRoleSchema.parse({
  roleArn: 'arn:aws:iam::123456789012:role/baton-reports',
  region: 'eu-west-1',
  resources: ['s3:reports-bucket/', 'dynamodb:orders'],
});
const EXPIRY = new Date(NOW.getTime() + 3600_000).toISOString().replace('.000Z', 'Z');

function callerOf(token: string) {
  const decoded = decodeToken(token);
  const lineage = readLineage(decoded);
  return { effective: effectiveRights(decoded), lineage, tokenId: lineage[0]?.tokenId };
}
const plan = (token: string, at = NOW) => awsSessionRequest('reports', role, callerOf(token), at);
const until = (at = EXPIRY) => ({ DateLessThan: { 'aws:CurrentTime': at } });

const parent = rootToken([
  { resource: 'aws:reports/s3:reports-bucket/', operation: 'read' },
  { resource: 'aws:reports/s3:reports-bucket/', operation: 'write' },
  { resource: 'aws:reports/dynamodb:orders', operation: 'read' },
  { resource: 'pg:appdb/public.*', operation: 'read' },
]);

describe('the session policy is the token’s rights on the role and nothing else', () => {
  it('the parent: the whole bucket read+write, the table read; pg rights do not appear', () => {
    const p = plan(parent);
    expect(p.policy).toEqual({
      Version: '2012-10-17',
      Statement: [
        { Effect: 'Allow', Action: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:DescribeTable', 'dynamodb:ConditionCheckItem'], Resource: ['arn:aws:dynamodb:eu-west-1:123456789012:table/orders'], Condition: until() },
        { Effect: 'Allow', Action: ['dynamodb:Query', 'dynamodb:Scan'], Resource: ['arn:aws:dynamodb:eu-west-1:123456789012:table/orders/index/*'], Condition: until() },
        { Effect: 'Allow', Action: ['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectTagging'], Resource: ['arn:aws:s3:::reports-bucket/*'], Condition: until() },
        { Effect: 'Allow', Action: ['s3:ListBucket', 's3:GetBucketLocation'], Resource: ['arn:aws:s3:::reports-bucket'], Condition: until() },
        { Effect: 'Allow', Action: ['s3:PutObject', 's3:PutObjectTagging', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], Resource: ['arn:aws:s3:::reports-bucket/*'], Condition: until() },
        { Effect: 'Allow', Action: ['s3:ListBucketMultipartUploads'], Resource: ['arn:aws:s3:::reports-bucket'], Condition: until() },
      ],
    });
    expect(p.policyText).toBe(JSON.stringify(p.policy));
    expect(p.durationSeconds).toBe(3600);
  });

  it('a chain of narrowing tokens: child read-only under 2026/ for 10 minutes, grandchild one key for 5', () => {
    const child = attenuate(parent, { resources: ['aws:reports/s3:reports-bucket/2026/'], operations: ['read'], ttl: '10m', delegateTo: 'helper-7', now: NOW });
    const at10 = new Date(NOW.getTime() + 600_000).toISOString().replace('.000Z', 'Z');
    expect(plan(child).policy.Statement).toEqual([
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectTagging'], Resource: ['arn:aws:s3:::reports-bucket/2026/*'], Condition: until(at10) },
      { Effect: 'Allow', Action: ['s3:ListBucket', 's3:GetBucketLocation'], Resource: ['arn:aws:s3:::reports-bucket'], Condition: { StringLike: { 's3:prefix': ['2026/', '2026/*'] }, ...until(at10) } },
    ]);
    // STS's floor is 900 s: the time condition, not the duration, ends a 10-minute token's credentials
    expect(plan(child).durationSeconds).toBe(900);
    expect(plan(child).expiresAt.toISOString()).toBe(new Date(NOW.getTime() + 600_000).toISOString());

    const grandchild = attenuate(child, { resources: ['aws:reports/s3:reports-bucket/2026/q1.csv'], ttl: '5m', delegateTo: 'sub-9', purpose: 'quarterly report', now: NOW });
    const at5 = new Date(NOW.getTime() + 300_000).toISOString().replace('.000Z', 'Z');
    const g = plan(grandchild);
    expect(g.policy.Statement).toEqual([
      { Effect: 'Allow', Action: ['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectTagging'], Resource: ['arn:aws:s3:::reports-bucket/2026/q1.csv'], Condition: until(at5) },
      { Effect: 'Allow', Action: ['s3:ListBucket', 's3:GetBucketLocation'], Resource: ['arn:aws:s3:::reports-bucket'], Condition: { StringEquals: { 's3:prefix': ['2026/q1.csv'] }, ...until(at5) } },
    ]);
    expect(g.roleSessionName).toBe('sub-9');
    expect(g.sourceIdentity).toBe('alice');
    expect(g.tags).toEqual([
      { Key: 'baton:token-id', Value: expect.stringMatching(/^tok_/) },
      { Key: 'baton:subject', Value: 'alice' },
      { Key: 'baton:agent', Value: 'planner' },
      { Key: 'baton:depth', Value: '2' },
      { Key: 'baton:delegates', Value: 'helper-7/sub-9' },
      { Key: 'baton:purpose', Value: 'quarterly report' },
    ]);
    expect(g.transitiveTagKeys).toEqual(['baton:token-id', 'baton:subject']);
    expect(g.lineageCut).toBeUndefined();
  });

  it('write and delete on a table add BatchWriteItem; a star prefix and IAM wildcards are spelled literally', () => {
    const t = rootToken([
      { resource: 'aws:reports/dynamodb:orders', operation: 'write' },
      { resource: 'aws:reports/dynamodb:orders', operation: 'delete' },
      { resource: 'aws:reports/s3:reports-bucket/a?b$c*', operation: 'read' },
    ]);
    const actions = plan(t).policy.Statement.flatMap((s) => s.Action);
    expect(actions).toContain('dynamodb:BatchWriteItem');
    const objects = plan(t).policy.Statement.find((s) => s.Action.includes('s3:GetObject'))!;
    expect(objects.Resource).toEqual(['arn:aws:s3:::reports-bucket/a${?}b${$}c*']);
    const onlyWrite = rootToken([{ resource: 'aws:reports/dynamodb:orders', operation: 'write' }]);
    expect(plan(onlyWrite).policy.Statement.flatMap((s) => s.Action)).not.toContain('dynamodb:BatchWriteItem');
  });

  it('an admin "*" right becomes the role’s served resources with every action there (assume)', () => {
    const admin = rootToken([{ resource: '*', operation: '*' }]);
    const st = plan(admin).policy.Statement;
    expect(st.map((s) => [s.Action, s.Resource])).toEqual([
      [['dynamodb:*'], ['arn:aws:dynamodb:eu-west-1:123456789012:table/orders', 'arn:aws:dynamodb:eu-west-1:123456789012:table/orders/index/*']],
      [['s3:*'], ['arn:aws:s3:::reports-bucket/*', 'arn:aws:s3:::reports-bucket']],
    ]);
  });
});

describe('refusals and limits', () => {
  it('nothing on the role → FORBIDDEN naming what the role serves; other buckets never match', () => {
    const other = rootToken([{ resource: 'aws:reports/s3:other-bucket/', operation: 'read' }, { resource: 'aws:billing/s3:reports-bucket/', operation: 'read' }]);
    expect(() => plan(other)).toThrow(expect.objectContaining({ code: 'BATON_ERR_FORBIDDEN', message: expect.stringContaining('aws:reports/s3:reports-bucket/') }));
  });

  it('checks Baton cannot translate (opaque Datalog) are never approximated into a policy', () => {
    const odd = appendDatalog(parent, 'check if time($t), $t < 2030-01-01T00:00:00Z;');
    expect(() => plan(odd)).toThrow(expect.objectContaining({ code: 'BATON_ERR_CREDENTIALS_UNREPRESENTABLE', message: expect.stringMatching(/link 1/) }));
  });

  it('the duration is the token’s remaining lifetime within STS’s floor and the role’s maximum', () => {
    const at = (seconds: number) => new Date(NOW.getTime() + 3600_000 - seconds * 1000);
    expect(plan(parent, at(1800)).durationSeconds).toBe(1800);
    expect(plan(parent, at(60)).durationSeconds).toBe(900);
    const short = AwsRoleSchema.parse({ ...role, maxSessionSeconds: 1200 });
    expect(awsSessionRequest('reports', short, callerOf(parent), NOW).durationSeconds).toBe(1200);
  });

  it('an expired token, and a policy over 2,048 characters, are refused', () => {
    expect(() => plan(parent, new Date(NOW.getTime() + 3601_000))).toThrow(expect.objectContaining({ code: 'BATON_ERR_TOKEN_EXPIRED' }));
    const many = rootToken(Array.from({ length: 40 }, (_, i) => ({ resource: `aws:reports/s3:reports-bucket/department-${i}/reports/`, operation: 'read' })));
    expect(() => plan(many)).toThrow(expect.objectContaining({ code: 'BATON_ERR_CREDENTIALS_UNREPRESENTABLE', message: expect.stringMatching(/AWS allows 2048/) }));
  });

  it('a long chain is cut from the middle in the delegates tag, and says so', () => {
    let t = parent;
    for (let i = 1; i <= 12; i++) t = attenuate(t, { delegateTo: `sub-agent-number-${i}-${'x'.repeat(20)}`, now: NOW });
    const p = plan(t);
    const delegates = p.tags.find((x) => x.Key === 'baton:delegates')!.Value;
    expect(delegates.length).toBeLessThanOrEqual(256);
    expect(delegates.startsWith('sub-agent-number-1-')).toBe(true);
    expect(delegates.endsWith('sub-agent-number-12-' + 'x'.repeat(20))).toBe(true);
    expect(delegates).toContain('/../');
    expect(p.lineageCut).toMatch(/^delegates 2-\d+ of 12 omitted/);
    expect(p.tags.find((x) => x.Key === 'baton:lineage-cut')?.Value).toBe(p.lineageCut);
  });

  it('names AWS would refuse are made valid without merging two names', () => {
    expect(awsName('alice@example.com')).toBe('alice@example.com');
    const a = awsName('alice smith');
    const b = awsName('alice_smith');
    expect(a).toMatch(/^alice_smith\.[0-9a-f]{8}$/);
    expect(b).toBe('alice_smith');
    expect(awsName('x')).toMatch(/^x\.[0-9a-f]{8}$/);
    expect(awsName('y'.repeat(100))).toHaveLength(64);
    for (const n of [a, awsName('aws:root'), awsName('ü'.repeat(80))]) expect(n).toMatch(/^[\w+=,.@-]{2,64}$/);
  });
});
