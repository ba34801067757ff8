/** `baton revoke` — revoke a token (and every descendant) at the broker. */
import { brokerUrl, bearerToken, callBroker } from './broker-client.ts';
import { CliError, defineCommand, output } from './command.ts';
import { tokenFor } from './token-cache.ts';
import { terminalText } from './terminal-text.ts';

const USAGE = `usage: baton revoke [--id REVOCATION_ID] [--reason TEXT] [--broker URL] [--json]
  Without --id: revokes the token in BATON_TOKEN (or stdin) — possession is the right. (Never the
  cached login token implicitly: pipe it in if that is what you mean.)
  With --id: revokes that id, authenticating with BATON_TOKEN (your own token's id, or any as admin).`;

export const revoke = defineCommand(
  'revoke a token and all its descendants',
  { name: 'revoke', usage: USAGE, options: { id: { type: 'string' }, reason: { type: 'string' }, broker: { type: 'string' } } },
  async ({ values }) => {
    const body = new URLSearchParams(values.reason ? { reason: values.reason } : {});
    const headers: Record<string, string> = {};
    if (values.id) {
      body.set('revocation_id', values.id);
      headers.authorization = `Bearer ${bearerToken()}`;
    } else {
      body.set('token', (await tokenFor({ cache: false })).token);
    }
    const res = (await (await callBroker(`${brokerUrl(values.broker)}/v1/revoke`, { method: 'POST', body, headers })).json()) as {
      revoked: boolean;
      revocation_id?: string;
    };
    if (!res.revoked) throw new CliError('BATON_CLI_NOT_REVOKED', 'nothing revoked: the broker could not verify that token');
    output(values.json, { revoked: true, revocation_id: res.revocation_id }, `revoked ${terminalText(res.revocation_id)}`);
    return 0;
  },
);
