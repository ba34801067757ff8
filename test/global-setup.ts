/**
 * Test backends. CI sets DATABASE_URL and REDIS_URL, so the real servers are what CI proves. On a
 * machine with neither, the suite starts an embedded PostgreSQL (same migrations) and uses the
 * in-process shared state, so `npm test` still passes. Either way the run says which it used.
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startEmbeddedPostgres, type EmbeddedServer } from '../src/store/embedded-postgres.ts';

let embedded: EmbeddedServer | undefined;
let dir: string | undefined;

export async function setup(): Promise<void> {
  // Tests that start `baton` as a process run the compiled CLI, as users do (and it starts in a
  // fraction of the sources' time, which keeps those tests steady on a loaded machine).
  // (test/meta/exit-code.test.ts runs nested suites beside this one: they must not rebuild under it)
  if (!process.env.BATON_TEST_NESTED) execFileSync(process.execPath, ['bin/build.mjs'], { cwd: new URL('..', import.meta.url), stdio: ['ignore', 'ignore', 'inherit'] });
  if (!process.env.DATABASE_URL) {
    dir = mkdtempSync(join(tmpdir(), 'baton-test-pg-'));
    try {
      embedded = await startEmbeddedPostgres(join(dir, 'pg'), 0, { log: (line) => console.log(line) });
    } catch (err) {
      // one line, no stack: the message says why and what to set
      const failure = new Error((err as Error).message);
      failure.stack = failure.message;
      throw failure;
    }
    await embedded.createDatabase('test');
    process.env.DATABASE_URL = embedded.url('test');
  }
  const pg = embedded ? `embedded PostgreSQL on port ${embedded.port}` : `PostgreSQL at ${redact(process.env.DATABASE_URL!)}`;
  const redis = process.env.REDIS_URL ? `Redis at ${redact(process.env.REDIS_URL)}` : 'in-process shared state (REDIS_URL unset)';
  console.log(`\n[baton tests] backends: ${pg}; ${redis}\n`);
}

export async function teardown(): Promise<void> {
  await embedded?.stop();
  if (dir) rmSync(dir, { recursive: true, force: true });
}

function redact(url: string): string {
  return url.replace(/\/\/([^:@/]+):[^@/]*@/, '//$1:***@');
}
