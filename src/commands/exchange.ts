/** `baton exchange` — trade an OIDC token for a Baton token at the broker (RFC 8693), print and cache it. */
import { exchange as exchangeToken } from '../sdk/exchange.ts';
import { brokerUrl } from './broker-client.ts';
import { parseCliDuration } from './cli-duration.ts';
import { CliError, defineCommand, output, readStdin, UsageError } from './command.ts';
import { saveToken, type CachedToken } from './token-cache.ts';
import { terminalText as t } from './terminal-text.ts';

const USAGE = `usage: baton exchange [--subject-token JWT] [--subject-token-type jwt|id_token|access_token]
                      [--resource R]... [--scope OP]... [--ttl 15m] [--broker URL] [--no-cache] [--json]
  Exchanges an OIDC token (from --subject-token, else stdin — stdin keeps it out of \`ps\`) for a Baton
  token at the broker (--broker, BATON_BROKER, default http://127.0.0.1:8080). Prints the Baton token
  (--json: {"token", "expires_at", "subject", "agent", "cache"}) and caches it, mode 0600, in
  $XDG_CONFIG_HOME/baton/tokens.json (default ~/.config/baton/), where attenuate, inspect and db connect
  find it. --no-cache only prints.`;

const SUBJECT_TOKEN_TYPES = ['jwt', 'id_token', 'access_token'] as const;

export const exchangeOptions = {
  'subject-token': { type: 'string' },
  'subject-token-type': { type: 'string' },
  resource: { type: 'string', multiple: true },
  scope: { type: 'string', multiple: true },
  ttl: { type: 'string' },
  broker: { type: 'string' },
  'no-cache': { type: 'boolean' },
} as const;

export interface ExchangeArgs {
  broker: string;
  subjectToken: string;
  subjectTokenType?: string | undefined;
  resource?: string[] | undefined;
  scope?: string[] | undefined;
  /** Requested lifetime in seconds (callers parse `--ttl` with parseCliDuration, before any network call). */
  ttlSeconds?: number | undefined;
  noCache?: boolean | undefined;
}

export interface Exchanged {
  token: string;
  entry?: CachedToken;
  cache?: string;
}

/** Exchanges at the broker and (unless noCache) caches the result. */
export async function exchangeAndCache(a: ExchangeArgs): Promise<Exchanged> {
  const type = a.subjectTokenType ?? 'jwt';
  if (!(SUBJECT_TOKEN_TYPES as readonly string[]).includes(type)) throw new UsageError(`--subject-token-type "${t(type)}" must be jwt, id_token or access_token`);
  const token = await exchangeToken({
    broker: a.broker,
    subjectToken: a.subjectToken,
    subjectTokenType: type as (typeof SUBJECT_TOKEN_TYPES)[number],
    ...(a.resource?.length ? { resources: a.resource } : {}),
    ...(a.scope?.length ? { scope: a.scope } : {}),
    ...(a.ttlSeconds !== undefined ? { ttl: a.ttlSeconds } : {}),
  }).catch((e: Error) => {
    if (e.name === 'ExchangeError') throw e;
    throw new CliError('BATON_CLI_UNREACHABLE', `cannot reach the broker at ${t(a.broker)}: ${t(e.message)}`);
  });
  if (a.noCache) return { token };
  const { entry, path } = saveToken(a.broker, token);
  return { token, entry, cache: path };
}

/** The JSON result of exchange / login. */
export function describeExchanged(broker: string, r: Exchanged): Record<string, unknown> {
  return {
    broker,
    token: r.token,
    ...(r.entry?.subject ? { subject: r.entry.subject } : {}),
    ...(r.entry?.agent ? { agent: r.entry.agent } : {}),
    ...(r.entry?.expires_at ? { expires_at: r.entry.expires_at } : {}),
    ...(r.cache ? { cache: r.cache } : {}),
  };
}

export const exchange = defineCommand(
  'trade an OIDC token for a Baton token (and cache it)',
  { name: 'exchange', usage: USAGE, options: exchangeOptions },
  async ({ values }) => {
    const ttlSeconds = values.ttl !== undefined ? parseCliDuration(values.ttl, '--ttl') : undefined;
    const subjectToken = (values['subject-token'] ?? (await readStdin())).trim();
    if (!subjectToken) throw new UsageError('no subject token: give --subject-token JWT or pipe it on stdin');
    const broker = brokerUrl(values.broker);
    const result = await exchangeAndCache({
      broker,
      subjectToken,
      subjectTokenType: values['subject-token-type'],
      resource: values.resource,
      scope: values.scope,
      ttlSeconds,
      noCache: values['no-cache'],
    });
    output(values.json, describeExchanged(broker, result), result.token);
    return 0;
  },
);
