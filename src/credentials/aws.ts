/**
 * AWS credentials for a token holder: AssumeRole through the real `@aws-sdk/client-sts` with the
 * session request of aws-policy.ts. The broker's own AWS identity comes from the SDK's standard
 * provider chain (env, profile, web identity, instance/task role); STS-compatible endpoints (MinIO,
 * LocalStack, a VPC endpoint) through the SDK's standard `AWS_ENDPOINT_URL_STS`. Every failure leaves
 * as a BatonError that says what to fix.
 */
import { AssumeRoleCommand, STSClient } from '@aws-sdk/client-sts';
import { BatonError } from '../errors.ts';
import { type AwsRoleConfig, type AwsSessionRequest, awsSessionRequest } from './aws-policy.ts';

/** The credentials as the API returns them (snake_case, like the token endpoint). */
export interface AwsCredentials {
  access_key_id: string;
  secret_access_key: string;
  session_token: string;
  /** When they stop working: the earlier of STS's expiration and the token's (the policy's time condition). */
  expiration: string;
  policy: AwsSessionRequest['policy'];
  role_arn: string;
  role_session_name: string;
  source_identity: string;
  /** What of the lineage did not fit the session tags (the audit trail has all of it). */
  lineage_cut?: string;
}

export type AwsCaller = Parameters<typeof awsSessionRequest>[2];

export interface AwsIssuer {
  /** The session request for a role (throws the refusal: unknown role, nothing granted, too large …). */
  plan(role: string, caller: AwsCaller, now: Date): AwsSessionRequest;
  /** AssumeRole with the plan; retries once with the minimal tags when AWS finds them too large. */
  assume(plan: AwsSessionRequest, role: string): Promise<AwsCredentials>;
}

export function createAwsIssuer(roles: Readonly<Record<string, AwsRoleConfig>>): AwsIssuer {
  const clients = new Map<string, STSClient>();
  const clientFor = (region: string) => {
    let client = clients.get(region);
    if (!client) {
      // two attempts: a throttled STS gets one retry, a caller never waits through three
      client = new STSClient({ region, maxAttempts: 2 });
      clients.set(region, client);
    }
    return client;
  };
  const roleOf = (name: string): AwsRoleConfig => {
    const role = roles[name];
    if (role) return role;
    const names = Object.keys(roles);
    if (names.length === 0) throw new BatonError('BATON_ERR_CREDENTIALS_UNAVAILABLE', 'AWS credentials are not configured on this broker: add aws.roles.<name> (roleArn, region, resources)');
    throw new BatonError('BATON_ERR_NOT_FOUND', `no AWS role named "${name.slice(0, 64)}" (configured: ${names.join(', ')})`);
  };

  return {
    plan: (name, caller, now) => awsSessionRequest(name, roleOf(name), caller, now),
    async assume(plan, name) {
      const role = roleOf(name);
      const send = (tags: AwsSessionRequest['tags']) =>
        clientFor(role.region).send(
          new AssumeRoleCommand({
            RoleArn: plan.roleArn,
            RoleSessionName: plan.roleSessionName,
            DurationSeconds: plan.durationSeconds,
            Policy: plan.policyText,
            SourceIdentity: plan.sourceIdentity,
            Tags: tags,
            TransitiveTagKeys: plan.transitiveTagKeys.filter((k) => tags.some((t) => t.Key === k)),
            ...(role.externalId ? { ExternalId: role.externalId } : {}),
          }),
        );
      let lineageCut = plan.lineageCut;
      let out;
      try {
        out = await send(plan.tags);
      } catch (err) {
        if (errorName(err) !== 'PackedPolicyTooLarge') throw stsError(err, plan.roleArn);
        // policy + tags are packed together: keep the tags that identify the chain, drop the rest
        const minimal = plan.tags.filter((t) => t.Key === 'baton:token-id' || t.Key === 'baton:subject');
        lineageCut = `session tags cut to baton:token-id and baton:subject (AWS: PackedPolicyTooLarge)`;
        try {
          out = await send(minimal);
        } catch (again) {
          if (errorName(again) === 'PackedPolicyTooLarge') {
            throw new BatonError('BATON_ERR_CREDENTIALS_UNREPRESENTABLE', 'the session policy is too large for AWS even without lineage tags: narrow the token to fewer resources');
          }
          throw stsError(again, plan.roleArn);
        }
      }
      const c = out.Credentials;
      if (!c?.AccessKeyId || !c.SecretAccessKey || !c.SessionToken || !c.Expiration) {
        throw new BatonError('BATON_ERR_CREDENTIALS_REFUSED', 'AWS STS answered AssumeRole without credentials');
      }
      const expiration = c.Expiration < plan.expiresAt ? c.Expiration : plan.expiresAt;
      return {
        access_key_id: c.AccessKeyId,
        secret_access_key: c.SecretAccessKey,
        session_token: c.SessionToken,
        expiration: expiration.toISOString(),
        policy: plan.policy,
        role_arn: plan.roleArn,
        role_session_name: plan.roleSessionName,
        source_identity: plan.sourceIdentity,
        ...(lineageCut ? { lineage_cut: lineageCut } : {}),
      };
    },
  };
}

/** STS's error code: the SDK names modelled errors by class (`PackedPolicyTooLargeException`), others by code. */
function errorName(err: unknown): string {
  if (!(err instanceof Error)) return '';
  const code = (err as { Code?: unknown }).Code;
  return (typeof code === 'string' ? code : err.name).replace(/Exception$/, '');
}

/** The broker's own identity problems, STS's refusals and the network, each with what to fix. */
function stsError(err: unknown, roleArn: string): BatonError {
  const name = errorName(err);
  const message = err instanceof Error ? err.message.slice(0, 300) : String(err);
  const status = (err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
  const detail = `${name}: ${message}`;
  if (name === 'CredentialsProviderError' || /Could not load credentials/i.test(message)) {
    return new BatonError('BATON_ERR_CREDENTIALS_UNAVAILABLE', 'the broker has no AWS credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AWS_PROFILE, or run with an instance, task or web-identity role', { detail });
  }
  if (['InvalidClientTokenId', 'SignatureDoesNotMatch', 'ExpiredToken', 'IncompleteSignature', 'UnrecognizedClient'].includes(name)) {
    return new BatonError('BATON_ERR_CREDENTIALS_UNAVAILABLE', `AWS STS refused the broker's own AWS credentials (${name})`, { detail });
  }
  if (name === 'RegionDisabled') {
    return new BatonError('BATON_ERR_CREDENTIALS_UNAVAILABLE', 'STS is not activated in the role\'s region (RegionDisabledException): activate it in IAM account settings', { detail });
  }
  if (name === 'AccessDenied') {
    return new BatonError('BATON_ERR_CREDENTIALS_REFUSED', `AWS STS refused AssumeRole on ${roleArn} (AccessDenied): the role must trust the broker's identity for sts:AssumeRole, sts:TagSession and sts:SetSourceIdentity`, { detail });
  }
  if (status !== undefined && status >= 400 && status < 500) {
    return new BatonError('BATON_ERR_CREDENTIALS_REFUSED', `AWS STS refused AssumeRole on ${roleArn} (${name || status})`, { detail });
  }
  return new BatonError('BATON_ERR_CREDENTIALS_UNAVAILABLE', `AWS STS is unavailable (${name || 'no answer'}); retry later`, { detail });
}
