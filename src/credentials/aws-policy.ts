/**
 * What Baton asks AWS STS for when a token holder wants native credentials (issue 14): the inline
 * session policy derived from the token's effective rights on one configured role and nothing else,
 * the duration, SourceIdentity, RoleSessionName and session tags — all within AWS's limits, or a
 * clear refusal. Pure: no network, no clock of its own; src/credentials/aws.ts calls STS.
 *
 * The session policy is an upper bound inside the role's own policies (AWS intersects them), so it
 * only ever narrows: every statement carries `DateLessThan aws:CurrentTime = <token expiry>`, which
 * ends the credentials with the token even though STS issues at least 900 s.
 */
import { createHash } from 'node:crypto';
import type { z } from 'zod';
import type { AwsRoleSchema } from '../config/schema.ts';
import { BatonError } from '../errors.ts';
import type { EffectiveRights, LineageLink } from '../token/lineage.ts';
import { covers } from '../token/vocabulary.ts';

export type AwsRoleConfig = z.output<typeof AwsRoleSchema>;

/** One right of the token on the role, in the role's own spelling (`s3:reports-bucket/2026/`, `read`). */
export interface AwsGrant {
  resource: string;
  operation: 'read' | 'write' | 'delete' | 'assume';
}

export interface AwsSessionRequest {
  roleArn: string;
  roleSessionName: string;
  sourceIdentity: string;
  durationSeconds: number;
  /** The session policy as sent (minified JSON) and as an object. */
  policyText: string;
  policy: IamPolicy;
  tags: Array<{ Key: string; Value: string }>;
  transitiveTagKeys: string[];
  /** The token's expiry: the credentials stop working then, whatever STS says. */
  expiresAt: Date;
  grants: AwsGrant[];
  /** What of the lineage did not fit into the session tags, in words; absent when all did. */
  lineageCut?: string;
}

interface IamStatement {
  Effect: 'Allow';
  Action: string[];
  Resource: string[];
  Condition: Record<string, Record<string, string | string[]>>;
}
export interface IamPolicy {
  Version: '2012-10-17';
  Statement: IamStatement[];
}

/** AWS's limits (IAM and STS quotas). */
export const AWS_LIMITS = {
  policyChars: 2048,
  minDurationSeconds: 900,
  tagValueChars: 256,
  tags: 50,
} as const;

const ALL_OPERATIONS: AwsGrant['operation'][] = ['read', 'write', 'delete', 'assume'];

/**
 * The AssumeRole request for `caller` on role `name`.
 *
 * @throws BatonError BATON_ERR_FORBIDDEN (nothing on this role), BATON_ERR_CREDENTIALS_UNREPRESENTABLE
 *   (checks Baton cannot translate, no expiry, a policy over AWS's size limit), BATON_ERR_TOKEN_EXPIRED
 * @example
 * awsSessionRequest('reports', role, { effective, lineage, tokenId }, new Date())
 * // { roleArn, durationSeconds: 900, policy: { Statement: [{ Action: ['s3:GetObject', …], … }] }, … }
 */
export function awsSessionRequest(
  name: string,
  role: AwsRoleConfig,
  caller: { effective: EffectiveRights; lineage: readonly LineageLink[]; tokenId: string | undefined },
  now: Date,
): AwsSessionRequest {
  if (caller.effective.approximate) {
    const link = caller.lineage.find((l) => l.opaque?.length);
    throw new BatonError('BATON_ERR_CREDENTIALS_UNREPRESENTABLE', `the token carries checks Baton cannot translate into an IAM policy (link ${link?.depth ?? '?'}); mint from a token without them`);
  }
  if (!caller.effective.expiresAt) throw new BatonError('BATON_ERR_CREDENTIALS_UNREPRESENTABLE', 'the token has no expiry; native credentials must end with it');
  const expiresAt = new Date(caller.effective.expiresAt);
  const remainingMs = expiresAt.getTime() - now.getTime();
  if (!(remainingMs > 0)) throw new BatonError('BATON_ERR_TOKEN_EXPIRED', 'the token has expired');

  const grants = grantsOnRole(name, role, caller.effective);
  if (grants.length === 0) {
    throw new BatonError('BATON_ERR_FORBIDDEN', `the token grants nothing on aws:${name}/ (the role serves ${role.resources.map((r) => `aws:${name}/${r}`).join(', ')})`);
  }
  const policy = sessionPolicy(grants, role, expiresAt);
  const policyText = JSON.stringify(policy);
  if (policyText.length > AWS_LIMITS.policyChars) {
    throw new BatonError(
      'BATON_ERR_CREDENTIALS_UNREPRESENTABLE',
      `the token's rights on aws:${name}/ need a ${policyText.length}-character session policy; AWS allows ${AWS_LIMITS.policyChars}: narrow the token to fewer resources`,
    );
  }
  const root = caller.lineage[0];
  const subject = root?.subject ?? 'unknown';
  const delegates = caller.lineage.slice(1).map((l) => l.delegatedTo ?? '?');
  const last = delegates.at(-1) ?? root?.agent ?? subject;
  const { tags, lineageCut } = sessionTags(caller, delegates);
  return {
    roleArn: role.roleArn,
    roleSessionName: awsName(last),
    sourceIdentity: awsName(subject),
    // STS's floor is 900 s; the policy's time condition still ends them with the token
    durationSeconds: Math.min(role.maxSessionSeconds, Math.max(AWS_LIMITS.minDurationSeconds, Math.ceil(remainingMs / 1000))),
    policyText,
    policy,
    tags,
    transitiveTagKeys: tags.map((t) => t.Key).filter((k) => k === 'baton:token-id' || k === 'baton:subject'),
    expiresAt,
    grants,
    ...(lineageCut ? { lineageCut } : {}),
  };
}

