/**
 * `npm test` must exit non-zero when a test fails, whatever the backends: an embedded PostgreSQL once
 * made it exit 0 (its package's exit hook called process.exit(0) over vitest's code). Runs the real
 * npm script, with the suite's global set-up, on a fixture that fails or passes on request.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const root = new URL('../..', import.meta.url).pathname;

function npmTest(outcome: 'pass' | 'fail', backends: 'embedded' | 'given'): Promise<{ code: number | null; output: string }> {
  const env: NodeJS.ProcessEnv = { ...process.env, BATON_FIXTURE_OUTCOME: outcome, BATON_TEST_NESTED: '1', NO_COLOR: '1' };
  delete env.VITEST; // a fresh vitest, not a worker of this one
  delete env.VITEST_WORKER_ID;
  delete env.VITEST_POOL_ID;
  if (backends === 'embedded') {
    delete env.DATABASE_URL;
    delete env.REDIS_URL;
  }
  return new Promise((resolve, reject) => {
    const child = spawn('npm', ['test', '--', '--config', 'test/meta/fixtures.config.ts'], { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    child.once('error', reject);
    child.once('close', (code) => resolve({ code, output }));
  });
}

describe('npm test exit code', () => {
  const cases = process.env.DATABASE_URL ? (['embedded', 'given'] as const) : (['embedded'] as const);
  it.each(cases)('is non-zero when a test fails and zero when it passes (%s PostgreSQL)', async (backends) => {
    const failing = await npmTest('fail', backends);
    expect(failing.output).toMatch(/1 failed/);
    expect(failing.output).toMatch(backends === 'embedded' ? /backends: embedded PostgreSQL/ : /backends: PostgreSQL at/);
    expect(failing.code, failing.output).not.toBe(0);

    const passing = await npmTest('pass', backends);
    expect(passing.code, passing.output).toBe(0);
    expect(passing.output).toMatch(/1 passed/);
  }, 180_000);
});
