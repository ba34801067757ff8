/**
 * Offline token work: `attenuate()` and `inspect()` per call (10k iterations after warm-up), token
 * size per added block along a chain, and the proxy's per-connection (`verifyToken`) and
 * per-new-(resource, operation) (`authorize`) costs (2k iterations: they are slower and steadier). The authority block is minted from the real dev
 * policy's grant for an engineer (pg:appdb/public.* × read/insert/update/delete).
 *
 *   npm run bench -- attenuate      # BENCH_ITERATIONS=10000 to change
 */
import { DEV_POLICY_FILE } from '../src/broker/server.ts';
import { Keyring } from '../src/keys/keyring.ts';
import { evaluatePolicy } from '../src/policy/evaluate.ts';
import { loadPolicyFile } from '../src/policy/load.ts';
import { inspect } from '../src/sdk/inspect.ts';
import { attenuate, type AttenuateOptions } from '../src/token/attenuate.ts';
import { authorize } from '../src/token/authorize.ts';
import { mintToken } from '../src/token/mint.ts';
import { verifyToken } from '../src/token/verify.ts';
import { warmUpAuthorizer } from '../src/token/warmup.ts';
import { fmt, printTable, summarize, timeSync } from './lib/report.ts';

const ITERATIONS = Number(process.env.BENCH_ITERATIONS ?? 10_000);
const PROXY_ITERATIONS = Math.min(ITERATIONS, 2000);

/** Each link narrows the previous one, the way a planner hands work down to helpers. */
const LINKS: AttenuateOptions[] = [
  { resources: ['pg:appdb/public.*'], operations: ['read', 'insert'], ttl: '10m', delegateTo: 'planner-sub-1', purpose: 'nightly report pipeline' },
  { resources: ['pg:appdb/public.orders', 'pg:appdb/public.customers'], operations: ['read'], ttl: '5m', delegateTo: 'helper-7', purpose: "summarise yesterday's orders" },
  { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '2m', delegateTo: 'helper-7-sql', purpose: 'one aggregate query' },
  { resources: ['pg:appdb/public.orders'], operations: ['read'], ttl: '1m', delegateTo: 'helper-7-sql-retry', purpose: 'retry of the aggregate' },
];

const bytes = (token: string) => Buffer.from(token, 'base64url').length;

async function main(): Promise<void> {
  await warmUpAuthorizer();
  const keyring = Keyring.ephemeral();
  const who = { issuer: 'https://idp.example.com', subject: 'alice@example.com', groups: ['engineers'], clientId: 'planner' };
  const grant = evaluatePolicy(loadPolicyFile(DEV_POLICY_FILE), who);
  const { token: authority } = mintToken(
    { subject: who.subject, issuer: who.issuer, agent: who.clientId, rights: grant.rights, roles: grant.roles, expiresAt: new Date(Date.now() + grant.ttlSeconds * 1000) },
    keyring.signingKey(),
  );

  // chain[i] has i + 1 blocks (links): chain[0] is the authority token alone
  const chain = [authority];
  for (const link of LINKS) chain.push(attenuate(chain.at(-1)!, link));

  const sizeRows = chain.map((t, i) => [
    `${i + 1} (${i === 0 ? 'authority' : `authority + ${i}`})`,
    String(t.length),
    String(bytes(t)),
    i === 0 ? '—' : String(bytes(t) - bytes(chain[i - 1]!)),
  ]);

  const rows: string[][] = [];
  const add = (name: string, us: number[], errors = 0) => {
    const s = summarize(us);
    rows.push([name, fmt(s.p50, 1), fmt(s.p99, 1), fmt(s.mean, 1), String(errors)]);
  };
  // biscuit-wasm can throw RunLimit (a retryable server error, never a decision) on a busy machine: count, don't abort
  let engineErrors = 0;
  const counted = (fn: () => unknown) => () => {
    try {
      fn();
    } catch (err) {
      if ((err as { code?: string }).code !== 'BATON_ERR_SERVER') throw err;
      engineErrors++;
    }
  };
  const measured = (fn: () => unknown): [number[], number] => {
    engineErrors = 0;
    const us = timeSync(counted(fn), PROXY_ITERATIONS);
    return [us, engineErrors];
  };
  for (const depth of [0, 2]) {
    add(`attenuate(): ${depth + 1}-link parent → ${depth + 2} links`, timeSync(() => attenuate(chain[depth]!, LINKS[depth]!), ITERATIONS));
  }
  const four = chain[3]!;
  add('inspect() 4-link, decode only (no keys)', timeSync(() => inspect(four), ITERATIONS));
  add('inspect() 4-link, verified (keys given)', timeSync(() => inspect(four, { publicKeys: keyring }), ITERATIONS));
  add('verifyToken() 1 link (per connection)', timeSync(() => verifyToken(authority, keyring).biscuit.free(), PROXY_ITERATIONS));
  add('verifyToken() 4 links (per connection)', timeSync(() => verifyToken(four, keyring).biscuit.free(), PROXY_ITERATIONS));
  for (const [label, t] of [['1 link', authority], ['4 links', four]] as const) {
    const v = verifyToken(t, keyring);
    try {
      if (!authorize(v.biscuit, 'pg:appdb/public.orders', 'read', new Date()).allow) throw new Error('benchmark token must be allowed');
      add(`authorize() ${label}, allow (per new pair)`, ...measured(() => authorize(v.biscuit, 'pg:appdb/public.orders', 'read', new Date())));
      add(`authorize() ${label}, deny (per new pair)`, ...measured(() => authorize(v.biscuit, 'pg:appdb/public.orders', 'truncate', new Date())));
    } finally {
      v.biscuit.free();
    }
  }

  console.log(`\nOffline token operations — one call at a time after warm-up; ${ITERATIONS} timed calls for attenuate/inspect, ${PROXY_ITERATIONS} for verifyToken/authorize`);
  printTable('Per-call cost (goal: attenuate ≤ 300 µs median)', ['operation', 'p50 µs', 'p99 µs', 'mean µs', 'RunLimit errors'], rows);
  printTable('Token size along a chain (goal: 4-link token ≤ 1.5 KB = 1536 bytes)', ['links (blocks)', 'base64 chars', 'bytes', '+bytes for this block'], sizeRows);
}

await main();
