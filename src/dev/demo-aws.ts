/**
 * The demo AWS role of `baton dev` (issue 14): usable as soon as `AWS_ENDPOINT_URL_STS` and AWS
 * credentials are set (MinIO, LocalStack, or a real account with this role). The seeded dev policy
 * grants engineers `read` on `aws:reports/s3:reports-bucket/`.
 */
import { AwsRoleSchema } from '../config/schema.ts';
import type { AwsRoleConfig } from '../credentials/aws-policy.ts';

export const DEV_AWS_ROLES: Readonly<Record<string, AwsRoleConfig>> = {
  reports: AwsRoleSchema.parse({ roleArn: 'arn:aws:iam::000000000000:role/baton-reports', region: 'us-east-1', resources: ['s3:reports-bucket/'] }),
};
