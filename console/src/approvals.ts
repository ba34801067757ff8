/**
 * Approvals: pending requests with the exact statement, the requesting chain and its purpose;
 * approve or deny with a reason. Who may decide is the broker's rule (the requester and its
 * ancestors cannot): its refusal is shown as it comes.
 */
import { api, ApiError, type Approval } from './api.ts';
import { chain, purposeOf } from './chain.ts';
import { badge, h, replace, time } from './dom.ts';
import type { PageContext } from './page.ts';

const STATES = ['pending', 'approved', 'denied', 'expired', 'used'];

export function approvalsPage(ctx: PageContext): void {
  const state = ctx.params.get('state') ?? 'pending';
  const list = h('div', { class: 'approvals' });
  const select = h('select', { id: 'approval-state' }, [h('option', { value: 'all', selected: state === 'all' }, 'All'), ...STATES.map((s) => h('option', { value: s, selected: s === state }, s))]);
  select.addEventListener('change', () => ctx.navigate({ state: select.value }));
  replace(ctx.main, h('h1', {}, 'Approvals'), h('p', { class: 'lead' }, 'Statements held for a just-in-time approval. The requester and anyone in its chain cannot decide.'), h('p', {}, h('label', { for: 'approval-state' }, 'Show '), select), list);
  if (!ctx.me.admin && !ctx.me.approver) {
    replace(list, h('p', { role: 'alert', class: 'error' }, 'Approvals need the approver role.'));
    return;
  }
  void (async function load() {
    try {
      const { approvals } = await api<{ approvals: Approval[] }>('/v1/approvals', { query: { ...(state !== 'all' ? { state } : {}), limit: 100 } });
      replace(list, approvals.length ? approvals.map((a) => card(ctx, a, load)) : h('p', {}, `No ${state === 'all' ? '' : `${state} `}requests.`));
      ctx.status(`${approvals.length} ${state === 'all' ? '' : `${state} `}${approvals.length === 1 ? 'request' : 'requests'}`);
    } catch (err) {
      replace(list, h('p', { role: 'alert', class: 'error' }, (err as Error).message));
    }
  })();
}

function card(ctx: PageContext, a: Approval, reload: () => Promise<void>): HTMLElement {
  const reasonId = `reason-${a.id}`;
  const reason = h('textarea', { id: reasonId, rows: 2, maxlength: 1000 });
  const message = h('div', { 'aria-live': 'assertive' });
  const decide = async (verdict: 'approve' | 'deny') => {
    const text = reason.value.trim();
    if (verdict === 'deny' && !text) {
      replace(message, h('p', { role: 'alert', class: 'error' }, 'A denial needs a reason.'));
      reason.focus();
      return;
    }
    try {
      await api(`/v1/approvals/${encodeURIComponent(a.id)}/${verdict}`, { method: 'POST', body: text ? { reason: text } : {} });
      ctx.status(`${a.id} ${verdict === 'approve' ? 'approved' : 'denied'}`);
      await reload();
    } catch (err) {
      replace(message, h('p', { role: 'alert', class: 'error' }, `Refused by the broker: ${err instanceof ApiError ? err.message : String(err)}`));
    }
  };
  const pending = a.state === 'pending';
  return h(
    'article',
    { class: 'card', 'aria-labelledby': `h-${a.id}`, 'data-approval': a.id },
    h('h2', { id: `h-${a.id}` }, a.id, ' ', badge(a.state, a.state === 'pending' ? 'warn' : a.state === 'approved' || a.state === 'used' ? 'ok' : 'muted'), a.requesterRevoked ? [' ', badge('requester revoked', 'bad')] : null),
    h('p', { class: 'muted small' }, 'Requested ', time(a.createdAt), ' · expires ', time(a.expiresAt), ` · upstream ${a.upstream} · rules: ${a.rules.join(', ')}`),
    h('h3', {}, 'Statement'),
    h('pre', { class: 'stmt' }, h('code', {}, a.statement)),
    h('p', {}, 'Touches: ', a.accesses.map((x, i) => [i ? ', ' : '', h('code', {}, `${x.operation} ${x.resource}`)])),
    h('h3', {}, 'Requesting chain'),
    chain(a.lineage),
    h('p', {}, h('strong', {}, 'Purpose: '), purposeOf(a.lineage) ?? '— (none stated)'),
    a.decidedBy ? h('p', {}, `Decided by ${a.decidedBy} `, time(a.decidedAt), a.reason ? ` — “${a.reason}”` : '') : null,
    pending
      ? h(
          'div',
          { class: 'decide' },
          h('p', {}, h('label', { for: reasonId }, 'Reason (required to deny)'), reason),
          h('p', { class: 'actions' }, h('button', { type: 'button', onclick: () => void decide('approve') }, 'Approve'), h('button', { type: 'button', class: 'danger', onclick: () => void decide('deny') }, 'Deny')),
          message,
        )
      : null,
  );
}
