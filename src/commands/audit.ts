/** `baton audit verify|tail|tree|export` — the audit trail through the broker (admin token). */
import type { AuditRecord } from '../audit/event.ts';
import { bearerToken, brokerUrl, callBroker } from './broker-client.ts';
import { defineCommand, output, UsageError } from './command.ts';
import { terminalJson, terminalJsonText, terminalText as t } from './terminal-text.ts';

const USAGE = `usage: baton audit <verify | tail [--follow] [--limit N] | tree TOKEN_ID | export> [--broker URL] [--json]
  Uses the broker's /v1/audit API with the admin Baton token in BATON_TOKEN.
  verify  check every hash chain and its signed heads; exit 1 and name each chain's first broken entry
  tail    the newest events (oldest first); --follow keeps printing new ones
  tree    the delegation tree of a token with allowed/denied counts per link
  export  every event as JSON lines (for SIEMs)
  --json  verify: the broker's verification result; tail: one event per line; tree: the tree`;

export const audit = defineCommand(
  'verify, tail, tree or export the audit trail',
  {
    name: 'audit',
    usage: USAGE,
    options: { broker: { type: 'string' }, follow: { type: 'boolean' }, limit: { type: 'string' } },
    positionals: { max: 2 },
    subcommands: ['verify', 'tail', 'tree', 'export'],
  },
  async ({ values, positionals }) => {
    const [action, arg] = positionals;
    if (!['verify', 'tail', 'tree', 'export'].includes(action ?? '')) throw new UsageError('say verify, tail, tree TOKEN_ID or export');
    if (action === 'tree' ? !arg : arg !== undefined) throw new UsageError(action === 'tree' ? 'tree needs a TOKEN_ID' : `unexpected argument "${t(arg)}"`);
    if (values.limit !== undefined && !/^[1-9]\d{0,5}$/.test(values.limit)) throw new UsageError(`--limit "${t(values.limit)}" must be a positive whole number`);
    const base = brokerUrl(values.broker);
    const headers = { authorization: `Bearer ${bearerToken()}` };
    if (action === 'verify') {
      const result = (await (await callBroker(`${base}/v1/audit/verify`, { headers })).json()) as VerifyResult;
      const chains = result.chains ?? [];
      if (values.json) {
        output(true, result, '');
        return result.ok ? 0 : 1;
      }
      if (result.ok) {
        process.stdout.write(`audit trail OK (${t(result.count)} events, ${t(result.outcomes ?? 0)} outcomes in ${chains.length} chains)\n`);
        return 0;
      }
      // every broken chain, then stray rows of unregistered chains
      const broken = [...chains.filter((c) => c.broken).map((c) => c.broken!), ...(result.strays ?? [])];
      if (broken.length === 0 && result.first_broken) broken.push(result.first_broken);
      for (const b of broken) process.stdout.write(`audit trail BROKEN: ${describeBroken(b)}\n`);
      return 1;
    }
    if (action === 'tail') return tail(base, headers, values.follow ?? false, values.json ?? false, Number(values.limit ?? 20));
    if (action === 'tree' && arg) {
      const tree = await (await callBroker(`${base}/v1/audit/tree/${encodeURIComponent(arg)}`, { headers })).json();
      output(values.json, tree, () => renderTree(tree as Tree));
      return 0;
    }
    if (action === 'export') {
      const res = await callBroker(`${base}/v1/audit/export`, { headers });
      // JSON lines as the broker sends them, with anything a terminal would act on escaped
      const decoder = new TextDecoder();
      for await (const chunk of res.body!) process.stdout.write(terminalJsonText(decoder.decode(chunk, { stream: true })));
      process.stdout.write(terminalJsonText(decoder.decode()));
      return 0;
    }
    return 2;
  },
);

async function tail(base: string, headers: Record<string, string>, follow: boolean, json: boolean, limit: number): Promise<number> {
  const page = (await (await callBroker(`${base}/v1/audit?limit=${limit}`, { headers })).json()) as { events: AuditRecord[] };
  const print = (e: AuditRecord) => process.stdout.write(json ? `${terminalJson(e)}\n` : `${formatEvent(e)}\n`);
  const events = page.events.reverse();
  events.forEach(print);
  let lastSeq = events.at(-1)?.seq ?? 0;
  while (follow) {
    await new Promise((r) => setTimeout(r, 1000));
    const next = (await (await callBroker(`${base}/v1/audit?limit=1000`, { headers })).json()) as { events: AuditRecord[] };
    const fresh = next.events.filter((e) => e.seq > lastSeq).reverse();
    fresh.forEach(print);
    lastSeq = fresh.at(-1)?.seq ?? lastSeq;
  }
  return 0;
}

function formatEvent(e: AuditRecord): string {
  // delegate names, purposes, resources and reasons are chosen by whoever minted the token: escaped
  const chain = e.lineage.map((l) => (l.depth === 0 ? `${t(l.subject ?? '?')}/${t(l.agent ?? '?')}` : t(l.delegatedTo ?? '?'))).join(' → ');
  const what = e.operation ? `${t(e.operation)} ${t(e.resource)}` : t(e.action);
  return `${t(e.time)} ${t(String(e.decision).toUpperCase()).padEnd(5)} ${what}  [${chain}]${e.reason && e.decision === 'deny' ? `  ${t(e.reason)}` : ''}`;
}

interface Tree {
  tokenId: string;
  roots: TreeNode[];
}
interface TreeNode {
  depth: number;
  subject?: string;
  agent?: string;
  delegatedTo?: string;
  purpose?: string;
  allowed: number;
  denied: number;
  children: TreeNode[];
}

function renderTree(tree: Tree): string {
  const lines = [`token ${t(tree.tokenId)}`];
  const walk = (n: TreeNode) => {
    const who = n.depth === 0 ? `${t(n.subject ?? '?')} via ${t(n.agent ?? '?')}` : `→ ${t(n.delegatedTo ?? '?')}${n.purpose ? ` "${t(n.purpose)}"` : ''}`;
    lines.push(`${'  '.repeat(n.depth + 1)}${who}  allowed ${t(n.allowed)}, denied ${t(n.denied)}`);
    n.children.forEach(walk);
  };
  tree.roots.forEach(walk);
  return `${lines.join('\n')}\n`;
}

interface BrokenLink {
  table: string;
  chainId?: number;
  chainSeq?: number | null;
  seq?: number | null;
  id?: string | null;
  reason: string;
}

interface VerifyResult {
  ok: boolean;
  count?: number;
  outcomes?: number;
  chains?: { chainId: number; broken?: BrokenLink }[];
  strays?: BrokenLink[];
  first_broken?: BrokenLink;
}

/** `chain 7 (audit_events) entry 12 (seq 345, id …): reason`, naming only what is known. */
function describeBroken(b: BrokenLink): string {
  const where = [
    b.chainId !== undefined ? `chain ${t(b.chainId)}` : undefined,
    `(${t(b.table)})`,
    b.chainSeq != null ? `entry ${t(b.chainSeq)}` : undefined,
    b.seq != null || b.id != null ? `(${[b.seq != null ? `seq ${t(b.seq)}` : '', b.id != null ? `id ${t(b.id)}` : ''].filter(Boolean).join(', ')})` : undefined,
  ].filter(Boolean);
  return `${where.join(' ')}: ${t(b.reason)}`;
}

