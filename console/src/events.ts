/** One audit entry as a timeline item or a table row. */
import type { AuditEvent } from './api.ts';
import { badge, h, time } from './dom.ts';

/** What the entry touched: the statement (literals replaced), the HTTP request, or the resource. */
export function what(e: AuditEvent): HTMLElement {
  if (e.normalized) return h('code', { class: 'stmt' }, e.normalized);
  if (e.http) return h('code', { class: 'stmt' }, `${e.http.method} ${e.http.path}`);
  return h('span', {}, e.resource ? `${e.operation ?? ''} ${e.resource}`.trim() : '—');
}

export function outcomeText(e: AuditEvent): string {
  const o = e.outcome ?? e.recordedOutcome;
  if (!o) return '';
  if (o.sqlstate) return `error ${o.sqlstate}`;
  if (o.status) return `HTTP ${o.status}`;
  return [o.tag, o.rowCount !== undefined ? `${o.rowCount} rows` : ''].filter(Boolean).join(', ');
}

export function decisionBadge(e: AuditEvent): HTMLElement {
  return badge(e.decision, e.decision === 'allow' ? 'ok' : 'bad');
}

/** A timeline (oldest first). */
export function timeline(events: AuditEvent[]): HTMLElement {
  if (!events.length) return h('p', { class: 'muted' }, 'No statements or requests recorded with this exact token.');
  return h(
    'ol',
    { class: 'timeline' },
    events.map((e) =>
      h(
        'li',
        {},
        h('div', { class: 'tl-head' }, time(e.time), ' ', decisionBadge(e), ' ', h('span', { class: 'action' }, e.action), e.reason ? h('span', { class: 'muted' }, ` — ${e.reason}`) : null),
        h('div', {}, what(e)),
        outcomeText(e) ? h('div', { class: 'muted small' }, outcomeText(e)) : null,
      ),
    ),
  );
}
