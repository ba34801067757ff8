/**
 * Delegation trees: for a token id, subject or agent, every family (authority token) seen in the
 * audit, as a keyboard-operable ARIA tree; the selected node's details and its own timeline; revoke
 * a node (with confirmation) and see its subtree turn revoked.
 */
import { api, ApiError, type AuditEvent, type AuditTree, type TreeNode } from './api.ts';
import { holder, linkDetails } from './chain.ts';
import { badge, confirmDialog, h, replace, type Child } from './dom.ts';
import { timeline } from './events.ts';
import type { PageContext } from './page.ts';

type By = 'token' | 'subject' | 'delegate';

interface Family {
  tree: AuditTree;
  events: AuditEvent[];
}

export function treePage(ctx: PageContext): void {
  const by = (ctx.params.get('by') as By | null) ?? 'token';
  const q = ctx.params.get('q') ?? '';
  const results = h('div', { class: 'families' });
  const form = h(
    'form',
    { class: 'filters', role: 'search', 'aria-label': 'Find delegation trees' },
    h('p', {}, h('label', { for: 'tree-by' }, 'Find by'), h('select', { id: 'tree-by', name: 'by' }, option('token', 'Token id', by), option('subject', 'Subject', by), option('delegate', 'Agent or delegate', by))),
    h('p', { class: 'grow' }, h('label', { for: 'tree-q' }, 'Value'), h('input', { id: 'tree-q', name: 'q', required: true, value: q, placeholder: 'tok_… or alice or helper-7', autocomplete: 'off' })),
    h('p', {}, h('button', { type: 'submit' }, 'Show trees')),
  );
  form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    const data = new FormData(form);
    ctx.navigate({ by: String(data.get('by')), q: String(data.get('q')).trim() });
  });
  replace(ctx.main, h('h1', {}, 'Delegation trees'), h('p', { class: 'lead' }, 'Which user, through which chain of agents, touched what, when, and for what purpose.'), form, results);
  if (!ctx.me.admin) {
    replace(results, h('p', { role: 'alert', class: 'error' }, 'Delegation trees read the audit trail: they need the admin role.'));
    return;
  }
  if (q) void load(ctx, results, by, q);
}

function option(value: string, label: string, current: string): HTMLOptionElement {
  return h('option', { value, selected: value === current }, label);
}

async function familiesOf(by: By, q: string): Promise<string[]> {
  if (by === 'token') return [q];
  const page = await api<{ events: AuditEvent[] }>('/v1/audit', { query: { [by]: q, limit: 1000 } });
  return [...new Set(page.events.map((e) => e.tokenId).filter((t): t is string => !!t))];
}

async function loadFamily(tokenId: string): Promise<Family> {
  const [tree, page] = await Promise.all([
    api<AuditTree>(`/v1/audit/tree/${encodeURIComponent(tokenId)}`),
    api<{ events: AuditEvent[] }>('/v1/audit', { query: { token_id: tokenId, limit: 1000, order: 'asc' } }),
  ]);
  return { tree, events: page.events };
}

async function load(ctx: PageContext, results: HTMLElement, by: By, q: string): Promise<void> {
  replace(results, h('p', { class: 'muted' }, 'Loading…'));
  try {
    const ids = await familiesOf(by, q);
    const families = await Promise.all(ids.slice(0, 20).map(loadFamily));
    const shown = families.filter((f) => f.tree.roots.length);
    if (!shown.length) {
      replace(results, h('p', {}, 'Nothing in the audit trail matches.'));
      ctx.status('No delegation trees found');
      return;
    }
    replace(results, shown.map((f) => familyView(ctx, f)));
    ctx.status(`${shown.length} delegation ${shown.length === 1 ? 'tree' : 'trees'} shown`);
  } catch (err) {
    replace(results, h('p', { role: 'alert', class: 'error' }, (err as Error).message));
  }
}

function familyView(ctx: PageContext, family: Family): HTMLElement {
  const section = h('section', { class: 'family', 'aria-label': `Token ${family.tree.tokenId}` });
  let selected: string | undefined;
  const draw = (f: Family) => {
    const root = f.tree.roots[0]!;
    const treeEl = h('ul', { role: 'tree', 'aria-label': `Delegation tree of ${f.tree.tokenId}`, class: 'tree' }, f.tree.roots.map((n) => nodeView(n)));
    const panel = h('div', { class: 'node-panel' });
    const select = (node: TreeNode, item: HTMLElement, focus: boolean) => {
      selected = node.revocationId;
      for (const el of treeEl.querySelectorAll<HTMLElement>('[role=treeitem]')) {
        el.setAttribute('aria-selected', String(el === item));
        el.tabIndex = el === item ? 0 : -1;
      }
      if (focus) item.focus();
      replace(panel, nodePanel(ctx, node, f, async () => draw(await loadFamily(f.tree.tokenId))));
    };
    wireTree(treeEl, f, select);
    replace(
      section,
      h('h2', {}, holder(root), ' ', h('span', { class: 'muted small' }, f.tree.tokenId)),
      h('p', { class: 'muted small' }, `${f.tree.total.allowed} allowed, ${f.tree.total.denied} denied in this family`),
      h('div', { class: 'split' }, h('div', { class: 'tree-wrap' }, treeEl), panel),
    );
    const items = [...treeEl.querySelectorAll<HTMLElement>('[role=treeitem]')];
    const again = items.find((el) => el.dataset.rid === selected) ?? items[0];
    if (again) select(nodeOf(f, again.dataset.rid!)!, again, false);
  };
  draw(family);
  return section;
}

