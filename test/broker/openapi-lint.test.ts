/**
 * openapi.yaml passes a real OpenAPI linter: Redocly CLI's `recommended` ruleset (operationIds,
 * `security` on every operation — `security: []` on public ones —, a license, a 4xx response per
 * operation, valid $refs and schemas…). Any error or warning fails. Runs the CLI the way a person
 * would (`npx redocly lint`), with telemetry and update checks off (no network here).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(dirname(createRequire(import.meta.url).resolve('@redocly/cli/package.json')), 'bin', 'cli.js');

interface LintReport {
  totals: { errors: number; warnings: number; ignored: number };
  problems: { ruleId: string; severity: string; message: string; location: { pointer?: string }[] }[];
}

async function lint(file: string, cwd: string): Promise<LintReport> {
  // exit code 1 on errors: the JSON report is still on stdout
  const result = await run(process.execPath, [cli, 'lint', file, '--extends=recommended', '--format=json', '--max-problems=1000', '--lint-config=off'], {
    cwd,
    env: { ...process.env, REDOCLY_TELEMETRY: 'off', REDOCLY_SUPPRESS_UPDATE_NOTICE: 'true', NO_COLOR: '1' },
    maxBuffer: 16 * 1024 * 1024,
  }).catch((err: { stdout?: string; stderr?: string }) => {
    if (!err.stdout) throw new Error(`redocly lint did not run: ${err.stderr ?? String(err)}`);
    return { stdout: err.stdout };
  });
  return JSON.parse(result.stdout.slice(result.stdout.indexOf('{'))) as LintReport;
}

const scratch = mkdtempSync(join(tmpdir(), 'baton-openapi-lint-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

describe('openapi.yaml under Redocly recommended rules', () => {
  it('has no errors and no warnings', { timeout: 60_000 }, async () => {
    const report = await lint('openapi.yaml', root);
    const problems = report.problems.map((p) => `${p.severity} ${p.ruleId}: ${p.message} @ ${p.location.map((l) => l.pointer).join(', ')}`);
    expect(problems).toEqual([]);
    expect(report.totals).toEqual({ errors: 0, warnings: 0, ignored: 0 });
  });

  it('is not silenced by an ignore file or a relaxed config in the repository', () => {
    expect(existsSync(join(root, '.redocly.lint-ignore.yaml'))).toBe(false);
    for (const name of ['redocly.yaml', '.redocly.yaml']) expect(existsSync(join(root, name))).toBe(false);
  });

  it('the linter does report what the rules forbid (the check is not a no-op)', { timeout: 60_000 }, async () => {
    const bad = join(scratch, 'bad.yaml');
    writeFileSync(
      bad,
      'openapi: 3.1.0\ninfo: { title: t, version: "1" }\nservers: [{ url: "https://example.com" }]\npaths:\n  /x:\n    get:\n      summary: x\n      responses:\n        "200": { description: ok }\n',
    );
    const report = await lint(bad, scratch);
    const rules = new Set(report.problems.map((p) => p.ruleId));
    expect(rules).toContain('info-license');
    expect(rules).toContain('operation-operationId');
    expect(rules).toContain('security-defined');
    expect(report.totals.errors).toBeGreaterThan(0);
  });
});
