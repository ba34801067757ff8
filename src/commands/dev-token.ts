/** `baton dev-token --sub alice --groups analysts` — a token from the running dev broker's OIDC issuer. */
import { brokerUrl } from './broker-client.ts';
import { parseCliDuration } from './cli-duration.ts';
import { CliError, defineCommand, output, UsageError } from './command.ts';
import { terminalText as t } from './terminal-text.ts';

const USAGE = `usage: baton dev-token --sub SUBJECT [--groups G1,G2] [--client AGENT] [--ttl 10m] [--broker URL] [--json]
  Asks the DEV issuer of a running \`baton dev\` (default broker http://127.0.0.1:8080) for an OIDC token.
  (\`baton login --sub …\` does this and the exchange in one step.)`;

export interface DevTokenRequest {
  sub: string;
  groups?: string;
  client?: string;
  /** Seconds. */
  ttl?: number;
}

/** Mints a dev OIDC token at `broker`'s dev issuer (`baton dev` only). */
export async function fetchDevToken(broker: string, r: DevTokenRequest): Promise<{ access_token: string; expires_in?: number }> {
  const res = await fetch(`${broker}/dev/oidc/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: r.sub, groups: r.groups, client_id: r.client, ttl: r.ttl }),
  }).catch((e: Error) => {
    throw new CliError('BATON_CLI_UNREACHABLE', `cannot reach the dev broker at ${t(broker)}: ${t(e.message)}`);
  });
  const body = (await res.json().catch(() => ({}))) as { access_token?: string; expires_in?: number; title?: string; error_description?: string };
  if (res.status === 404) throw new CliError('BATON_CLI_NO_DEV_ISSUER', `${t(broker)} has no dev issuer (only \`baton dev\` does): use --subject-token with a token from your OIDC provider`);
  if (!res.ok || !body.access_token) throw new CliError('BATON_CLI_DEV_ISSUER', `dev issuer refused: ${t(body.title ?? body.error_description ?? res.status)}`);
  return { access_token: body.access_token, ...(body.expires_in !== undefined ? { expires_in: body.expires_in } : {}) };
}

export const devTokenOptions = {
  sub: { type: 'string' },
  groups: { type: 'string' },
  client: { type: 'string' },
  broker: { type: 'string' },
  ttl: { type: 'string' },
} as const;

export const devToken = defineCommand(
  'print a dev OIDC token (baton dev only)',
  { name: 'dev-token', usage: USAGE, options: devTokenOptions },
  async ({ values }) => {
    if (!values.sub) throw new UsageError('--sub is required');
    const body = await fetchDevToken(brokerUrl(values.broker), {
      sub: values.sub,
      ...(values.groups !== undefined ? { groups: values.groups } : {}),
      ...(values.client !== undefined ? { client: values.client } : {}),
      ...(values.ttl !== undefined ? { ttl: parseCliDuration(values.ttl, '--ttl') } : {}),
    });
    output(values.json, body, body.access_token);
    return 0;
  },
);
