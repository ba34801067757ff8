/**
 * `baton login` — get a Baton token for this shell's user and cache it: from the dev issuer of a
 * running `baton dev` (`--sub alice --groups engineers`), or from any OIDC token (`--subject-token` or
 * stdin). `baton logout` forgets it.
 */
import { brokerUrl } from './broker-client.ts';
import { defineCommand, output, readStdin, UsageError } from './command.ts';
import { fetchDevToken } from './dev-token.ts';
import { describeExchanged, exchangeAndCache } from './exchange.ts';
import { parseCliDuration } from './cli-duration.ts';
import { forgetToken } from './token-cache.ts';
import { terminalText as t } from './terminal-text.ts';

const USAGE = `usage: baton login (--sub SUBJECT [--groups G1,G2] [--client AGENT] | --subject-token JWT | < jwt)
                   [--ttl 15m] [--broker URL] [--json]
  Dev: with --sub, mints an OIDC token at the dev issuer of a running \`baton dev\` and exchanges it.
  Otherwise exchanges the OIDC token given with --subject-token or on stdin (from your provider).
  The Baton token is cached, mode 0600, in $XDG_CONFIG_HOME/baton/tokens.json (default
  ~/.config/baton/), per broker (--broker, BATON_BROKER, default http://127.0.0.1:8080); attenuate,
  inspect and db connect use it when BATON_TOKEN is unset and nothing is piped in. Prints who you
  are and until when (--json: {"broker", "subject", "agent", "expires_at", "cache"} — no token).`;

export const login = defineCommand(
  'get a Baton token (dev issuer or any OIDC token) and cache it',
  {
    name: 'login',
    usage: USAGE,
    options: {
      sub: { type: 'string' },
      groups: { type: 'string' },
      client: { type: 'string' },
      'subject-token': { type: 'string' },
      'subject-token-type': { type: 'string' },
      ttl: { type: 'string' },
      broker: { type: 'string' },
    },
  },
  async ({ values }) => {
    const broker = brokerUrl(values.broker);
    // parsed before any network call: a bad --ttl fails before a dev token is minted
    const ttlSeconds = values.ttl !== undefined ? parseCliDuration(values.ttl, '--ttl') : undefined;
    if (values.sub !== undefined && values['subject-token'] !== undefined) throw new UsageError('give --sub (dev issuer) or --subject-token, not both');
    if (values.sub === undefined && (values.groups !== undefined || values.client !== undefined)) throw new UsageError('--groups and --client need --sub (dev issuer)');
    let subjectToken: string;
    if (values.sub !== undefined) {
      if (!values.sub) throw new UsageError('--sub needs a subject');
      subjectToken = (
        await fetchDevToken(broker, {
          sub: values.sub,
          ...(values.groups !== undefined ? { groups: values.groups } : {}),
          ...(values.client !== undefined ? { client: values.client } : {}),
        })
      ).access_token;
    } else {
      subjectToken = (values['subject-token'] ?? (await readStdin())).trim();
      if (!subjectToken) throw new UsageError('say who you are: --sub NAME (dev issuer), --subject-token JWT, or pipe an OIDC token on stdin');
    }
    const result = await exchangeAndCache({ broker, subjectToken, subjectTokenType: values['subject-token-type'], ttlSeconds });
    const { token: _token, ...described } = describeExchanged(broker, result);
    const e = result.entry!;
    output(
      values.json,
      described,
      `logged in to ${t(broker)} as ${t(e.subject ?? '?')} (agent ${t(e.agent ?? '?')})${e.expires_at ? ` until ${t(e.expires_at)}` : ''}; token cached in ${t(result.cache)}`,
    );
    return 0;
  },
);

export const logout = defineCommand(
  "forget the broker's cached token",
  { name: 'logout', usage: 'usage: baton logout [--broker URL] [--json]\n  Removes the token `baton login` cached for the broker (it stays valid until it expires or is revoked).', options: { broker: { type: 'string' } } },
  async ({ values }) => {
    const broker = brokerUrl(values.broker);
    const removed = forgetToken(broker);
    output(values.json, { broker, removed }, removed ? `forgot the cached token for ${t(broker)}` : `no cached token for ${t(broker)}`);
    return 0;
  },
);
