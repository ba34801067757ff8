/**
 * Building the validated, frozen configuration from file + environment, with clear errors.
 *
 * Secrets need not sit in the YAML file (docs/operations.md, "Secrets in configuration"):
 * - `${VAR}` in a string value of the file is replaced by the environment variable VAR (unset → an
 *   error naming it); `$${` is a literal `${`.
 * - a key ending in `_FILE` (`password_FILE: /run/secrets/appdb`) sets the key without the suffix to
 *   the file's content (one trailing newline dropped); so does an environment variable (`DATABASE_URL_FILE`
 *   for `DATABASE_URL`). Setting both forms is an error.
 * Both are resolved before validation; errors name the variable, key or file, never a value.
 */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigSchema, type Config, type ConfigInput } from './schema.ts';
import type { RedisTopology } from '../store/shared-state.ts';

/** Environment variables Baton reads, and where each lands. */
export const ENVIRONMENT = {
  DATABASE_URL: ['databaseUrl'],
  DATABASE_READ_URL: ['databaseReadUrl'],
  REDIS_SENTINELS: ['redis', 'sentinel', 'sentinels'],
  REDIS_SENTINEL_NAME: ['redis', 'sentinel', 'name'],
  REDIS_CLUSTER_NODES: ['redis', 'cluster', 'nodes'],
  REDIS_URL: ['redisUrl'],
  BATON_DATA_DIR: ['dataDir'],
  BATON_LOG_LEVEL: ['logLevel'],
  BATON_BROKER_HOST: ['broker', 'host'],
  BATON_BROKER_PORT: ['broker', 'port'],
  BATON_PUBLIC_URL: ['broker', 'publicUrl'],
  BATON_POLICY_FILE: ['broker', 'policyFile'],
  BATON_KEYS_FILE: ['broker', 'keysFile'],
  BATON_PROXY_HOST: ['proxy', 'host'],
  BATON_PROXY_PORT: ['proxy', 'port'],
  BATON_KEYSET_URL: ['proxy', 'keySetUrl'],
  BATON_BROKER_URL: ['proxy', 'brokerUrl'],
  BATON_PROXY_POLICY_FILE: ['proxy', 'policyFile'],
  BATON_PROXY_POOLING: ['proxy', 'pooling'],
  BATON_PROXY_POOL_SIZE: ['proxy', 'pool', 'size'],
  BATON_PROXY_HTTP_HOST: ['proxy', 'http', 'host'],
  BATON_PROXY_HTTP_PORT: ['proxy', 'http', 'port'],
  BATON_PROXY_ADMIN_HOST: ['proxy', 'admin', 'host'],
  BATON_PROXY_ADMIN_PORT: ['proxy', 'admin', 'port'],
} as const;

/** The suffix that reads a value from a file (config keys and environment variables alike). */
const FILE_SUFFIX = '_FILE';

/** Which process the configuration is for: production checks differ. */
export type Role = 'broker' | 'proxy';

export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; overrides?: ConfigInput; role?: Role } = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.BATON_CONFIG;
  const raw: Record<string, unknown> = file ? (resolveReferences(readConfigFile(file), env, []) as Record<string, unknown>) : {};
  for (const [name, path] of Object.entries(ENVIRONMENT)) {
    const value = environmentValue(env, name);
    if (value !== undefined && value !== '') setPath(raw, path, value);
  }
  const merged = deepMerge(raw, (opts.overrides ?? {}) as Record<string, unknown>);
  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) {
    throw new Error(`invalid Baton configuration${file ? ` (${file})` : ''}:\n${z.prettifyError(parsed.error)}`);
  }
  if (parsed.data.redisUrl && (parsed.data.redis.sentinel || parsed.data.redis.cluster)) {
    throw new Error(`invalid Baton configuration${file ? ` (${file})` : ''}:\nredisUrl / REDIS_URL and redis.${parsed.data.redis.sentinel ? 'sentinel' : 'cluster'} exclude each other: say which one`);
  }
  const config = withUpstreamPasswords(parsed.data);
  if (config.mode === 'production') assertProductionReady(config, opts.role ?? 'broker');
  return deepFreeze(config);
}

