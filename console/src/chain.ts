/** How a delegation chain reads: `alice · planner → helper-7 → sub-1`, and one link's details. */
import type { LineageLink } from './api.ts';
import { h, time, type Child } from './dom.ts';

/** Who holds a link: the authority's subject and agent, or a delegate. */
export function holder(link: LineageLink): string {
  if (link.depth === 0) return [link.subject ?? '(no subject)', link.agent].filter(Boolean).join(' · ');
  return link.delegatedTo ?? '(unnamed delegate)';
}

/** The chain as an ordered list, with each delegation's purpose. */
export function chain(lineage: LineageLink[]): HTMLElement {
  return h(
    'ol',
    { class: 'chain' },
    lineage.map((l) => h('li', {}, h('span', { class: 'holder' }, holder(l)), l.purpose ? h('span', { class: 'purpose' }, ` — “${l.purpose}”`) : null)),
  );
}

/** The purpose of the chain: the deepest link that states one. */
export function purposeOf(lineage: LineageLink[]): string | undefined {
  return [...lineage].reverse().find((l) => l.purpose)?.purpose;
}

/** A definition list of one link's constraints. */
export function linkDetails(link: LineageLink, extra: [string, Child][] = []): HTMLElement {
  const c = link.constraints ?? {};
  const rows: [string, Child][] = [
    ...(link.depth === 0 ? ([['Subject', link.subject ?? '—'], ['Agent', link.agent ?? '—'], ['Issuer', link.issuer ?? '—']] as [string, Child][]) : ([['Delegated to', link.delegatedTo ?? '—']] as [string, Child][])),
    ['Purpose', link.purpose ?? '—'],
    ['Resources', c.resources?.length ? h('ul', { class: 'plain' }, c.resources.map((r) => h('li', {}, h('code', {}, r)))) : link.depth === 0 ? 'its rights' : 'not narrowed'],
    ['Operations', c.operations?.length ? c.operations.join(', ') : link.depth === 0 ? 'its rights' : 'not narrowed'],
    ['Expires', time(c.expiresAt)],
    ...(c.requireApproval?.length ? ([['Needs approval for', c.requireApproval.join(', ')]] as [string, Child][]) : []),
    ['Depth', String(link.depth)],
    ['Revocation id', h('code', { class: 'wrap' }, link.revocationId)],
    ...extra,
  ];
  return h('dl', { class: 'details' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}
