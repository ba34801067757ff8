/**
 * Runs the benchmarks, each in a fresh Node process (no JIT, wasm or pool state carried between
 * them), and prints their tables. Writes nothing else.
 *
 *   npm run bench                    # all of them, ~5 minutes on 2 cores
 *   npm run bench -- pgproxy audit   # only the named ones
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { fileURLToPath } from 'node:url';

/** In run order; a file that is not there (yet) is skipped with a note. */
const BENCHMARKS = ['exchange', 'attenuate', 'cli', 'classify', 'pgproxy', 'audit', 'revocation', 'masking', 'httpproxy', 'pgidentity', 'scale', 'differential'] as const;

const fileOf = (name: string) => fileURLToPath(new URL(`./${name}.ts`, import.meta.url));

function run(name: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', fileOf(name)], { stdio: 'inherit', cwd: fileURLToPath(new URL('..', import.meta.url)) });
    child.once('error', reject);
    child.once('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0)));
  });
}

const wanted = process.argv.slice(2);
const unknown = wanted.filter((w) => !(BENCHMARKS as readonly string[]).includes(w));
if (unknown.length) {
  console.error(`unknown benchmark(s): ${unknown.join(', ')}; available: ${BENCHMARKS.join(', ')}`);
  process.exit(2);
}
const selected = wanted.length ? wanted : [...BENCHMARKS];

console.log(`# Baton benchmarks — ${new Date().toISOString()}`);
console.log(`node ${process.version}, ${cpus().length} CPUs (${cpus()[0]?.model.trim()}), load average at start ${loadavg().map((x) => x.toFixed(2)).join(' ')}`);
let failed = 0;
for (const name of selected) {
  if (!existsSync(fileOf(name))) {
    console.log(`\n## ${name}: bench/${name}.ts not present, skipped`);
    continue;
  }
  console.log(`\n## ${name}`);
  const started = performance.now();
  const code = await run(name);
  console.log(`\n(${name}: ${((performance.now() - started) / 1000).toFixed(0)} s${code ? `, FAILED with exit code ${code}` : ''})`);
  if (code) failed++;
}
process.exit(failed ? 1 : 0);
