/**
 * The CLI's token cache: `baton login` / `baton exchange` keep the Baton token they obtained, one per
 * broker URL, in `$XDG_CONFIG_HOME/baton/tokens.json` (else `~/.config/baton/tokens.json`). The
 * directory is 0700 and the file 0600, written whole (temporary file + rename); a cache file that
 * others can read, or that someone else owns, is refused rather than used.
 *
 * Where a command finds the token it works on (`tokenFor`): BATON_TOKEN, then stdin (when the
 * command reads stdin and something was piped), then the cached token of the broker — which is
 * refused once expired, with a message saying to log in again.
 */
import { chmodSync, closeSync, fsyncSync, mkdirSync, openSync, readFileSync, renameSync, statSync, writeSync } from 'node:fs';
import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';
import { effectiveRights, readLineage } from '../token/lineage.ts';
import { decodeToken } from '../token/wire/index.ts';
import { CliError, readStdin } from './command.ts';
import { terminalText as t } from './terminal-text.ts';

export interface CachedToken {
  broker: string;
  token: string;
  subject?: string;
  agent?: string;
  /** ISO time the token expires (from its own expiry check), if it has one. */
  expires_at?: string;
  obtained_at: string;
}

interface CacheFile {
  version: 1;
  tokens: Record<string, CachedToken>;
}

/** `$XDG_CONFIG_HOME/baton` (an absolute XDG_CONFIG_HOME only, per the spec), else `~/.config/baton`. */
export function configDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_CONFIG_HOME;
  return join(xdg && isAbsolute(xdg) ? xdg : join(env.HOME || homedir(), '.config'), 'baton');
}

export function cachePath(env: NodeJS.ProcessEnv = process.env): string {
  return join(configDir(env), 'tokens.json');
}

/** The cache key: the broker URL without a trailing slash. */
function key(broker: string): string {
  return broker.replace(/\/+$/, '');
}

function checkPrivate(path: string): void {
  if (process.platform === 'win32') return;
  const st = statSync(path);
  if (typeof process.getuid === 'function' && st.uid !== process.getuid()) {
    throw new CliError('BATON_CLI_CACHE_UNSAFE', `refusing to use ${t(path)}: it belongs to another user`);
  }
  if (st.mode & 0o077) {
    throw new CliError(
      'BATON_CLI_CACHE_UNSAFE',
      `refusing to use ${t(path)}: others can read it (mode ${(st.mode & 0o777).toString(8)}); remove it and run \`baton login\` again`,
    );
  }
}

function readCache(path: string): CacheFile {
  let text: string;
  try {
    checkPrivate(path);
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { version: 1, tokens: {} };
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as CacheFile;
    if (parsed?.version === 1 && parsed.tokens && typeof parsed.tokens === 'object') return parsed;
  } catch {
    // fall through
  }
  throw new CliError('BATON_CLI_CACHE_UNSAFE', `${t(path)} is not a Baton token cache; remove it and run \`baton login\` again`);
}

function writeCache(path: string, cache: CacheFile): void {
  const dir = configDir();
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  if (process.platform !== 'win32') chmodSync(dir, 0o700);
  const tmp = `${path}.${process.pid}.tmp`;
  const fd = openSync(tmp, 'wx', 0o600);
  try {
    writeSync(fd, `${JSON.stringify(cache, null, 2)}\n`);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

/** What the token says about itself (unverified: only for display and the expiry check). */
function describe(token: string): Pick<CachedToken, 'subject' | 'agent' | 'expires_at'> {
  // decoded only (no verifier, so no wasm to compile on every CLI start that reads the cache)
  const decoded = decodeToken(token);
  const root = readLineage(decoded)[0];
  const { expiresAt } = effectiveRights(decoded);
  return {
    ...(root?.subject ? { subject: root.subject } : {}),
    ...(root?.agent ? { agent: root.agent } : {}),
    ...(expiresAt ? { expires_at: expiresAt } : {}),
  };
}

/** Stores `token` as the cached token for `broker`; returns the entry and the file. */
export function saveToken(broker: string, token: string): { entry: CachedToken; path: string } {
  const path = cachePath();
  const cache = readCache(path);
  const entry: CachedToken = { broker: key(broker), token, ...describe(token), obtained_at: new Date().toISOString() };
  cache.tokens[key(broker)] = entry;
  writeCache(path, cache);
  return { entry, path };
}

/** Drops the cached token for `broker`; true when there was one. */
export function forgetToken(broker: string): boolean {
  const path = cachePath();
  const cache = readCache(path);
  if (!cache.tokens[key(broker)]) return false;
  delete cache.tokens[key(broker)];
  writeCache(path, cache);
  return true;
}

/** The cached token for `broker`, refusing an expired one. */
export function cachedToken(broker: string, now = new Date()): CachedToken {
  const path = cachePath();
  const entry = readCache(path).tokens[key(broker)];
  if (!entry?.token) {
    throw new CliError('BATON_CLI_NO_TOKEN', `no token: set BATON_TOKEN, pipe one on stdin, or run \`baton login\` (nothing cached for ${t(key(broker))})`);
  }
  if (entry.expires_at && new Date(entry.expires_at) <= now) {
    throw new CliError('BATON_CLI_TOKEN_EXPIRED', `the cached token for ${t(key(broker))} expired at ${t(entry.expires_at)}; run \`baton login\` again`);
  }
  return entry;
}

export type TokenSource = 'BATON_TOKEN' | 'stdin' | 'cache';

/**
 * The token a command works on: BATON_TOKEN, then stdin (if `stdin` and something was piped), then
 * the cache for `broker` (if `cache`).
 */
export async function tokenFor(opts: { broker?: string; stdin?: boolean; cache?: boolean }): Promise<{ token: string; source: TokenSource }> {
  const env = (process.env.BATON_TOKEN ?? '').trim();
  if (env) return { token: env, source: 'BATON_TOKEN' };
  if (opts.stdin !== false) {
    const piped = (await readStdin()).trim();
    if (piped) return { token: piped, source: 'stdin' };
  }
  if (opts.cache && opts.broker) return { token: cachedToken(opts.broker).token, source: 'cache' };
  throw new CliError('BATON_CLI_NO_TOKEN', opts.stdin === false ? 'no token: set BATON_TOKEN' : 'no token: set BATON_TOKEN or pipe one on stdin');
}

