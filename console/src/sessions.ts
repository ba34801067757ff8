/** Live proxy sessions: lineage, upstream, statements so far, idle time; end one (revokes its last block). */
import { api, ApiError, type LiveSession } from './api.ts';
import { chain, holder, purposeOf } from './chain.ts';
import { badge, confirmDialog, duration, h, replace, time } from './dom.ts';
import type { Cleanup, PageContext } from './page.ts';

export function sessionsPage(ctx: PageContext): Cleanup {
  const body = h('div', {});
  const refresh = h('button', { type: 'button', class: 'secondary' }, 'Refresh');
  replace(ctx.main, h('h1', {}, 'Live sessions'), h('p', { class: 'lead' }, 'Open proxy sessions on every proxy, refreshed every 5 seconds.'), h('p', {}, refresh), body);
  let busy = false;
  const load = async (announce: boolean) => {
    if (busy) return;
    busy = true;
    try {
      const { sessions } = await api<{ sessions: LiveSession[] }>('/v1/sessions');
      replace(body, sessions.length ? table(ctx, sessions, () => load(true)) : h('p', {}, 'No open sessions.'));
      if (announce) ctx.status(`${sessions.length} open ${sessions.length === 1 ? 'session' : 'sessions'}`);
    } catch (err) {
      replace(body, h('p', { role: 'alert', class: 'error' }, (err as Error).message));
    } finally {
      busy = false;
    }
  };
  refresh.addEventListener('click', () => void load(true));
  void load(true);
  const timer = setInterval(() => {
    // not while a dialog is open (the table would be redrawn under it)
    if (!document.querySelector('dialog[open]')) void load(false);
  }, 5_000);
  return () => clearInterval(timer);
}

function table(ctx: PageContext, sessions: LiveSession[], reload: () => Promise<void>): HTMLElement {
  return h(
    'div',
    { class: 'table-wrap' },
    h(
      'table',
      {},
      h('caption', { class: 'sr-only' }, 'Open proxy sessions'),
      h('thead', {}, h('tr', {}, ['Chain', 'Purpose', 'Upstream', 'Statements', 'Denied', 'Started', 'Idle', 'Status', ''].map((c) => h('th', { scope: 'col' }, c)))),
      h(
        'tbody',
        {},
        sessions.map((s) => {
          const end = h('button', { type: 'button', class: 'danger small', disabled: s.revoked || !ctx.me.admin, 'aria-label': `End the session of ${holder(s.lineage.at(-1)!)}` }, 'End…');
          end.addEventListener('click', async () => {
            const reason = await confirmDialog({
              title: 'End this session?',
              body: h('p', {}, `Revokes the session's token (${holder(s.lineage.at(-1)!)}) and every token derived from it; every proxy ends their sessions. Tokens above it stay valid.`),
              confirm: 'End session',
              reason: { label: 'Reason (recorded in the audit trail)', required: false },
            });
            if (reason === undefined) return;
            try {
              await api(`/v1/sessions/${encodeURIComponent(s.id)}/end`, { method: 'POST', body: reason ? { reason } : {} });
              ctx.status('Session ended');
              await reload();
            } catch (err) {
              ctx.status(err instanceof ApiError ? err.message : String(err));
            }
          });
          return h(
            'tr',
            { 'data-session': s.id },
            h('td', {}, chain(s.lineage), h('div', { class: 'muted small' }, s.tokenId ?? '')),
            h('td', {}, purposeOf(s.lineage) ?? '—'),
            h('td', {}, `${s.kind}:${s.upstream}`, h('div', { class: 'muted small' }, s.remote)),
            h('td', { class: 'num' }, s.statements),
            h('td', { class: 'num' }, s.denied),
            h('td', {}, time(s.startedAt)),
            h('td', {}, duration(s.idleSeconds)),
            h('td', {}, s.revoked ? badge('revoked', 'bad') : badge('open', 'ok')),
            h('td', {}, end),
          );
        }),
      ),
    ),
  );
}