/** The token's effective rights cut down to the role's configured resources, in the role's spelling. */
export function grantsOnRole(name: string, role: AwsRoleConfig, effective: EffectiveRights): AwsGrant[] {
  const prefix = `aws:${name}/`;
  const out = new Map<string, AwsGrant>();
  for (const right of effective.rights) {
    const operations = right.operation === '*' ? ['assume' as const] : ALL_OPERATIONS.filter((o) => o === right.operation);
    if (operations.length === 0) continue;
    for (const served of role.resources) {
      const full = `${prefix}${served}`;
      // the narrower of the two patterns, when one contains the other
      const both = covers(right.resource, full) ? full : covers(full, right.resource) ? right.resource : undefined;
      if (!both) continue;
      for (const operation of operations) out.set(`${both}\u0000${operation}`, { resource: both.slice(prefix.length), operation });
    }
  }
  return [...out.values()].sort((a, b) => (a.resource === b.resource ? a.operation.localeCompare(b.operation) : a.resource.localeCompare(b.resource)));
}

/** IAM statements for the grants: one per (actions, condition) shape, resources merged. */
export function sessionPolicy(grants: readonly AwsGrant[], role: AwsRoleConfig, expiresAt: Date): IamPolicy {
  const until = { DateLessThan: { 'aws:CurrentTime': expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z') } };
  const statements = new Map<string, IamStatement>();
  const add = (actions: string[], resource: string, condition: Record<string, Record<string, string | string[]>> = {}) => {
    const cond = { ...condition, ...until };
    const key = JSON.stringify([actions, cond]);
    const s = statements.get(key);
    if (s) {
      if (!s.Resource.includes(resource)) s.Resource.push(resource);
    } else statements.set(key, { Effect: 'Allow', Action: actions, Resource: [resource], Condition: cond });
  };
  const partition = role.roleArn.split(':')[1]!;
  const account = role.roleArn.split(':')[4]!;
  for (const { resource, operation } of grants) {
    if (resource.startsWith('s3:')) s3Statements(resource.slice(3), operation, partition, add);
    else dynamoStatements(resource.slice('dynamodb:'.length), operation, grants, `arn:${partition}:dynamodb:${role.region}:${account}:table/`, add);
  }
  return { Version: '2012-10-17', Statement: [...statements.values()] };
}

type Add = (actions: string[], resource: string, condition?: Record<string, Record<string, string | string[]>>) => void;

const S3_OBJECT_ACTIONS: Record<AwsGrant['operation'], string[]> = {
  read: ['s3:GetObject', 's3:GetObjectVersion', 's3:GetObjectTagging'],
  write: ['s3:PutObject', 's3:PutObjectTagging', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'],
  delete: ['s3:DeleteObject', 's3:DeleteObjectVersion'],
  assume: ['s3:*'],
};

/**
 * `bucket/` → the whole bucket; `bucket/pre/` → keys under `pre/`; `bucket/pre*` → keys starting
 * `pre`; `bucket/key` → that key. Listing is allowed only with an `s3:prefix` inside the grant.
 */
function s3Statements(rest: string, operation: AwsGrant['operation'], partition: string, add: Add): void {
  const slash = rest.indexOf('/');
  const bucket = rest.slice(0, slash);
  const key = rest.slice(slash + 1);
  const bucketArn = `arn:${partition}:s3:::${bucket}`;
  const wholeBucket = key === '';
  const prefixMatch = key.endsWith('*') ? `${iamLiteral(key.slice(0, -1))}*` : key.endsWith('/') ? `${iamLiteral(key)}*` : undefined;
  add(S3_OBJECT_ACTIONS[operation], `${bucketArn}/${wholeBucket ? '*' : (prefixMatch ?? iamLiteral(key))}`);
  if (operation === 'assume' && wholeBucket) return add(['s3:*'], bucketArn);
  const listing = operation === 'write' ? ['s3:ListBucketMultipartUploads'] : operation === 'delete' ? [] : ['s3:ListBucket', 's3:GetBucketLocation'];
  if (listing.length === 0) return;
  if (wholeBucket) return add(listing, bucketArn);
  const prefixes = key.endsWith('/') ? [iamLiteral(key), prefixMatch!] : prefixMatch ? [prefixMatch] : [iamLiteral(key)];
  add(listing, bucketArn, prefixMatch ? { StringLike: { 's3:prefix': prefixes } } : { StringEquals: { 's3:prefix': prefixes } });
}

const DYNAMO_ACTIONS: Record<AwsGrant['operation'], string[]> = {
  read: ['dynamodb:GetItem', 'dynamodb:BatchGetItem', 'dynamodb:Query', 'dynamodb:Scan', 'dynamodb:DescribeTable', 'dynamodb:ConditionCheckItem'],
  write: ['dynamodb:PutItem', 'dynamodb:UpdateItem'],
  delete: ['dynamodb:DeleteItem'],
  assume: ['dynamodb:*'],
};

function dynamoStatements(table: string, operation: AwsGrant['operation'], all: readonly AwsGrant[], tableArnPrefix: string, add: Add): void {
  const arn = `${tableArnPrefix}${table.endsWith('*') ? `${iamLiteral(table.slice(0, -1))}*` : iamLiteral(table)}`;
  add(DYNAMO_ACTIONS[operation], arn);
  if (operation === 'read' || operation === 'assume') add(operation === 'read' ? ['dynamodb:Query', 'dynamodb:Scan'] : ['dynamodb:*'], `${arn}/index/*`);
  // BatchWriteItem both puts and deletes: only for a token that may do both on this table
  const has = (op: AwsGrant['operation']) => all.some((g) => g.resource === `dynamodb:${table}` && g.operation === op);
  if (operation === 'write' && has('delete')) add(['dynamodb:BatchWriteItem'], arn);
}

/** IAM treats `*`, `?` and `$` in ARNs and StringLike values as syntax: policy variables spell them literally. */
function iamLiteral(text: string): string {
  return text.replace(/[*?$]/g, (c) => '${' + c + '}');
}

/**
 * A name AWS accepts for RoleSessionName / SourceIdentity: 2–64 of `[\w+=,.@-]`. Other characters
 * become `_`, and a changed or shortened name gets a hash of the original so two names never merge.
 */
export function awsName(name: string): string {
  const clean = name.replace(/[^\w+=,.@-]/g, '_');
  if (clean === name && clean.length >= 2 && clean.length <= 64) return clean;
  const tag = createHash('sha256').update(name, 'utf8').digest('hex').slice(0, 8);
  return `${clean.slice(0, 55)}.${tag}`.replace(/^\./, '_.');
}

/** A session tag value: AWS's charset (letters, digits, spaces, `_.:/=+-@`), at most 256 characters. */
function tagValue(text: string): string {
  return text.replace(/[^\p{L}\p{Z}\p{N}_.:/=+\-@]/gu, '_').slice(0, AWS_LIMITS.tagValueChars);
}

/**
 * Token id, subject, agent, depth, the delegates (`helper-1/helper-7`) and the last link's purpose.
 * Delegates that do not fit 256 characters are cut from the middle (first and last kept), and
 * `baton:lineage-cut` says so: CloudTrail shows the session's tags, the audit trail has everything.
 */
function sessionTags(caller: { lineage: readonly LineageLink[]; tokenId: string | undefined }, delegates: string[]): { tags: Array<{ Key: string; Value: string }>; lineageCut?: string } {
  const root = caller.lineage[0];
  const tags: Array<{ Key: string; Value: string }> = [];
  const put = (Key: string, value: string | undefined) => {
    if (value) tags.push({ Key, Value: tagValue(value) });
  };
  put('baton:token-id', caller.tokenId);
  put('baton:subject', root?.subject);
  put('baton:agent', root?.agent);
  put('baton:depth', String(caller.lineage.length - 1));
  let lineageCut: string | undefined;
  if (delegates.length > 0) {
    const names = delegates.map(tagValue);
    // drop delegates 2, 3, … (first and last stay) until the chain fits one tag value
    const render = (dropped: number) => (dropped === 0 ? names.join('/') : [names[0], '..', ...names.slice(1 + dropped)].join('/'));
    let dropped = 0;
    while (render(dropped).length > AWS_LIMITS.tagValueChars && dropped < names.length - 2) dropped++;
    const value = render(dropped);
    if (dropped > 0) lineageCut = `delegates 2-${dropped + 1} of ${names.length} omitted from baton:delegates`;
    if (value.length > AWS_LIMITS.tagValueChars) lineageCut = `baton:delegates cut at ${AWS_LIMITS.tagValueChars} characters`;
    put('baton:delegates', value);
  }
  put('baton:purpose', caller.lineage.at(-1)?.purpose);
  if (lineageCut) put('baton:lineage-cut', lineageCut);
  return { tags, ...(lineageCut ? { lineageCut } : {}) };
}
