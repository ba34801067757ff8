/**
 * Differential check: the classifier against PostgreSQL itself (scratch cluster + pgaudit + the
 * server's parse trees; see differential-harness.ts). Fails on any finding — something the server
 * touched that the classifier's accesses do not cover — that is not in differential-known.json, and
 * on any known finding that no longer occurs (the list only shrinks as the classifier is fixed).
 *
 * Regenerate the known list after a fix: DIFF_UPDATE_KNOWN=1 npx vitest run test/proxy/pg/classify/differential.test.ts
 * A longer run: npm run bench -- differential
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CANARIES,
  formatFinding,
  groupFindings,
  knownKey,
  runDifferential,
  scratchAvailability,
  sqlsmithInstalled,
  startScratch,
  type KnownFinding,
  type Report,
  type Scratch,
} from './differential-harness.ts';

/** The CI run: every one-argument function, the mutations, and this many sqlsmith queries. */
const SQLSMITH_QUERIES = 1500;
const SQLSMITH_SEED = 1;

const KNOWN_FILE = new URL('./differential-known.json', import.meta.url);
const avail = scratchAvailability();
const smith = sqlsmithInstalled();
if (!avail.ok) console.warn(`\n[differential] SKIPPED: ${avail.reason}\n`);
else if (!smith) console.warn('\n[differential] sqlsmith not installed (apt-get install sqlsmith): its share of the run is skipped\n');

describe.skipIf(!avail.ok)(`classifier vs PostgreSQL (differential)${avail.ok ? '' : ` — SKIPPED: ${avail.reason}`}`, () => {
  let scratch: Scratch | undefined;
  let report: Report;
  let known: KnownFinding[];

  beforeAll(async () => {
    if (!avail.ok) return;
    scratch = await startScratch(avail.binDir);
    report = await runDifferential(scratch, { sqlsmith: smith ? SQLSMITH_QUERIES : 0, seed: SQLSMITH_SEED });
    known = (JSON.parse(readFileSync(KNOWN_FILE, 'utf8')) as { findings: KnownFinding[] }).findings;
    const byKind = new Map<string, number>();
    for (const f of report.findings) if (f.source !== 'canary') byKind.set(f.kind, (byKind.get(f.kind) ?? 0) + 1);
    console.log(
      `[differential] ${report.statements} statements, ${report.observed} analyzed by the server, ${report.refused} refused by the classifier, ` +
        `${report.findings.filter((f) => f.source !== 'canary').length} uncovered (${[...byKind].map(([k, n]) => `${k} ${n}`).join(', ') || 'none'}) in ${report.seconds.toFixed(1)} s`,
    );
    if (process.env.DIFF_UPDATE_KNOWN === '1') {
      const findings = groupFindings(report.findings.filter((f) => f.source !== 'canary'));
      const doc = {
        comment:
          'Findings of the differential check (differential.test.ts) that the classifier does not fix yet: one entry per (source, kind, object), with an example. The test fails on any finding not listed here and on any entry that no longer occurs. Regenerate with DIFF_UPDATE_KNOWN=1.',
        run: { sqlsmith: smith ? SQLSMITH_QUERIES : 0, seed: SQLSMITH_SEED },
        findings,
      };
      writeFileSync(KNOWN_FILE, `${JSON.stringify(doc, null, 2)}\n`);
      known = findings;
      console.log(`[differential] wrote ${findings.length} known finding(s) to differential-known.json`);
    }
  }, 300_000);

  afterAll(() => scratch?.stop());

  it('the harness sees what the server did (canaries with a pretend "no access" classification are reported)', () => {
    const canary = report.findings.filter((f) => f.source === 'canary');
    for (const c of CANARIES) {
      expect(canary.some((f) => f.sql === c.sql && f.kind === c.expect), `canary not reported: ${c.expect} — ${c.sql}`).toBe(true);
    }
    // most statements reach the server's analyzer (the rest are rejected by PostgreSQL itself)
    expect(report.observed).toBeGreaterThan(report.statements * 0.5);
  });

  it('every access PostgreSQL made is covered by the classification (or listed in differential-known.json)', () => {
    const knownKeys = new Set(known.map(knownKey));
    const fresh = report.findings.filter((f) => f.source !== 'canary' && !knownKeys.has(knownKey(f)));
    if (fresh.length > 0) {
      const seen = new Set<string>();
      const lines = fresh.filter((f) => !seen.has(knownKey(f)) && seen.add(knownKey(f))).map(formatFinding);
      console.log(`[differential] ${fresh.length} NEW finding(s):\n${lines.join('\n')}`);
    }
    expect(fresh.map((f) => `${f.source} ${f.kind} ${f.object}: ${f.sql.slice(0, 200)}`)).toEqual([]);
  });

  it('every finding in differential-known.json still occurs (remove the fixed ones)', () => {
    const now = new Set(report.findings.map(knownKey));
    const gone = known.filter((k) => !now.has(knownKey(k)) && (smith || k.source !== 'sqlsmith'));
    if (gone.length > 0) console.log(`[differential] fixed, remove from differential-known.json:\n${gone.map((g) => `  ${knownKey(g)}`).join('\n')}`);
    expect(gone.map(knownKey)).toEqual([]);
  });
});
