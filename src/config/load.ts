/** Building the validated, frozen configuration from file + environment, with clear errors. */
import { readFileSync } from 'node:fs';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { ConfigSchema, type Config, type ConfigInput } from './schema.ts';

/** Environment variables Baton reads, and where each lands. */
export const ENVIRONMENT = {
  DATABASE_URL: ['databaseUrl'],
  REDIS_URL: ['redisUrl'],
  BATON_DATA_DIR: ['dataDir'],
  BATON_LOG_LEVEL: ['logLevel'],
  BATON_BROKER_HOST: ['broker', 'host'],
  BATON_BROKER_PORT: ['broker', 'port'],
  BATON_PUBLIC_URL: ['broker', 'publicUrl'],
  BATON_POLICY_FILE: ['broker', 'policyFile'],
  BATON_PROXY_HOST: ['proxy', 'host'],
  BATON_PROXY_PORT: ['proxy', 'port'],
  BATON_KEYSET_URL: ['proxy', 'keySetUrl'],
  BATON_BROKER_URL: ['proxy', 'brokerUrl'],
} as const;

/** Which process the configuration is for: production checks differ. */
export type Role = 'broker' | 'proxy';

export function loadConfig(opts: { file?: string; env?: NodeJS.ProcessEnv; overrides?: ConfigInput; role?: Role } = {}): Config {
  const env = opts.env ?? process.env;
  const file = opts.file ?? env.BATON_CONFIG;
  const raw: Record<string, unknown> = file ? readConfigFile(file) : {};
  for (const [name, path] of Object.entries(ENVIRONMENT)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(raw, path, value);
  }
  const merged = deepMerge(raw, (opts.overrides ?? {}) as Record<string, unknown>);
  const parsed = ConfigSchema.safeParse(merged);
  if (!parsed.success) {
    throw new Error(`invalid Baton configuration${file ? ` (${file})` : ''}:\n${z.prettifyError(parsed.error)}`);
  }
  const config = parsed.data;
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
    if (Object.keys(c.proxy.upstreams).length === 0) problems.push('proxy.upstreams must name at least one upstream');
  }
  if (c.proxy.allowInsecure) problems.push('proxy.allowInsecure is not allowed in production');
  if (problems.length) throw new Error(`refusing to start in production mode:\n- ${problems.join('\n- ')}`);
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
