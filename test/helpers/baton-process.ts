/**
 * `baton <command>` as a process of its own (bin/baton.mjs), with a clean environment (PATH plus what
 * the test passes): a broker (`serve`), a proxy, `baton dev`. Output (stdout and stderr) is kept.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { REPO_ROOT } from './cli.ts';

export interface BatonProcess {
  child: ChildProcess;
  /** Everything it printed so far. */
  output(): string;
  /** Resolves once its output matches `pattern`; throws with the output if it exits or 30 s pass first. */
  waitFor(pattern: RegExp, what: string): Promise<void>;
  /** SIGTERM (or `signal`) and wait for the exit; safe to call twice. */
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export function spawnBaton(argv: string[], env: Record<string, string>): BatonProcess {
  const child = spawn(process.execPath, ['bin/baton.mjs', ...argv], { cwd: REPO_ROOT, env: { PATH: process.env.PATH ?? '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return {
    child,
    output: () => out,
    async waitFor(pattern, what) {
      for (let i = 0; i < 300 && !pattern.test(out) && child.exitCode === null; i++) await new Promise((r) => setTimeout(r, 100));
      if (!pattern.test(out)) throw new Error(`${what} did not start:\n${out}`);
    },
    async stop(signal = 'SIGTERM') {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      await exited;
    },
  };
}
