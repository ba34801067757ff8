/**
 * A parent agent exchanges its OIDC token, attenuates for a helper and spawns it as a child process
 * with the token in its environment; the helper attenuates again for a grand-helper.
 *
 *   npm run dev                       # in one terminal
 *   npx tsx examples/nested-agents.ts # in another (BATON_BROKER to point elsewhere)
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { attenuate, exchange, inspect } from '../src/sdk/index.ts';

const broker = process.env.BATON_BROKER ?? 'http://127.0.0.1:8080';
const self = fileURLToPath(import.meta.url);
const role = process.argv[2] ?? 'parent';

function describe(token: string): string {
  const { lineage, effective } = inspect(token);
  const chain = lineage.map((l) => (l.depth === 0 ? `${l.subject} via ${l.agent}` : l.delegatedTo)).join(' → ');
  return `${chain}  [${effective.operations.join(',')} on ${effective.resources.join(',')} until ${effective.expiresAt}]`;
}

function spawnChild(childRole: string, token: string): void {
  const r = spawnSync(process.execPath, ['--import', 'tsx', self, childRole], { env: { ...process.env, BATON_TOKEN: token }, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`${childRole} failed`);
}

if (role === 'parent') {
  // 1. the parent's identity: a dev OIDC token (a real agent gets this from its identity provider)
  const res = await fetch(`${broker}/dev/oidc/token`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ sub: 'alice@example.com', groups: ['engineers'], client_id: 'planner' }),
  });
  const { access_token: oidcToken } = (await res.json()) as { access_token: string };
  // 2. exchange it for a Baton token (the only network call)
  const token = await exchange({ broker, subjectToken: oidcToken });
  console.log(`parent        ${describe(token)}`);
  // 3. narrow it offline for the helper, then spawn the helper with it
  const forHelper = attenuate(token, { resources: ['pg:appdb/public.orders', 'pg:appdb/public.customers'], operations: ['read'], ttl: '10m', delegateTo: 'helper-7', purpose: 'summarise orders' });
  spawnChild('helper', forHelper);
} else if (role === 'helper') {
  const token = process.env.BATON_TOKEN!;
  console.log(`helper        ${describe(token)}`);
  const forGrand = attenuate(token, { resources: ['pg:appdb/public.orders'], ttl: '2m', delegateTo: 'grand-helper-1', purpose: 'count yesterday' });
  spawnChild('grand-helper', forGrand);
} else {
  const token = process.env.BATON_TOKEN!;
  console.log(`grand-helper  ${describe(token)}`);
  console.log(`\nconnect with: PGPASSWORD=<token> psql "host=127.0.0.1 port=6432 dbname=appdb user=agent"`);
}
