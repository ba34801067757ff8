/**
 * Benchmark servers run in child processes so they never share an event loop with the load
 * generator. A child prints one JSON line on stdout when ready and exits cleanly on SIGTERM.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));

export interface Child<T> {
  info: T;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `node [nodeArgs] --import tsx <script>` and resolves with its first stdout JSON line. */
export function startChild<T>(script: string, env: Record<string, string>, nodeArgs: string[] = []): Promise<Child<T>> {
  const child = spawn(process.execPath, [...nodeArgs, '--import', 'tsx', fileURLToPath(new URL(script, import.meta.url))], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return new Promise((resolve, reject) => {
    let buffer = '';
    const onData = (chunk: Buffer) => {
      buffer += chunk.toString('utf8');
      const nl = buffer.indexOf('\n');
      if (nl < 0) return;
      child.stdout!.off('data', onData);
      child.stdout!.resume(); // drain anything else so the child never blocks on a full pipe
      try {
        const info = JSON.parse(buffer.slice(0, nl)) as T;
        resolve({
          info,
          process: child,
          async stop() {
            if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
            await exited;
          },
        });
      } catch (e) {
        child.kill('SIGKILL');
        reject(new Error(`child ${script} printed no JSON ready line: ${buffer.slice(0, 200)} (${(e as Error).message})`));
      }
    };
    child.stdout!.on('data', onData);
    child.once('exit', (code, signal) => reject(new Error(`child ${script} exited before ready (code ${code}, signal ${signal})`)));
  });
}
