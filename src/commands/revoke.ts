/** `baton revoke` — revoke a token (and every descendant) at the broker. */
import { readToken } from './attenuate.ts';
import { brokerUrl, bearerToken, callBroker } from './broker-client.ts';
import { parseOptions, type Command } from './command.ts';
import { terminalText } from './terminal-text.ts';

const USAGE = `usage: baton revoke [--id REVOCATION_ID] [--reason TEXT] [--broker URL]
  Without --id: revokes the token in BATON_TOKEN (or stdin) — possession is the right.
  With --id: revokes that id, authenticating with BATON_TOKEN (your own token's id, or any as admin).`;

export const revoke: Command = {
  summary: 'revoke a token and all its descendants',
  async run(argv) {
    const { values } = parseOptions(argv, { id: { type: 'string' }, reason: { type: 'string' }, broker: { type: 'string' } }, USAGE);
    const body = new URLSearchParams(values.reason ? { reason: values.reason } : {});
    const headers: Record<string, string> = {};
    if (values.id) {
      body.set('revocation_id', values.id);
      headers.authorization = `Bearer ${bearerToken()}`;
    } else {
      body.set('token', await readToken());
    }
    const res = (await (await callBroker(`${brokerUrl(values.broker)}/v1/revoke`, { method: 'POST', body, headers })).json()) as {
      revoked: boolean;
      revocation_id?: string;
    };
    if (!res.revoked) throw new Error('nothing revoked: the broker could not verify that token');
    process.stdout.write(`revoked ${terminalText(res.revocation_id)}\n`);
    return 0;
  },
};
