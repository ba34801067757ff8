/** `baton attenuate` — offline: read a token (BATON_TOKEN, stdin or the login cache), print a narrower child. */
import { attenuate as attenuateToken } from '../token/attenuate.ts';
import { brokerUrl } from './broker-client.ts';
import { parseCliDuration } from './cli-duration.ts';
import { defineCommand, output, UsageError } from './command.ts';
import { tokenFor } from './token-cache.ts';

const USAGE = `usage: baton attenuate --to NAME [--resource R]... [--op OP]... [--ttl 5m] [--purpose TEXT]
                       [--require-approval OP]... [--seal] [--broker URL] [--json]
  Reads the parent token from BATON_TOKEN, else stdin, else the token \`baton login\` cached for the
  broker (--broker, BATON_BROKER, default http://127.0.0.1:8080). Prints the child token on stdout
  (--json: {"token": "..."}). No network.
  --ttl   30s, 5m, 2h, 1d, "5 minutes" or 1h30m; a unit is required (default: the parent's expiry)
  --require-approval OP   the child's statements doing OP (delete, update, …; * = any write) wait
          for a just-in-time approval by an approver`;

/** The token BATON_TOKEN / stdin / cache holds (kept for other commands and callers). */
export async function readToken(broker?: string): Promise<string> {
  return (await tokenFor({ broker: brokerUrl(broker), cache: true })).token;
}

export const attenuate = defineCommand(
  'narrow a token offline (resources, operations, TTL, delegate)',
  {
    name: 'attenuate',
    usage: USAGE,
    options: {
      resource: { type: 'string', multiple: true },
      op: { type: 'string', multiple: true },
      ttl: { type: 'string' },
      to: { type: 'string' },
      purpose: { type: 'string' },
      'require-approval': { type: 'string', multiple: true },
      seal: { type: 'boolean' },
      broker: { type: 'string' },
    },
  },
  async ({ values }) => {
    if (!values.to) throw new UsageError('--to NAME is required (who the child token is for)');
    const ttl = values.ttl !== undefined ? parseCliDuration(values.ttl, '--ttl') : undefined;
    const child = attenuateToken(await readToken(values.broker), {
      resources: values.resource,
      operations: values.op,
      ...(ttl !== undefined ? { ttl } : {}),
      delegateTo: values.to,
      ...(values.purpose !== undefined ? { purpose: values.purpose } : {}),
      ...(values['require-approval']?.length ? { requireApproval: values['require-approval'] } : {}),
      seal: values.seal ?? false,
    });
    output(values.json, { token: child }, child);
    return 0;
  },
);
