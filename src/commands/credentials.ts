/** `baton credentials aws --role NAME` — native credentials scoped from your Baton token (issue 14). */
import type { AwsCredentials } from '../credentials/aws.ts';
import { brokerUrl, callBroker } from './broker-client.ts';
import { defineCommand, output, UsageError } from './command.ts';
import { terminalText as t } from './terminal-text.ts';
import { tokenFor } from './token-cache.ts';

const USAGE = `usage: baton credentials aws --role NAME [--env | --json] [--broker URL]
  AWS credentials no wider than your token (BATON_TOKEN, else the cached login token) and ending
  with it, from the broker's POST /v1/credentials/aws.
  default   shell lines for eval, with a comment saying what they are:  eval "$(baton credentials aws --role reports)"
  --env     the export lines only
  --json    the broker's answer (access_key_id, secret_access_key, session_token, expiration, policy, …)`;

export const credentials = defineCommand(
  'print native credentials scoped from your token (aws)',
  { name: 'credentials', usage: USAGE, options: { role: { type: 'string' }, env: { type: 'boolean' }, broker: { type: 'string' } }, positionals: { max: 1 }, subcommands: ['aws'] },
  async ({ values, positionals }) => {
    if (positionals[0] !== 'aws') throw new UsageError('say which kind: credentials aws --role NAME');
    if (!values.role) throw new UsageError('credentials aws needs --role NAME (a role under aws.roles)');
    if (values.env && values.json) throw new UsageError('--env and --json exclude each other');
    const base = brokerUrl(values.broker);
    const { token } = await tokenFor({ broker: base, stdin: false, cache: true });
    const res = await callBroker(`${base}/v1/credentials/aws`, {
      method: 'POST',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
      body: JSON.stringify({ role: values.role }),
    });
    const c = (await res.json()) as AwsCredentials;
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

/** Single-quoted for POSIX shells (a `'` inside becomes `'\''`). */
function shellQuote(value: string): string {
  return `'${value.replace(/'/g, `'\\''`)}'`;
}
