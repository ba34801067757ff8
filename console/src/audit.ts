/**
 * Audit search: the filters of GET /v1/audit, a histogram of the result over time, export of the
 * filtered set (fetched with the token in the header, saved as a file), and chain verification.
 */
import { api, download, type AuditEvent } from './api.ts';
import { chain } from './chain.ts';
import { badge, h, replace, s, time } from './dom.ts';
import { decisionBadge, outcomeText, what } from './events.ts';
import type { PageContext } from './page.ts';

const FIELDS = ['subject', 'delegate', 'token_id', 'resource', 'decision', 'since', 'until', 'limit'] as const;

export function auditPage(ctx: PageContext): void {
  const p = ctx.params;
  const input = (name: string, label: string, attrs: Record<string, string> = {}) =>
    h('p', {}, h('label', { for: `f-${name}` }, label), h('input', { id: `f-${name}`, name, value: p.get(name) ?? '', autocomplete: 'off', ...attrs }));
  const localValue = (iso: string | null) => (iso ? toLocalInput(iso) : '');
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Audit filters' },
    input('subject', 'Subject'),
    input('delegate', 'Agent or delegate'),
    input('token_id', 'Token id'),
    input('resource', 'Resource', { placeholder: 'pg:appdb/public.orders' }),
    h('p', {}, h('label', { for: 'f-decision' }, 'Decision'), h('select', { id: 'f-decision', name: 'decision' }, ['', 'allow', 'deny'].map((d) => h('option', { value: d, selected: (p.get('decision') ?? '') === d }, d || 'any')))),
    h('p', {}, h('label', { for: 'f-since' }, 'Since'), h('input', { id: 'f-since', name: 'since', type: 'datetime-local', step: 1, value: localValue(p.get('since')) })),
    h('p', {}, h('label', { for: 'f-until' }, 'Until'), h('input', { id: 'f-until', name: 'until', type: 'datetime-local', step: 1, value: localValue(p.get('until')) })),
    h('p', {}, h('label', { for: 'f-limit' }, 'Limit'), h('input', { id: 'f-limit', name: 'limit', type: 'number', min: 1, max: 1000, value: p.get('limit') ?? '200' })),
    h('p', { class: 'actions' }, h('button', { type: 'submit' }, 'Search')),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    const next: Record<string, string> = { run: '1' };
    for (const f of FIELDS) {
      let v = String(data.get(f) ?? '').trim();
      if ((f === 'since' || f === 'until') && v) v = new Date(v).toISOString();
      if (v) next[f] = v;
    }
    ctx.navigate(next);
  });
  const verifyOut = h('div', { 'aria-live': 'polite' });
  const verifyBtn = h('button', { type: 'button', class: 'secondary' }, 'Verify the chain');
  verifyBtn.addEventListener('click', () => void verify(verifyOut));
  const results = h('div', {});
  replace(ctx.main, h('h1', {}, 'Audit search'), form, h('div', { class: 'verify' }, verifyBtn, verifyOut), results);
  if (!ctx.me.admin) {
    replace(results, h('p', { role: 'alert', class: 'error' }, 'The audit trail needs the admin role.'));
    return;
  }
  if (p.get('run')) void search(ctx, results, filtersOf(p));
}

function filtersOf(p: URLSearchParams): Record<string, string> {
  const f: Record<string, string> = {};
  for (const k of FIELDS) {
    const v = p.get(k);
    if (v) f[k] = v;
  }
  return f;
}

async function search(ctx: PageContext, results: HTMLElement, filters: Record<string, string>): Promise<void> {
  replace(results, h('p', { class: 'muted' }, 'Searching…'));
  const events: AuditEvent[] = [];
  const more = h('button', { type: 'button', class: 'secondary' }, 'Load more');
  const exportBtn = h('button', { type: 'button' }, 'Export the filtered set (NDJSON)');
  const exported = h('span', { 'aria-live': 'polite', class: 'muted small' });
  const summary = h('p', { role: 'status' });
  const chart = h('figure', { class: 'histogram' });
  const tbody = h('tbody', {});
  let cursor: string | null = null;
  const page = async () => {
    const res = await api<{ events: AuditEvent[]; next_cursor: string | null }>('/v1/audit', { query: { ...filters, ...(cursor ? { cursor } : {}) } });
    events.push(...res.events);
    cursor = res.next_cursor;
    for (const e of res.events) tbody.append(row(e));
    replace(summary, `${events.length} ${events.length === 1 ? 'entry' : 'entries'}${cursor ? ' (more match: load more)' : ''}`);
    more.hidden = !cursor;
    replace(chart, histogram(events));
    ctx.status(`${events.length} audit entries`);
  };
  more.addEventListener('click', () => void page().catch((err: Error) => ctx.status(err.message)));
  exportBtn.addEventListener('click', async () => {
    try {
      const { limit: _l, ...rest } = filters;
      const bytes = await download('/v1/audit/export', rest, `baton-audit-${new Date().toISOString().replace(/[:.]/g, '-')}.ndjson`);
      replace(exported, `exported ${bytes} bytes`);
    } catch (err) {
      replace(exported, (err as Error).message);
    }
  });
  try {
    await page();
  } catch (err) {
    replace(results, h('p', { role: 'alert', class: 'error' }, (err as Error).message));
    return;
  }
  replace(
    results,
    summary,
    chart,
    h('p', { class: 'actions' }, exportBtn, ' ', exported),
    h(
      'div',
      { class: 'table-wrap' },
      h(
        'table',
        { class: 'audit' },
        h('caption', { class: 'sr-only' }, 'Audit entries, newest first'),
        h('thead', {}, h('tr', {}, ['Time', 'Decision', 'Action', 'Chain', 'What', 'Outcome'].map((c) => h('th', { scope: 'col' }, c)))),
        tbody,
      ),
    ),
    h('p', {}, more),
  );
}

