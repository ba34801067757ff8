/** `baton approvals list|approve|deny` — just-in-time approvals through the broker (approver token). */
import type { Approval } from '../approvals/approval.ts';
import { brokerUrl, callBroker } from './broker-client.ts';
import { defineCommand, output, UsageError } from './command.ts';
import { terminalText as t } from './terminal-text.ts';
import { tokenFor } from './token-cache.ts';

const USAGE = `usage: baton approvals <list [--state S] [--limit N] | approve ID [--reason TEXT] | deny ID --reason TEXT> [--broker URL] [--json]
  Uses the broker's /v1/approvals API with BATON_TOKEN, else the cached login token: an undelegated
  token with the approver role (listing also takes the admin role).
  list     requests, newest first; --state pending|approved|denied|expired|used
  approve  approve a pending request (not one of your own chain); it may be used once, within the policy's ttl
  deny     deny a pending request, saying why`;

const STATES = ['pending', 'approved', 'denied', 'expired', 'used'];

type Shown = Approval & { requesterRevoked?: boolean };

export const approvals = defineCommand(
  'list, approve or deny statements held for approval',
  {
    name: 'approvals',
    usage: USAGE,
    options: { broker: { type: 'string' }, state: { type: 'string' }, limit: { type: 'string' }, reason: { type: 'string' } },
    positionals: { max: 2 },
    subcommands: ['list', 'approve', 'deny'],
  },
  async ({ values, positionals }) => {
    const [action, id] = positionals;
    if (!['list', 'approve', 'deny'].includes(action ?? '')) throw new UsageError('say list, approve ID or deny ID');
    if (action === 'list' ? id !== undefined : !id) throw new UsageError(action === 'list' ? `unexpected argument "${t(id)}"` : `${action} needs an approval ID`);
    if (values.state !== undefined && (action !== 'list' || !STATES.includes(values.state))) {
      throw new UsageError(action === 'list' ? `--state must be one of ${STATES.join(', ')}` : '--state goes with list');
    }
    if (values.limit !== undefined && (action !== 'list' || !/^[1-9]\d{0,2}$/.test(values.limit) || Number(values.limit) > 500)) {
      throw new UsageError(action === 'list' ? '--limit must be a whole number from 1 to 500' : '--limit goes with list');
    }
    if (action === 'list' && values.reason !== undefined) throw new UsageError('--reason goes with approve or deny');
    if (action === 'deny' && !values.reason?.trim()) throw new UsageError('deny needs --reason TEXT');

    const base = brokerUrl(values.broker);
    const { token } = await tokenFor({ broker: base, stdin: false, cache: true });
    const headers = { authorization: `Bearer ${token}` };

    if (action === 'list') {
      const query = new URLSearchParams({ ...(values.state ? { state: values.state } : {}), ...(values.limit ? { limit: values.limit } : {}) });
      const page = (await (await callBroker(`${base}/v1/approvals?${query}`, { headers })).json()) as { approvals: Shown[] };
      output(values.json, page, () => (page.approvals.length ? page.approvals.map(formatApproval).join('\n') : `no ${values.state ? `${t(values.state)} ` : ''}approval requests`));
      return 0;
    }
    const res = await callBroker(`${base}/v1/approvals/${encodeURIComponent(id!)}/${action}`, {
      method: 'POST',
      headers: { ...headers, 'content-type': 'application/json' },
      body: JSON.stringify(values.reason !== undefined ? { reason: values.reason } : {}),
    });
    const decided = (await res.json()) as Shown;
    output(values.json, decided, () => {
      const until = decided.approvedUntil ? ` (usable once until ${t(decided.approvedUntil)})` : '';
      return `${t(decided.id)} ${t(decided.state)}${until}: ${t(decided.upstream)} ${t(clip(decided.normalized, 200))}`;
    });
    return 0;
  },
);

const clip = (s: string, max: number) => (s.length > max ? `${s.slice(0, max)}…` : s);

/** One line per request; every field came from a token or a statement someone chose: escaped. */
function formatApproval(a: Shown): string {
  const chain = a.lineage.map((l) => (l.depth === 0 ? `${t(l.subject ?? '?')}/${t(l.agent ?? '?')}` : t(l.delegatedTo ?? '?'))).join(' → ');
  const when = a.state === 'pending' ? `expires ${t(a.expiresAt)}` : a.decidedBy ? `by ${t(a.decidedBy)}${a.reason ? ` "${t(clip(a.reason, 100))}"` : ''}` : '';
  const revoked = a.requesterRevoked ? '  [requester revoked]' : '';
  return `${t(a.id)} ${t(a.state.toUpperCase()).padEnd(8)} ${t(a.upstream)}  [${chain}]  ${t(clip(a.normalized, 120))}  ${when}${revoked}`;
}
