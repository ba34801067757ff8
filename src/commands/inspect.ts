/** `baton inspect` — print a token's delegation lineage as a tree (or JSON). */
import { readFileSync } from 'node:fs';
import { inspect as inspectToken, type Inspection } from '../sdk/inspect.ts';
import { parseKeySet, type KeySetDocument } from '../sdk/key-set.ts';
import { readToken } from './attenuate.ts';
import { brokerUrl, callBroker } from './broker-client.ts';
import { defineCommand, output } from './command.ts';
import { terminalText as t } from './terminal-text.ts';

const USAGE = `usage: baton inspect [--json] [--keys FILE | --verify [--broker URL]]
  Reads the token from BATON_TOKEN, else stdin, else the token \`baton login\` cached for the broker
  (--broker, BATON_BROKER, default http://127.0.0.1:8080). With --keys FILE, or --broker URL / --verify
  (the broker's key set), the signatures are verified; without, the token is decoded UNVERIFIED (and
  says so).`;

export const inspect = defineCommand(
  "show a token's lineage and effective rights",
  { name: 'inspect', usage: USAGE, options: { keys: { type: 'string' }, broker: { type: 'string' }, verify: { type: 'boolean' } } },
  async ({ values }) => {
    let publicKeys: KeySetDocument | undefined;
    if (values.keys) publicKeys = parseKeySet(JSON.parse(readFileSync(values.keys, 'utf8')));
    else if (values.broker || values.verify) {
      publicKeys = parseKeySet(await (await callBroker(`${brokerUrl(values.broker)}/.well-known/baton-keys.json`)).json());
    }
    const result = inspectToken(await readToken(values.broker), { publicKeys });
    output(values.json, result, () => renderTree(result));
    return 0;
  },
);

function renderTree(r: Inspection): string {
  const lines = [r.verified ? 'token (signatures VERIFIED)' : 'token (UNVERIFIED: decoded without the root key)'];
  // a token every verifier refuses (reserved names, over a bound) says so first, whatever follows
  if (r.refusal) lines.push(`REFUSED by every verifier: ${t(r.refusal.code)}: ${t(r.refusal.message)}`);
  for (const link of r.lineage) {
    const indent = '  '.repeat(link.depth);
    // every value below comes from the token (anyone can mint blocks offline): escaped, never raw
    const who = link.depth === 0 ? `${t(link.subject ?? '?')} via agent ${t(link.agent ?? '?')}` : `→ ${t(link.delegatedTo ?? '?')}`;
    lines.push(`${indent}${who}${link.purpose ? `  "${t(link.purpose)}"` : ''}`);
    if (link.resources) lines.push(`${indent}  resources: ${link.resources.map(t).join(', ')}`);
    if (link.operations) lines.push(`${indent}  operations: ${link.operations.map(t).join(', ')}`);
    if (link.expiresAt) lines.push(`${indent}  expires: ${t(link.expiresAt)}`);
    if (link.opaque) lines.push(`${indent}  other checks: ${link.opaque.map(t).join(' | ')}`);
    lines.push(`${indent}  revocation id: ${t(link.revocationId.slice(0, 16))}…`);
  }
  const e = r.effective;
  lines.push(`effective: ${e.operations.map(t).join(', ') || '(nothing)'} on ${e.resources.map(t).join(', ') || '(nothing)'}${e.expiresAt ? ` until ${t(e.expiresAt)}` : ''}${e.approximate ? ' (approximate: custom checks)' : ''}`);
  return `${lines.join('\n')}\n`;
}
