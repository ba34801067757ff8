/**
 * What inline masking costs on the data path (issue 12): 1,000 rows × 10 text columns through the
 * real proxy, masked vs the same query unmasked, in the same run and process.
 *
 * - unmasked: a token with read_unmasked (the relay does not look at the rows: bytes pass as they come);
 * - masked by rule: 3 of the 10 columns (card last4, e-mail email-domain, one redacted) — the
 *   typical table — and all 10 (last4, email-domain, redact, hmac, null: every value rewritten);
 * Plus the masker alone (no network, no PostgreSQL): the CPU the proxy adds per 1,000 rows, also with
 * the five built-in detectors on all 10 columns (what an unproven column — a user function's result —
 * costs; the test broker's dev policy grants engineers no `execute` to measure it through the proxy).
 *
 *   npm run bench -- masking        # goal: ≤ 1 ms added per 1,000 rows; ~30 s
 *
 * PostgreSQL at DATABASE_URL (a broker database and a demo upstream of its own, dropped after).
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { enforcementFromPolicy } from '../src/enforce/from-policy.ts';
import { compileDetectors } from '../src/enforce/masking/detectors.ts';
import { SessionMasking } from '../src/enforce/masking/plan.ts';
import { parsePolicy } from '../src/policy/load.ts';
import { ResultMasker } from '../src/proxy/pg/result-mask.ts';
import { dataRow } from '../test/helpers/pg-messages.ts';
import { startTestStack } from '../test/helpers/stack.ts';
import { fmt, printTable, summarize, timeSync } from './lib/report.ts';

const ROWS = 1000;
const N = Number(process.env.BENCH_N ?? 200);
const COLUMNS = ['card', 'email', 'c3', 'c4', 'c5', 'c6', 'c7', 'c8', 'c9', 'c10'];

const POLICY = `
rules:
  - { name: engineers, match: { groups: [engineers] }, grants: [{ resources: ["pg:appdb/public.*"], operations: [read] }] }
  - { name: admins, match: { groups: [admins] }, grants: [{ resources: ["*"], operations: ["*"] }] }
masking:
  rules:
    - resources: ["pg:appdb/public.wide"]
      columns: { card: last4, email: email-domain, c3: redact }
    - resources: ["pg:appdb/public.wide_all"]
      columns: { card: last4, email: email-domain, c3: redact, c4: hmac, c5: "null", c6: last4, c7: redact, c8: hmac, c9: email-domain, c10: redact }
`;

async function main(): Promise<void> {
  const policy = parsePolicy(POLICY, 'bench policy');
  const stack = await startTestStack('benchmask', {}, { enforcement: enforcementFromPolicy(policy, { dataDir: mkdtempSync(join(tmpdir(), 'baton-bench-mask-')) }) });
  try {
    await stack.direct(`
      CREATE TABLE public.wide AS
        SELECT '4000 1234 5678 ' || lpad(i::text, 4, '0') AS card, 'person' || i || '@example.com' AS email,
               ${COLUMNS.slice(2).map((c) => `md5(i::text || '${c}') AS ${c}`).join(', ')}
        FROM generate_series(1, ${ROWS}) AS i;
      CREATE TABLE public.wide_all AS SELECT * FROM public.wide;
      GRANT SELECT ON public.wide, public.wide_all TO ${new URL(stack.appdbUrl).username};`);
    const masked = await stack.connect(await stack.token('alice', ['engineers']));
    const raw = await stack.connect(await stack.token('root', ['admins']));
    const SQL = `SELECT ${COLUMNS.join(', ')} FROM wide`;
    const ALL = `SELECT ${COLUMNS.join(', ')} FROM wide_all`;
    const check = (await masked.query(ALL)).rows[0] as Record<string, string | null>;
    if (check.card !== '**** **** **** 0001' || check.c5 !== null) throw new Error(`masking not in effect: ${JSON.stringify(check)}`);
    // interleaved so that drift (CPU frequency, the OS) hits every variant alike
    const samples = { raw: [] as number[], masked: [] as number[], all: [] as number[] };
    const one = async (c: typeof raw, sql: string, into: number[]) => {
      const t = performance.now();
      const r = await c.query(sql);
      into.push((performance.now() - t) * 1000);
      if (r.rows.length !== ROWS) throw new Error('short result');
    };
    const round = async (into: typeof samples) => {
      await one(raw, SQL, into.raw);
      await one(masked, SQL, into.masked);
      await one(masked, ALL, into.all);
    };
    for (let i = 0; i < 20; i++) await round({ raw: [], masked: [], all: [] });
    for (let i = 0; i < N; i++) await round(samples);
    const base = summarize(samples.raw);
    const row = (name: string, s: number[]) => {
      const x = summarize(s);
      return [name, fmt(x.p50 / 1000, 2), fmt(x.p99 / 1000, 2), fmt((x.p50 - base.p50) / 1000, 2)];
    };
    printTable(
      `Through the proxy: ${ROWS} rows × ${COLUMNS.length} text columns, ${N} queries each (node-postgres, simple protocol), interleaved`,
      ['query', 'p50 ms', 'p99 ms', 'added p50 ms per 1,000 rows'],
      [
        row('unmasked (read_unmasked: rows relayed as bytes)', samples.raw),
        row('3 of 10 columns masked by rule', samples.masked),
        row('10 of 10 masked (incl. 2 hmac, 1 null)', samples.all),
      ],
    );

    // the masker alone, on the very DataRow messages PostgreSQL sends
    const rowsOf = (await stack.direct(SQL)).rows as Record<string, string>[];
    const messages = rowsOf.map((r) => dataRow(COLUMNS.map((c) => r[c]!)));
    const session = new SessionMasking({ policy: policy.masking, detectors: compileDetectors(policy.masking.detectors), hmacKey: 'bench-key-bench-key-bench-key-0123', mayUnmask: () => false });
    const shape = (relation: string) => ({ columns: COLUMNS.map((c) => ({ direct: { relations: [relation], column: c }, derived: [], unproven: false })), every: { derived: [], unproven: false }, predicates: [] });
    const byRule = session.statement(shape('pg:appdb/public.wide')).mask!;
    const allByRule = session.statement(shape('pg:appdb/public.wide_all')).mask!;
    const detect = session.statement({ every: { derived: [], unproven: true }, predicates: [] }).mask!;
    const cpu = (mask: typeof byRule) =>
      summarize(
        timeSync(() => {
          const m = new ResultMasker([mask]);
          for (const msg of messages) m.rewrite(0x44, msg, 0, msg.length);
        }, 300, 50),
      );
    const r1 = cpu(byRule);
    const r10 = cpu(allByRule);
    const r2 = cpu(detect);
    printTable(
      `The masker alone (CPU only): ${ROWS} DataRow messages × ${COLUMNS.length} columns`,
      ['mask', 'p50 ms per 1,000 rows', 'p99 ms'],
      [
        ['3 of 10 columns by rule', fmt(r1.p50 / 1000, 3), fmt(r1.p99 / 1000, 3)],
        ['10 of 10 by rule (hmac values all distinct: no cache hits)', fmt(r10.p50 / 1000, 3), fmt(r10.p99 / 1000, 3)],
        ['detectors (5 built-in, all columns)', fmt(r2.p50 / 1000, 3), fmt(r2.p99 / 1000, 3)],
      ],
    );
  } finally {
    await stack.stop();
  }
}

await main();
process.exit(0);
