/**
 * Running the `baton` CLI as a child process, the way people do: `node bin/baton.mjs`, i.e. the
 * compiled dist/ the suite's global set-up builds (fast to start on a loaded machine; bin/baton.mjs
 * falls back to the sources only if src/ changed since). Stdin is empty unless `input` is given (a never-closed pipe would make
 * commands that read a piped token wait for ever), BATON_TOKEN is unset unless given, and the user's
 * config dir is whatever `env` says (pass a temporary XDG_CONFIG_HOME/HOME).
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  /** Added to (and overriding) the parent's environment; `undefined` removes a variable. */
  env?: Record<string, string | undefined>;
  input?: string;
  /** Kill after this long (default 60 s: a loaded 2-core machine). */
  timeoutMs?: number;
}

/** `baton ...args`; resolves with the exit code and both outputs (never rejects on a non-zero exit). */
export function runCli(args: string[], opts: CliOptions = {}): Promise<CliResult> {
  const env: NodeJS.ProcessEnv = { ...process.env, BATON_TOKEN: undefined, BATON_BROKER: undefined };
  for (const [k, v] of Object.entries(opts.env ?? {})) env[k] = v;
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  const child = spawn(process.execPath, ['bin/baton.mjs', ...args], {
    cwd: REPO_ROOT,
    env,
    stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (stderr += d.toString()));
  if (opts.input !== undefined) child.stdin!.end(opts.input);
  const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
  return new Promise((resolve, reject) => {
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
  });
}