function row(e: AuditEvent): HTMLElement {
  return h(
    'tr',
    {},
    h('td', {}, time(e.time)),
    h('td', {}, decisionBadge(e)),
    h('td', {}, e.action, e.reason ? h('div', { class: 'muted small' }, e.reason) : null),
    h('td', {}, e.lineage.length ? chain(e.lineage) : '—', e.tokenId ? h('div', { class: 'muted small' }, e.tokenId) : null),
    h('td', {}, what(e)),
    h('td', {}, outcomeText(e)),
  );
}

/** Allowed and denied entries per time bucket, as an SVG bar chart (with a text equivalent). */
function histogram(events: AuditEvent[]): Node[] {
  if (!events.length) return [];
  const times = events.map((e) => Date.parse(e.time));
  const lo = Math.min(...times);
  const hi = Math.max(...times);
  const n = 24;
  const width = Math.max(1, hi - lo) / n;
  const buckets = Array.from({ length: n }, () => ({ allow: 0, deny: 0 }));
  for (const e of events) {
    const i = Math.min(n - 1, Math.floor((Date.parse(e.time) - lo) / width));
    buckets[i]![e.decision]++;
  }
  const max = Math.max(...buckets.map((b) => b.allow + b.deny));
  const W = 600;
  const H = 120;
  const bw = W / n;
  const bars = buckets.flatMap((b, i) => {
    const x = i * bw + 1;
    const ha = (b.allow / max) * (H - 20);
    const hd = (b.deny / max) * (H - 20);
    const from = new Date(lo + i * width).toLocaleTimeString();
    const label = `${from}: ${b.allow} allowed, ${b.deny} denied`;
    return [
      s('rect', { x, y: H - 16 - ha, width: bw - 2, height: ha, class: 'bar-allow' }, s('title', {}, label)),
      s('rect', { x, y: H - 16 - ha - hd, width: bw - 2, height: hd, class: 'bar-deny' }, s('title', {}, label)),
    ];
  });
  const allowed = events.filter((e) => e.decision === 'allow').length;
  const svg = s(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, role: 'img', 'aria-label': `Histogram of ${events.length} entries from ${new Date(lo).toLocaleString()} to ${new Date(hi).toLocaleString()}: ${allowed} allowed, ${events.length - allowed} denied` },
    ...bars,
    s('line', { x1: 0, y1: H - 15, x2: W, y2: H - 15, class: 'axis' }),
    s('text', { x: 0, y: H - 2, class: 'axis-label' }, new Date(lo).toLocaleTimeString()),
    s('text', { x: W, y: H - 2, 'text-anchor': 'end', class: 'axis-label' }, new Date(hi).toLocaleTimeString()),
  );
  return [svg, h('figcaption', {}, badge('allowed', 'ok'), ' ', badge('denied', 'bad'), ` — entries over time (${n} buckets of ${Math.max(1, Math.round(width / 1000))} s)`)];
}

async function verify(out: HTMLElement): Promise<void> {
  replace(out, h('span', { class: 'muted' }, 'Verifying…'));
  try {
    const r = await api<{ ok: boolean; count: number; outcomes: number; first_broken?: { seq: number | null; id: string | null; chainId: number; chainSeq: number | null; reason: string; table: string } }>('/v1/audit/verify');
    replace(
      out,
      r.ok
        ? h('p', { class: 'verified' }, badge('chain intact', 'ok'), ` ${r.count} entries and ${r.outcomes} outcomes verified`)
        : h(
            'div',
            { role: 'alert' },
            h('p', {}, badge('chain broken', 'bad'), ` ${r.count} entries checked`),
            r.first_broken ? h('p', {}, `First broken entry: seq ${r.first_broken.seq ?? '—'} (${r.first_broken.table}, chain ${r.first_broken.chainId}, position ${r.first_broken.chainSeq ?? '—'}, id ${r.first_broken.id ?? '—'}): ${r.first_broken.reason}`) : null,
          ),
    );
  } catch (err) {
    replace(out, h('p', { role: 'alert', class: 'error' }, (err as Error).message));
  }
}

/** An ISO instant as a `datetime-local` value in the browser's time zone. */
function toLocalInput(iso: string): string {
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}
