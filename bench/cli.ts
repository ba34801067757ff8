/**
 * CLI start-up: wall time of whole `baton` processes (the compiled CLI, bin/baton.mjs → dist/cli.js),
 * N runs each, against `node -e 0` measured in the same run and interleaved with them (so machine
 * load hits every row alike). The token is minted in-process with an ephemeral key.
 *
 *   npm run bench -- cli            # BENCH_CLI_RUNS=30 to change
 *
 * Builds dist/ first (`node bin/build.mjs server`) and runs with BATON_CLI_FROM=dist, so the timing is
 * of the compiled output even while someone edits src/ (an installed package always runs dist/).
 * Targets (issue #11): --help ≤ 150 ms, attenuate / inspect ≤ 300 ms.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Keyring } from '../src/keys/keyring.ts';
import { mintToken } from '../src/token/mint.ts';
import { fmt, printTable, quantile } from './lib/report.ts';

const RUNS = Number(process.env.BENCH_CLI_RUNS ?? 30);
const root = fileURLToPath(new URL('..', import.meta.url));

execFileSync(process.execPath, ['bin/build.mjs', 'server'], { cwd: root, stdio: 'inherit' });

const { token } = mintToken(
  {
    subject: 'alice@example.com',
    issuer: 'https://idp.example.com',
    agent: 'planner',
    rights: [
      { resource: 'pg:appdb/public.*', operation: 'read' },
      { resource: 'pg:appdb/public.*', operation: 'insert' },
    ],
    expiresAt: new Date(Date.now() + 3600_000),
  },
  Keyring.ephemeral().signingKey(),
);

const env = { ...process.env, BATON_CLI_FROM: 'dist', BATON_TOKEN: token, XDG_CONFIG_HOME: '/nonexistent-baton-bench' };
const CASES: { name: string; args: string[]; limit?: number }[] = [
  { name: 'node -e 0 (baseline)', args: ['-e', '0'] },
  { name: 'baton --help', args: ['bin/baton.mjs', '--help'], limit: 150 },
  { name: 'baton attenuate --to helper --op read --ttl 5m', args: ['bin/baton.mjs', 'attenuate', '--to', 'helper', '--resource', 'pg:appdb/public.orders', '--op', 'read', '--ttl', '5m'], limit: 300 },
  { name: 'baton inspect', args: ['bin/baton.mjs', 'inspect'], limit: 300 },
];

// CPU time (user + sys) of the child, from /usr/bin/time when there is one: steadier than wall time
// on a shared machine, where waiting for a core inflates the wall clock.
const TIME = existsSync('/usr/bin/time') ? '/usr/bin/time' : undefined;

function once(args: string[]): { wall: number; cpu: number } {
  const started = process.hrtime.bigint();
  const r = TIME
    ? spawnSync(TIME, ['-f', 'BENCH-CPU %U %S', process.execPath, ...args], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' })
    : spawnSync(process.execPath, args, { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  const wall = Number(process.hrtime.bigint() - started) / 1e6;
  if (r.status !== 0) throw new Error(`node ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  const m = /BENCH-CPU ([\d.]+) ([\d.]+)/.exec(r.stderr);
  return { wall, cpu: m ? (Number(m[1]) + Number(m[2])) * 1000 : NaN };
}

const samples = CASES.map(() => [] as { wall: number; cpu: number }[]);
for (const c of CASES) once(c.args); // warm the file cache
for (let i = 0; i < RUNS; i++) CASES.forEach((c, j) => samples[j]!.push(once(c.args)));

const stat = (j: number, key: 'wall' | 'cpu', q: number) => quantile(samples[j]!.map((s) => s[key]).sort((a, b) => a - b), q);
const rows = CASES.map((c, j) => {
  const p50 = stat(j, 'wall', 0.5);
  return [
    c.name,
    fmt(p50),
    fmt(stat(j, 'wall', 0.9)),
    j === 0 ? '—' : fmt(p50 - stat(0, 'wall', 0.5)),
    fmt(stat(j, 'cpu', 0.5)),
    j === 0 ? '—' : fmt(stat(j, 'cpu', 0.5) - stat(0, 'cpu', 0.5)),
    c.limit ? `${c.limit}${p50 <= c.limit ? ' ✓' : ' ✗'}` : '—',
  ];
});
printTable(`CLI start-up, ${RUNS} runs each, interleaved (ms; wall = whole process; cpu = user + sys)`, ['command', 'wall median', 'wall p90', 'wall − baseline', 'cpu median', 'cpu − baseline', 'target (wall median)'], rows);
console.log(`load average at end: ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