/**
 * Dev mode (embedded database, the dev OIDC issuer that mints tokens for anyone, insecure defaults)
 * must not serve where the environment says production: a config file copied from a laptop would
 * otherwise quietly run an open broker. Servers call this; one-shot tools (`baton migrate`) need not.
 *
 * @throws Error naming both settings and how to fix it
 */
export function assertModeFitsEnvironment(config: Pick<Config, 'mode'>, env: NodeJS.ProcessEnv = process.env): void {
  if (config.mode === 'dev' && env.NODE_ENV === 'production') {
    throw new Error(
      'refusing to start: the configuration says mode: dev but NODE_ENV=production. Dev mode runs an embedded database and an OIDC issuer that mints tokens for anyone; set mode: production (and its required settings) or unset NODE_ENV',
    );
  }
}

/** Insecure defaults refuse to boot outside dev mode (STYLE.md 7). */
function assertProductionReady(c: Config, role: Role): void {
  const problems: string[] = [];
  if (!c.databaseUrl) problems.push('DATABASE_URL is required (the embedded database is for dev mode)');
  if (role === 'broker') {
    if (!c.broker.policyFile) problems.push('broker.policyFile / BATON_POLICY_FILE is required');
    if (c.oidc.issuers.length === 0) problems.push('oidc.issuers must list at least one trusted issuer');
  } else {
    if (!c.proxy.brokerUrl) problems.push('proxy.brokerUrl / BATON_BROKER_URL is required (revocation resync)');
    if (!c.proxy.keySetUrl && !c.proxy.keySetFile) problems.push('proxy.keySetUrl / BATON_KEYSET_URL or proxy.keySetFile is required');
    if (Object.keys(c.proxy.upstreams).length === 0 && Object.keys(c.proxy.http.upstreams).length === 0) {
      problems.push('proxy.upstreams (Postgres) or proxy.http.upstreams (HTTP) must name at least one upstream');
    }
    if (!c.proxy.policyFile && !c.broker.policyFile) problems.push('proxy.policyFile / BATON_PROXY_POLICY_FILE is required (the masking and approval rules the proxy enforces)');
  }
  if (c.proxy.allowInsecure) problems.push('proxy.allowInsecure is not allowed in production');
  if (problems.length) throw new Error(`refusing to start in production mode:\n- ${problems.join('\n- ')}`);
}

/** `${VAR}` in strings, `key_FILE` keys; `at` is the key path (for errors). */
function resolveReferences(node: unknown, env: NodeJS.ProcessEnv, at: string[]): unknown {
  if (typeof node === 'string') return interpolate(node, env, at);
  if (Array.isArray(node)) return node.map((v, i) => resolveReferences(v, env, [...at, String(i)]));
  if (!node || typeof node !== 'object') return node;
  const source = node as Record<string, unknown>;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(source)) {
    if (key.endsWith(FILE_SUFFIX) && key.length > FILE_SUFFIX.length) {
      const target = key.slice(0, -FILE_SUFFIX.length);
      const where = [...at, key].join('.');
      if (target in source) throw new Error(`config ${[...at, target].join('.')} is set twice: directly and by ${where}; keep one`);
      const path = resolveReferences(value, env, [...at, key]);
      if (typeof path !== 'string' || path === '') throw new Error(`config ${where} must be a file path`);
      out[target] = readSecretFile(path, `config ${where}`);
    } else {
      out[key] = resolveReferences(value, env, [...at, key]);
    }
  }
  return out;
}

const REFERENCE = /\$(\$?)\{([^}]*)\}?/g;
const VARIABLE_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