function nodeOf(f: Family, rid: string): TreeNode | undefined {
  const walk = (nodes: TreeNode[]): TreeNode | undefined => {
    for (const n of nodes) {
      if (n.revocationId === rid) return n;
      const found = walk(n.children);
      if (found) return found;
    }
    return undefined;
  };
  return walk(f.tree.roots);
}

function nodeView(node: TreeNode): HTMLElement {
  const label: Child[] = [
    h('span', { class: 'holder' }, node.depth === 0 ? holder(node) : `→ ${holder(node)}`),
    node.purpose ? h('span', { class: 'purpose' }, ` “${node.purpose}”`) : null,
    ' ',
    node.revoked ? badge(node.revokedHere ? 'revoked' : 'revoked (ancestor)', 'bad') : badge('active', 'ok'),
    ' ',
    h('span', { class: 'muted small' }, `${node.allowed} ✓ ${node.denied} ✗`),
  ];
  const item = h(
    'li',
    {
      role: 'treeitem',
      tabindex: -1,
      'aria-selected': 'false',
      'aria-level': node.depth + 1,
      'data-rid': node.revocationId,
      'data-revoked': node.revoked ? 'true' : 'false',
      ...(node.children.length ? { 'aria-expanded': 'true' } : {}),
    },
    h('div', { class: `node${node.revoked ? ' revoked' : ''}` }, label),
  );
  if (node.children.length) item.append(h('ul', { role: 'group' }, node.children.map(nodeView)));
  return item;
}

/** Roving tabindex and the WAI-ARIA tree keys: ↑ ↓ ← → Home End, Enter/Space selects. */
function wireTree(treeEl: HTMLElement, f: Family, select: (n: TreeNode, item: HTMLElement, focus: boolean) => void): void {
  const visible = () => [...treeEl.querySelectorAll<HTMLElement>('[role=treeitem]')].filter((el) => !el.parentElement?.closest('[aria-expanded=false]'));
  const itemOf = (target: EventTarget | null) => (target as HTMLElement | null)?.closest<HTMLElement>('[role=treeitem]');
  treeEl.addEventListener('click', (ev) => {
    const item = itemOf(ev.target);
    if (item) select(nodeOf(f, item.dataset.rid!)!, item, true);
  });
  treeEl.addEventListener('keydown', (ev) => {
    const item = itemOf(ev.target);
    if (!item) return;
    const list = visible();
    const i = list.indexOf(item);
    const go = (el: HTMLElement | undefined | null) => {
      if (el) select(nodeOf(f, el.dataset.rid!)!, el, true);
    };
    switch (ev.key) {
      case 'ArrowDown':
        go(list[i + 1]);
        break;
      case 'ArrowUp':
        go(list[i - 1]);
        break;
      case 'Home':
        go(list[0]);
        break;
      case 'End':
        go(list.at(-1));
        break;
      case 'ArrowRight':
        if (item.getAttribute('aria-expanded') === 'false') item.setAttribute('aria-expanded', 'true');
        else if (item.getAttribute('aria-expanded') === 'true') go(item.querySelector<HTMLElement>('[role=treeitem]'));
        break;
      case 'ArrowLeft':
        if (item.getAttribute('aria-expanded') === 'true') item.setAttribute('aria-expanded', 'false');
        else go(item.parentElement?.closest<HTMLElement>('[role=treeitem]'));
        break;
      case 'Enter':
      case ' ':
        go(item);
        break;
      default:
        return;
    }
    ev.preventDefault();
  });
}

function nodePanel(ctx: PageContext, node: TreeNode, f: Family, reload: () => Promise<void>): HTMLElement {
  const own = f.events.filter((e) => e.lineage.at(-1)?.revocationId === node.revocationId);
  const descendants = countNodes(node) - 1;
  const revoke = h('button', { type: 'button', class: 'danger', disabled: !!node.revoked || !ctx.me.admin }, 'Revoke this token…');
  const message = h('div', { 'aria-live': 'polite' });
  revoke.addEventListener('click', async () => {
    const reason = await confirmDialog({
      title: `Revoke ${holder(node)}?`,
      body: h('p', {}, `This token and the ${descendants} ${descendants === 1 ? 'token' : 'tokens'} derived from it will be refused everywhere within a second, and their open sessions end. This cannot be undone.`),
      confirm: 'Revoke',
      reason: { label: 'Reason (recorded in the audit trail)', required: false },
    });
    if (reason === undefined) return;
    try {
      await api('/v1/revoke', { method: 'POST', body: { revocation_id: node.revocationId, ...(reason ? { reason } : {}) } });
      ctx.status(`Revoked ${holder(node)} and ${descendants} derived ${descendants === 1 ? 'token' : 'tokens'}`);
      await reload();
    } catch (err) {
      replace(message, h('p', { role: 'alert', class: 'error' }, err instanceof ApiError ? err.message : String(err)));
    }
  });
  return h(
    'div',
    { class: 'panel', 'aria-label': `Details of ${holder(node)}`, role: 'region' },
    h('h3', {}, holder(node), ' ', node.revoked ? badge(node.revokedHere ? 'revoked' : 'revoked (ancestor)', 'bad') : badge('active', 'ok')),
    linkDetails(node, [['Statements', `${node.allowed} allowed, ${node.denied} denied (with this exact token); ${node.total.allowed + node.total.denied} in its subtree`]]),
    h('p', {}, revoke),
    message,
    h('h4', {}, 'Timeline'),
    timeline(own),
  );
}

function countNodes(node: TreeNode): number {
  return 1 + node.children.reduce((n, c) => n + countNodes(c), 0);
}
