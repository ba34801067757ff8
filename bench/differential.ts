/**
 * The long differential run of the SQL classifier against PostgreSQL (see
 * test/proxy/pg/classify/differential-harness.ts): every one-argument function of a scratch
 * PostgreSQL with pgaudit, the hand-written bypass mutations and many sqlsmith queries. Prints
 * counts per source, the findings grouped by (source, kind, object) with an example each, and
 * which of them are not in the CI test's known list.
 *
 *   npm run bench -- differential
 *   DIFF_SQLSMITH=20000 DIFF_SEED=7 DIFF_JSON=/tmp/findings.json node --import tsx bench/differential.ts
 */
import { readFileSync, writeFileSync } from 'node:fs';
import {
  formatFinding,
  groupFindings,
  knownKey,
  runDifferential,
  scratchAvailability,
  sqlsmithInstalled,
  startScratch,
  type KnownFinding,
} from '../test/proxy/pg/classify/differential-harness.ts';

const sqlsmith = Number(process.env.DIFF_SQLSMITH ?? 5000);
const seed = Number(process.env.DIFF_SEED ?? 1);
const sweepLimit = process.env.DIFF_SWEEP === undefined ? Infinity : Number(process.env.DIFF_SWEEP);

const avail = scratchAvailability();
if (!avail.ok) {
  console.log(`skipped: ${avail.reason}`);
  process.exit(0);
}
const withSmith = sqlsmithInstalled() ? sqlsmith : 0;
if (!sqlsmithInstalled()) console.log('sqlsmith not installed (apt-get install sqlsmith): sweep and mutations only');

const scratch = await startScratch(avail.binDir);
try {
  const r = await runDifferential(scratch, { sqlsmith: withSmith, seed, sweepLimit, log: (l) => console.log(l) });
  console.log(`\n${r.statements} statements (${r.executed} executed, ${r.observed} analyzed by the server, ${r.refused} refused by the classifier) in ${r.seconds.toFixed(1)} s`);
  console.log('\n| source | statements | analyzed | refused | findings |\n|---|---:|---:|---:|---:|');
  for (const [s, c] of Object.entries(r.bySource).sort()) console.log(`| ${s} | ${c.statements} | ${c.observed} | ${c.refused} | ${c.findings} |`);
  console.log('\nexplained by design (not findings):');
  for (const [what, n] of Object.entries(r.indirect).sort()) console.log(`  ${n}× ${what}`);
  const canaries = r.findings.filter((f) => f.source === 'canary');
  console.log(`\nself-check: ${canaries.length} finding(s) from ${new Set(canaries.map((f) => f.sql)).size} canary statement(s) with a pretend empty classification`);
  r.findings = r.findings.filter((f) => f.source !== 'canary');
  const groups = groupFindings(r.findings);
  const byKind = new Map<string, number>();
  for (const f of r.findings) byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
  console.log(`\nfindings: ${r.findings.length} statements, ${groups.length} distinct (source, kind, object)`);
  for (const [k, n] of [...byKind].sort()) console.log(`  ${k}: ${n}`);
  const known = new Set(
    (JSON.parse(readFileSync(new URL('../test/proxy/pg/classify/differential-known.json', import.meta.url), 'utf8')) as { findings: KnownFinding[] }).findings.map(knownKey),
  );
  const fresh = groups.filter((g) => !known.has(knownKey(g)));
  console.log(`\n${fresh.length} distinct finding(s) not in test/proxy/pg/classify/differential-known.json`);
  const shown = new Set<string>();
  for (const f of r.findings) {
    const key = knownKey(f);
    if (shown.has(key)) continue;
    shown.add(key);
    console.log(`${known.has(key) ? '' : 'NEW '}${formatFinding(f)}`);
  }
  if (process.env.DIFF_JSON) writeFileSync(process.env.DIFF_JSON, JSON.stringify({ report: { ...r, findings: undefined }, findings: groups }, null, 2));
} finally {
  scratch.stop();
}