function interpolate(text: string, env: NodeJS.ProcessEnv, at: string[]): string {
  if (!text.includes('${')) return text;
  return text.replace(REFERENCE, (match, escaped: string, name: string) => {
    const where = `config ${at.join('.') || '(top level)'}`;
    if (!match.endsWith('}')) throw new Error(`${where}: unterminated \${…} reference (write $\${ for a literal \${)`);
    if (escaped) return match.slice(1);
    if (!VARIABLE_NAME.test(name)) throw new Error(`${where}: \${${name.slice(0, 40)}} is not a valid environment variable name (write $\${ for a literal \${)`);
    const value = env[name];
    if (value === undefined) throw new Error(`${where} references \${${name}}, but ${name} is not set in the environment`);
    return value;
  });
}

/** env[name], or the content of the file env[name_FILE] names. */
function environmentValue(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const file = env[`${name}${FILE_SUFFIX}`];
  if (file === undefined || file === '') return env[name];
  if (env[name] !== undefined && env[name] !== '') throw new Error(`both ${name} and ${name}${FILE_SUFFIX} are set; keep one`);
  return readSecretFile(file, `environment variable ${name}${FILE_SUFFIX}`);
}

/** A secret's file: its content without one trailing newline. Errors name the file, never its content. */
function readSecretFile(path: string, what: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new Error(`${what}: cannot read ${path} (${err.code ?? err.message})`);
  }
  return text.replace(/\r?\n$/, '');
}

/** Upstreams' separate `password` goes into their URL (percent-encoded), where the proxy reads it. */
function withUpstreamPasswords(config: Config): Config {
  for (const [name, upstream] of Object.entries(config.proxy.upstreams)) {
    if (upstream.password === undefined) continue;
    const url = new URL(upstream.url);
    if (url.password) throw new Error(`config proxy.upstreams.${name}: the url has a password and password is set too; keep one`);
    if (!url.username) throw new Error(`config proxy.upstreams.${name}: password needs a user name in the url (postgres://USER@host/db)`);
    url.password = encodeURIComponent(upstream.password);
    config.proxy.upstreams[name] = { url: url.toString() };
  }
  return config;
}

function readConfigFile(path: string): Record<string, unknown> {
  try {
    const value = parseYaml(readFileSync(path, 'utf8')) ?? {};
    if (typeof value !== 'object' || Array.isArray(value)) throw new Error('top level must be a mapping');
    return value as Record<string, unknown>;
  } catch (e) {
    throw new Error(`cannot read config file ${path}: ${(e as Error).message}`);
  }
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (typeof node[key] !== 'object' || node[key] === null) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1]!] = value;
}

function deepMerge(a: Record<string, unknown>, b: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = out[k];
    out[k] =
      v && typeof v === 'object' && !Array.isArray(v) && prev && typeof prev === 'object' && !Array.isArray(prev)
        ? deepMerge(prev as Record<string, unknown>, v as Record<string, unknown>)
        : v;
  }
  return out;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

/**
 * How to reach Redis: `redis.sentinel`, `redis.cluster`, or `redisUrl`; undefined = no Redis
 * (in-process state, one process only).
 */
export function redisTopology(config: Pick<Config, 'redisUrl' | 'redis'>): RedisTopology | undefined {
  const hostPort = (entry: string) => {
    const at = entry.lastIndexOf(':');
    return { host: entry.slice(0, at), port: Number(entry.slice(at + 1)) };
  };
  const { sentinel, cluster } = config.redis;
  if (sentinel) {
    return {
      kind: 'sentinel',
      name: sentinel.name,
      sentinels: sentinel.sentinels.map(hostPort),
      ...(sentinel.password ? { password: sentinel.password } : {}),
      ...(sentinel.sentinelPassword ? { sentinelPassword: sentinel.sentinelPassword } : {}),
    };
  }
  if (cluster) return { kind: 'cluster', nodes: cluster.nodes.map(hostPort), ...(cluster.password ? { password: cluster.password } : {}) };
  return config.redisUrl ? { kind: 'single', url: config.redisUrl } : undefined;
}
