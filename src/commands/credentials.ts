/** `baton credentials aws|postgres` — native credentials scoped from your Baton token (issue 14). */
import type { AwsCredentials } from '../credentials/aws.ts';
import type { PgCredentials } from '../credentials/postgres-service.ts';
import { brokerUrl, callBroker } from './broker-client.ts';
import { defineCommand, output, UsageError } from './command.ts';
import { terminalText as t } from './terminal-text.ts';
import { tokenFor } from './token-cache.ts';

const USAGE = `usage: baton credentials aws --role NAME [--env | --json] [--broker URL]
       baton credentials postgres --upstream NAME [--json] [--broker URL]
  Native credentials no wider than your token (BATON_TOKEN, else the cached login token) and ending
  with it, from the broker's POST /v1/credentials/<kind>.
  aws        default: shell lines for eval, with a comment saying what they are
             (eval "$(baton credentials aws --role reports)"); --env: the export lines only
  postgres   the connection URL of an ephemeral role (psql "$(baton credentials postgres --upstream appdb)");
             what the role does not hold, and why, goes to stderr
  --json     the broker's answer`;

export const credentials = defineCommand(
  'print native credentials scoped from your token (aws, postgres)',
  {
    name: 'credentials',
    usage: USAGE,
    options: { role: { type: 'string' }, upstream: { type: 'string' }, env: { type: 'boolean' }, broker: { type: 'string' } },
    positionals: { max: 1 },
    subcommands: ['aws', 'postgres'],
  },
  async ({ values, positionals }) => {
    const kind = positionals[0];
    if (kind === 'postgres') return postgres(values);
    if (kind !== 'aws') throw new UsageError('say which kind: credentials aws --role NAME, or credentials postgres --upstream NAME');
    if (!values.role) throw new UsageError('credentials aws needs --role NAME (a role under aws.roles)');
    if (values.upstream !== undefined) throw new UsageError('--upstream goes with credentials postgres');
    if (values.env && values.json) throw new UsageError('--env and --json exclude each other');
    const c = await requestCredentials<AwsCredentials>(values.broker, 'aws', { role: values.role });
    output(values.json, c, () => {
      const exports = [
        `export AWS_ACCESS_KEY_ID=${shellQuote(c.access_key_id)}`,
        `export AWS_SECRET_ACCESS_KEY=${shellQuote(c.secret_access_key)}`,
        `export AWS_SESSION_TOKEN=${shellQuote(c.session_token)}`,
        `export AWS_CREDENTIAL_EXPIRATION=${shellQuote(c.expiration)}`,
      ];
      if (values.env) return exports.join('\n');
      const cut = c.lineage_cut ? `\n# lineage tags: ${t(c.lineage_cut)}` : '';
      return [`# AWS credentials: ${t(c.role_arn)} as ${t(c.role_session_name)} (source identity ${t(c.source_identity)}), until ${t(c.expiration)}${cut}`, ...exports].join('\n');
    });
    return 0;
  },
);

async function postgres(values: { upstream?: string; role?: string; env?: boolean; broker?: string; json?: boolean }): Promise<number> {
  if (!values.upstream) throw new UsageError('credentials postgres needs --upstream NAME');
  if (values.role !== undefined || values.env) throw new UsageError('--role and --env go with credentials aws');
  const c = await requestCredentials<PgCredentials>(values.broker, 'postgres', { upstream: values.upstream });
  if (!values.json) {
    process.stderr.write(`baton: role ${t(c.role)} until ${t(c.expires_at)}: ${c.grants.map((g) => `${g.privilege} ${t(g.resource)}`).join(', ')}\n`);
    for (const o of c.omitted) process.stderr.write(`baton: not held: ${t(o.operation)} on ${t(o.resource)}: ${t(o.why)}\n`);
  }
  output(values.json, c, c.url);
  return 0;
}

/** POST /v1/credentials/<kind> with your token (BATON_TOKEN, else the cached login token). */
async function requestCredentials<T>(broker: string | undefined, kind: 'aws' | 'postgres', body: Record<string, string>): Promise<T> {
  const base = brokerUrl(broker);
  const { token } = await tokenFor({ broker: base, stdin: false, cache: true });
  const res = await callBroker(`${base}/v1/credentials/${kind}`, {
    method: 'POST',
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return (await res.json()) as T;
}

/** Single-quoted for POSIX shells (a `'` inside becomes `'\''`). */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
