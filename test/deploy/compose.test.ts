/**
 * docker-compose.yml, the Dockerfile and deploy/ without Docker (none runs here): the compose file
 * is valid against the Compose Specification's JSON schema (vendored, test/deploy/fixtures/README.md);
 * every file it mounts exists; every ${VAR} has a default or is in deploy/.env.example (with the
 * same default); every config file a service runs with passes the real config loader in that
 * service's environment; healthchecks probe /healthz and /readyz; the image's ENTRYPOINT/CMD and the
 * compose commands are `baton` commands that exist — and this test runs them: the broker from
 * deploy/config/broker.yaml, the proxy from deploy/config/proxy.yaml with TLS material made by
 * deploy/tls/generate.sh in front of a database initialised by deploy/upstream-init/ exactly as the
 * postgres image's entrypoint would (psql, ON_ERROR_STOP), as the least-privileged role it creates.
 * The `scale` profile (brokers behind HAProxy, proxies, one key file) is checked the same way, and its
 * key file and brokers run here too (HAProxy as well, when installed); deploy/kubernetes/ is parsed
 * and its ConfigMap's configs go through the loader in the containers' environments.
 */
import { execFile, spawn, spawnSync } from 'node:child_process';
import { spawnBaton, type BatonProcess } from '../helpers/baton-process.ts';
import { createHash, createHmac, pbkdf2Sync, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join, posix, resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml, parseAllDocuments, stringify as stringifyYaml } from 'yaml';
import { COMMANDS } from '../../src/commands/index.ts';
import { assertModeFitsEnvironment, loadConfig, type Role } from '../../src/config/load.ts';
import type { Config } from '../../src/config/schema.ts';
import { loadPolicyFile } from '../../src/policy/load.ts';
import { DEMO_SCHEMA, dropDemoUpstream } from '../../src/dev/demo-upstream.ts';
import { upstreamFromUrl, upstreamRoleProblems } from '../../src/proxy/pg/upstreams.ts';
import { freePort } from '../../src/util/free-port.ts';
import { TEST_DATABASE_URL } from '../helpers/database.ts';

const run = promisify(execFile);
const root = fileURLToPath(new URL('../../', import.meta.url));
const at = (...p: string[]) => join(root, ...p);
const TEST_REDIS_URL = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';

// ---------------------------------------------------------------------------------------------
// Compose interpolation (https://github.com/compose-spec/compose-spec/blob/main/12-interpolation.md)

interface VarUse {
  name: string;
  /** `:-`/`-` default, undefined when there is none */
  fallback?: string;
}

const VAR = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

function interpolateString(s: string, env: Record<string, string | undefined>, uses: VarUse[]): string {
  return s.replace(VAR, (match, name: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
    if (match === '$$') return '$';
    const n = (name ?? bare)!;
    const value = env[n];
    switch (op) {
      case ':-':
        uses.push({ name: n, fallback: arg });
        return value ? value : arg!;
      case '-':
        uses.push({ name: n, fallback: arg });
        return value ?? arg!;
      case ':?':
      case '?':
        uses.push({ name: n });
        if (value === undefined || (op === ':?' && value === '')) throw new Error(`required variable ${n}: ${arg}`);
        return value;
      case ':+':
      case '+':
        uses.push({ name: n, fallback: '' });
        return value ? arg! : '';
      default:
        uses.push({ name: n });
        return value ?? '';
    }
  });
}

function interpolate<T>(value: T, env: Record<string, string | undefined>, uses: VarUse[] = []): T {
  if (typeof value === 'string') return interpolateString(value, env, uses) as T;
  if (Array.isArray(value)) return value.map((v) => interpolate(v, env, uses)) as T;
  if (value && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, interpolate(v, env, uses)])) as T;
  return value;
}

// ---------------------------------------------------------------------------------------------
// The files under test

interface Service {
  image?: string;
  build?: { context: string; target?: string; dockerfile?: string };
  command?: string[];
  environment?: Record<string, string>;
  volumes?: string[];
  ports?: string[];
  profiles?: string[];
  healthcheck?: { test: string[] };
  depends_on?: Record<string, { condition: string }>;
  restart?: string;
}
interface Compose {
  services: Record<string, Service>;
  volumes: Record<string, unknown>;
}

const composeText = readFileSync(at('docker-compose.yml'), 'utf8');
const rawCompose = parseYaml(composeText) as Compose;
const varUses: VarUse[] = [];
/** As `docker compose` sees it with an empty environment: every default applied. */
const compose = interpolate(rawCompose, {}, varUses);

/** KEY=value lines of deploy/.env.example */
const envExample = new Map(
  readFileSync(at('deploy/.env.example'), 'utf8')
    .split('\n')
    .filter((l) => /^[A-Za-z_][A-Za-z0-9_]*=/.test(l))
    .map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)] as const),
);

interface Instruction {
  op: string;
  args: string;
  stage: number;
}
/** Dockerfile instructions (continuations joined, comments dropped), with the stage index. */
function parseDockerfile(text: string): Instruction[] {
  const out: Instruction[] = [];
  let stage = -1;
  let pending = '';
  for (const line of text.split('\n')) {
    if (!pending && /^\s*#/.test(line)) continue;
    if (/\\\s*$/.test(line)) {
      pending += line.replace(/\\\s*$/, ' ');
      continue;
    }
    const full = (pending + line).trim();
    pending = '';
    if (!full || full.startsWith('#')) continue;
    const [, op, args] = /^(\S+)\s*(.*)$/.exec(full)!;
    if (op!.toUpperCase() === 'FROM') stage++;
    out.push({ op: op!.toUpperCase(), args: args!, stage });
  }
  return out;
}
const dockerfile = parseDockerfile(readFileSync(at('Dockerfile'), 'utf8'));
const finalStage = Math.max(...dockerfile.map((i) => i.stage));
const runtime = dockerfile.filter((i) => i.stage === finalStage);
const jsonForm = (op: string): string[] => {
  const found = runtime.filter((i) => i.op === op).at(-1);
  if (!found) throw new Error(`no ${op} in the Dockerfile's final stage`);
  return JSON.parse(found.args) as string[];
};
/** ENV of the final stage, as the containers see it. */
const imageEnv: Record<string, string> = Object.fromEntries(
  runtime
    .filter((i) => i.op === 'ENV')
    .flatMap((i) => [...i.args.matchAll(/([A-Za-z_][A-Za-z0-9_]*)=("[^"]*"|\S+)/g)].map((m) => [m[1]!, m[2]!.replace(/^"|"$/g, '')])),
);

const batonServices = Object.entries(compose.services).filter(([, s]) => s.build || s.image?.startsWith('baton'));
/** One-shot services (profile scale: keys-init): others wait for them to exit successfully, not for health. */
const oneShot = new Set(
  Object.values(compose.services).flatMap((s) =>
    Object.entries(s.depends_on ?? {})
      .filter(([, d]) => d.condition === 'service_completed_successfully')
      .map(([n]) => n),
  ),
);
/** The baton services that keep running: a config file, listeners, a healthcheck. */
const servingBaton = batonServices.filter(([n]) => !oneShot.has(n));

/** host path of a bind mount whose container side is `containerPath` (a file, or a file inside a mounted directory) */
function hostPathOf(service: Service, containerPath: string): string | undefined {
  for (const v of service.volumes ?? []) {
    const [src, dst] = v.split(':');
    if (!src || !dst || !(src.startsWith('./') || src.startsWith('/'))) continue;
    if (containerPath === dst) return resolve(root, src);
    if (containerPath.startsWith(`${dst}/`)) return resolve(root, src, posix.relative(dst, containerPath));
  }
  return undefined;
}

/** The `baton` command line a compose service runs: image ENTRYPOINT + its command (or the image CMD). */
function commandLine(service: Service): string[] {
  return [...jsonForm('ENTRYPOINT'), ...(service.command ?? jsonForm('CMD'))];
}

function optionValue(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(name);
  return i >= 0 ? argv[i + 1] : undefined;
}

/** What a baton service loads: its config file (host path), environment, role and overrides, as the CLI does. */
function serviceConfig(name: string): { file: string; env: Record<string, string>; config: Config; argv: string[] } {
  const service = compose.services[name]!;
  const argv = commandLine(service);
  const env: Record<string, string> = { ...imageEnv, ...(service.environment ?? {}) };
  const containerFile = optionValue(argv, '--config') ?? env.BATON_CONFIG;
  if (!containerFile) throw new Error(`${name}: no --config or BATON_CONFIG`);
  const file = hostPathOf(service, containerFile);
  if (!file) throw new Error(`${name}: ${containerFile} is not mounted from the host`);
  const command = argv[2];
  const role: Role = command === 'proxy' ? 'proxy' : 'broker';
  // `baton dev` loads with mode dev forced and its ports from the command line (src/commands/dev.ts)
  const overrides =
    command === 'dev'
      ? { mode: 'dev' as const, broker: { port: Number(optionValue(argv, '--broker-port')) }, proxy: { port: Number(optionValue(argv, '--proxy-port')) } }
      : undefined;
  const config = loadConfig({ file, env: { ...env, BATON_CONFIG: file }, role, ...(overrides ? { overrides } : {}) });
  return { file, env, config, argv };
}

/** Where `containerPath` lives for `service`: in a named volume or a host path (the longest mount that holds it), and whether read-only. */
function mountOf(service: Service, containerPath: string): { volume?: string; host?: string; path: string; readOnly: boolean } | undefined {
  let best: { src: string; dst: string; readOnly: boolean } | undefined;
  for (const v of service.volumes ?? []) {
    const [src, dst, mode] = v.split(':');
    if (!src || !dst || !(containerPath === dst || containerPath.startsWith(`${dst}/`))) continue;
    if (!best || dst.length > best.dst.length) best = { src, dst, readOnly: mode === 'ro' };
  }
  if (!best) return undefined;
  const path = posix.relative(best.dst, containerPath);
  return best.src.startsWith('./') || best.src.startsWith('/') ? { host: resolve(root, best.src), path, readOnly: best.readOnly } : { volume: best.src, path, readOnly: best.readOnly };
}

/** The profile `scale`'s services by role. */
const scaleServices = Object.entries(compose.services).filter(([, s]) => s.profiles?.includes('scale'));
const scaleBaton = servingBaton.filter(([, s]) => s.profiles?.includes('scale'));
const scaleBrokers = scaleBaton.filter(([, s]) => commandLine(s)[2] === 'serve').map(([n]) => n);
const scaleProxies = scaleBaton.filter(([, s]) => commandLine(s)[2] === 'proxy').map(([n]) => n);

interface HaproxySection {
  kind: string;
  name: string;
  /** the section's lines, split into words (comments dropped) */
  lines: string[][];
}
/** HAProxy's configuration: sections (global, defaults, frontend NAME, backend NAME, resolvers NAME …) start in column 0. */
function parseHaproxy(text: string): HaproxySection[] {
  const sections: HaproxySection[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (!line) continue;
    const words = line.split(/\s+/);
    if (/^\S/.test(raw)) sections.push({ kind: words[0]!, name: words[1] ?? '', lines: [] });
    else sections.at(-1)!.lines.push(words);
  }
  return sections;
}
const haproxySection = (cfg: HaproxySection[], kind: string, name: string) => {
  const found = cfg.find((x) => x.kind === kind && x.name === name);
  if (!found) throw new Error(`haproxy.cfg has no ${kind} ${name}`);
  return found;
};
const directive = (section: HaproxySection, ...words: string[]) => section.lines.filter((l) => words.every((w, i) => l[i] === w));
/** `bind [ADDR]:PORT` → port */
const bindPort = (section: HaproxySection) => Number(/:(\d+)$/.exec(directive(section, 'bind')[0]![1]!)![1]);

// ---------------------------------------------------------------------------------------------

describe('docker-compose.yml', () => {
  it('is valid against the Compose Specification schema, before and after interpolation', () => {
    const schema = JSON.parse(readFileSync(new URL('fixtures/compose-spec.json', import.meta.url), 'utf8')) as object;
    const ajv = new Ajv({ strict: false, allErrors: true });
    // the schema names draft-07's meta-schema by its https URL; ajv ships it under the http one
    const draft07 = createRequire(import.meta.url)('ajv/dist/refs/json-schema-draft-07.json') as Record<string, unknown>;
    ajv.addMetaSchema({ ...draft07, $id: 'https://json-schema.org/draft-07/schema' });
    (addFormatsModule as unknown as (a: Ajv) => void)(ajv);
    const validate = ajv.compile(schema);
    for (const doc of [rawCompose, compose]) {
      validate(doc);
      expect(validate.errors ?? []).toEqual([]);
    }
    // the schema does reject mistakes (a misspelt key, a wrong type)
    const broken = structuredClone(compose) as unknown as { services: Record<string, Record<string, unknown>> };
    broken.services.broker!.helthcheck = broken.services.broker!.healthcheck;
    broken.services.proxy!.depends_on = 'broker';
    expect(validate(broken)).toBe(false);
  });

  it('uses no variable without a default unless deploy/.env.example describes it, with the same defaults', () => {
    expect(varUses.length).toBeGreaterThan(0);
    for (const use of varUses) {
      if (use.fallback === undefined) expect(envExample.has(use.name), `${use.name} has no default and is not in deploy/.env.example`).toBe(true);
    }
    const used = new Set(varUses.map((u) => u.name));
    for (const [name, value] of envExample) {
      expect(used.has(name), `deploy/.env.example lists ${name}, which the compose file does not use`).toBe(true);
      for (const use of varUses.filter((u) => u.name === name && u.fallback !== undefined)) {
        expect(use.fallback, `default of ${name}`).toBe(value);
      }
    }
    // interpolating with the example's values gives the same model as with the defaults
    expect(interpolate(rawCompose, Object.fromEntries(envExample))).toEqual(compose);
  });

  it('mounts only files and directories that exist, and builds from a Dockerfile that exists', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      for (const v of service.volumes ?? []) {
        const [src] = v.split(':');
        if (src!.startsWith('./') || src!.startsWith('/')) expect(existsSync(resolve(root, src!)), `${name}: ${src}`).toBe(true);
        else expect(Object.keys(compose.volumes), `${name}: named volume ${src}`).toContain(src);
      }
      if (service.build) {
        expect(existsSync(resolve(root, service.build.context, service.build.dockerfile ?? 'Dockerfile'))).toBe(true);
        if (service.build.target) expect(dockerfile.some((i) => i.op === 'FROM' && new RegExp(`\\bAS\\s+${service.build!.target}$`, 'i').test(i.args))).toBe(true);
      }
    }
    // the init directories hold what the postgres image runs (*.sql, *.sh)
    for (const dir of ['deploy/upstream-init', 'deploy/postgres-init']) {
      const files = readdirSync(at(dir));
      expect(files.length).toBeGreaterThan(0);
      for (const f of files) expect(f).toMatch(/\.(sql|sh)$/);
    }
  });

  it('gives every service a healthcheck; the baton HTTP ones probe /healthz and /readyz on the configured port', () => {
    for (const [name, service] of Object.entries(compose.services)) {
      // a one-shot service exits: what others wait for is its exit status (the scale profile's tests)
      if (oneShot.has(name)) continue;
      expect(service.healthcheck?.test, `${name} has no healthcheck`).toBeDefined();
      for (const dep of Object.entries(service.depends_on ?? {})) {
        if (oneShot.has(dep[0])) continue;
        expect(compose.services[dep[0]]?.healthcheck, `${name} waits for ${dep[0]}'s health`).toBeDefined();
        expect(dep[1].condition).toBe('service_healthy');
      }
    }
    for (const [name] of servingBaton) {
      const { config, argv } = serviceConfig(name);
      const test = compose.services[name]!.healthcheck!.test;
      expect(test.slice(0, 3)).toEqual(['CMD', 'node', 'deploy/healthcheck.mjs']);
      const targets = test.slice(3);
      if (argv[2] === 'proxy') {
        const admin = (config.proxy as { admin?: { port?: number } }).admin?.port;
        expect(admin).toBeGreaterThan(0);
        expect(targets).toEqual([`http://127.0.0.1:${admin}/healthz`, `http://127.0.0.1:${admin}/readyz`]);
      } else {
        expect(targets).toEqual([`http://127.0.0.1:${config.broker.port}/healthz`, `http://127.0.0.1:${config.broker.port}/readyz`]);
      }
    }
    const image = runtime.find((i) => i.op === 'HEALTHCHECK')!.args;
    const probe = JSON.parse(image.slice(image.indexOf('CMD') + 3).trim()) as string[];
    expect(probe).toEqual(['node', 'deploy/healthcheck.mjs', 'http://127.0.0.1:8080/healthz', 'http://127.0.0.1:8080/readyz']);
  });

  it("runs each baton service with a config file that the real loader accepts in that service's environment", () => {
    const names = servingBaton.map(([n]) => n).sort();
    expect(names).toEqual(['baton-dev', 'broker', 'broker-1', 'broker-2', 'proxy', 'proxy-1', 'proxy-2']);
    for (const name of names) {
      const { config, env } = serviceConfig(name);
      expect(() => assertModeFitsEnvironment(config, env)).not.toThrow();
    }

    const broker = serviceConfig('broker').config;
    expect(broker.mode).toBe('production');
    expect(broker.broker.host).toBe('0.0.0.0');
    expect(compose.services.broker!.ports).toEqual([`8080:${broker.broker.port}`]);
    // the policy file is mounted and is a valid policy
    const policy = hostPathOf(compose.services.broker!, broker.broker.policyFile!);
    expect(policy).toBeDefined();
    expect(() => loadPolicyFile(policy!)).not.toThrow();

    const proxy = serviceConfig('proxy').config;
    expect(proxy.proxy.host).toBe('0.0.0.0');
    expect(compose.services.proxy!.ports).toEqual([`6432:${proxy.proxy.port}`]);
    // it reaches the broker by its service name and port
    for (const url of [proxy.proxy.brokerUrl!, proxy.proxy.keySetUrl!]) {
      const u = new URL(url);
      expect(u.hostname).toBe('broker');
      expect(Number(u.port)).toBe(broker.broker.port);
    }
    // its TLS files are what generate.sh writes, in the mounted deploy/tls
    expect(proxy.proxy.tls).toBeDefined();
    for (const f of [proxy.proxy.tls!.certFile, proxy.proxy.tls!.keyFile]) {
      expect(hostPathOf(compose.services.proxy!, f)).toBe(at('deploy/tls', basename(f)));
    }

    const dev = serviceConfig('baton-dev');
    expect(dev.config.mode).toBe('dev');
    // the dev issuer is <public URL>/dev/oidc: loopback, on the port that is published (on the host's loopback only)
    const publicUrl = new URL(dev.config.broker.publicUrl!);
    expect(publicUrl.hostname).toBe('127.0.0.1');
    expect(Number(publicUrl.port)).toBe(dev.config.broker.port);
    expect(compose.services['baton-dev']!.ports).toEqual([
      `127.0.0.1:${dev.config.broker.port}:${dev.config.broker.port}`,
      `127.0.0.1:${dev.config.proxy.port}:${dev.config.proxy.port}`,
    ]);
    expect(compose.services['baton-dev']!.profiles).toEqual(['dev']);
  });

  it('points every database, Redis and upstream URL at a compose service, database and password that exist', () => {
    const pgPassword = compose.services.postgres!.environment!.POSTGRES_PASSWORD;
    const created = new Set([
      compose.services.postgres!.environment!.POSTGRES_DB,
      ...Array.from(readFileSync(at('deploy/postgres-init/10-dev-database.sql'), 'utf8').matchAll(/CREATE DATABASE (\w+)/g), (m) => m[1]),
    ]);
    for (const [name] of servingBaton) {
      const { config } = serviceConfig(name);
      const db = new URL(config.databaseUrl!);
      expect(db.hostname).toBe('postgres');
      expect(db.password).toBe(pgPassword);
      expect(created, `${name}'s database`).toContain(db.pathname.slice(1));
      const redis = new URL(config.redisUrl!);
      expect(compose.services[redis.hostname]?.image).toMatch(/^redis:/);
      expect(compose.services[name]!.depends_on).toHaveProperty(redis.hostname);
    }
    // the dev profile's Redis is its own (Pub/Sub is not separated by database number)
    expect(new URL(serviceConfig('baton-dev').config.redisUrl!).hostname).not.toBe(new URL(serviceConfig('broker').config.redisUrl!).hostname);

    const sql = readFileSync(at('deploy/upstream-init/10-appdb.sql'), 'utf8');
    // the compose upstream has baton dev's demo tables, word for word
    expect(sql).toContain(DEMO_SCHEMA.trim());
    const rolePassword = /PASSWORD '([^']+)'/.exec(sql)![1];
    for (const name of ['proxy', 'baton-dev', 'proxy-1', 'proxy-2']) {
      const up = new URL(serviceConfig(name).config.proxy.upstreams.appdb!.url);
      expect(up.hostname).toBe('upstream');
      expect(up.pathname).toBe(`/${compose.services.upstream!.environment!.POSTGRES_DB}`);
      expect(up.username).toBe('baton_proxy');
      expect(decodeURIComponent(up.password)).toBe(rolePassword);
      expect(compose.services[name]!.depends_on).toHaveProperty('upstream');
    }
  });
});

describe('docker-compose.yml, profile scale: brokers behind a load balancer, proxies, one key file', () => {
  const lb = compose.services['broker-lb']!;
  const lbFile = mountOf(lb, '/usr/local/etc/haproxy/haproxy.cfg');
  const cfg = parseHaproxy(readFileSync(lbFile?.host ?? at('deploy/haproxy/haproxy.cfg'), 'utf8'));

  it('has two brokers, a load balancer, two proxies and the key file provisioning, and leaves the other profiles as they were', () => {
    expect(scaleServices.map(([n]) => n).sort()).toEqual(['broker-1', 'broker-2', 'broker-lb', 'keys-init', 'proxy-1', 'proxy-2']);
    expect(scaleBrokers.sort()).toEqual(['broker-1', 'broker-2']);
    expect(scaleProxies.sort()).toEqual(['proxy-1', 'proxy-2']);
    for (const [, s] of scaleServices) expect(s.profiles).toEqual(['scale']);
    // the load balancer is an existing image configured by a file under deploy/
    expect(lb.image).toMatch(/^haproxy:\d/);
    expect(lbFile).toEqual({ host: at('deploy/haproxy/haproxy.cfg'), path: '', readOnly: true });
    // the default stack and the dev profile are untouched
    const byProfile = (p: string | undefined) =>
      Object.entries(compose.services)
        .filter(([, s]) => (p ? s.profiles?.includes(p) : !s.profiles))
        .map(([n]) => n)
        .sort();
    expect(byProfile(undefined)).toEqual(['broker', 'postgres', 'proxy', 'redis', 'upstream']);
    expect(byProfile('dev')).toEqual(['baton-dev', 'redis-dev']);
    // the scale stack shares postgres, redis and upstream but neither the default broker nor proxy …
    for (const [name, s] of scaleServices) for (const dep of Object.keys(s.depends_on ?? {})) expect(['postgres', 'redis', 'upstream', ...scaleServices.map(([n]) => n)], name).toContain(dep);
    // … and can run next to them: no host port is published twice
    const hostPorts = Object.values(compose.services).flatMap((s) => (s.ports ?? []).map((p) => p.split(':').slice(0, -1).join(':')));
    expect(new Set(hostPorts).size).toBe(hostPorts.length);
    // the brokers are reached through the load balancer only
    for (const name of scaleBrokers) expect(compose.services[name]!.ports).toBeUndefined();
  });

  it('provisions one key file once, before any broker starts, and every broker reads that file read-only (BATON_KEYS_FILE)', () => {
    const init = compose.services['keys-init']!;
    const argv = commandLine(init);
    expect(argv.slice(2, 4)).toEqual(['keys', 'list']);
    const keysFile = optionValue(argv, '--keys-file')!;
    const provisioned = mountOf(init, keysFile)!;
    // a named volume, writable by keys-init (it creates the file; `keys rotate` writes it)
    expect(provisioned.volume).toBeDefined();
    expect(Object.keys(compose.volumes)).toContain(provisioned.volume);
    expect(provisioned.readOnly).toBe(false);
    // mounted on the image's data directory, which belongs to the image's (non-root) user
    expect(posix.dirname(keysFile)).toBe(imageEnv.BATON_DATA_DIR);
    expect(runtime.some((i) => i.op === 'RUN' && i.args.includes(`chown node:node ${imageEnv.BATON_DATA_DIR}`))).toBe(true);
    // a one-shot: no ports, no restart, no healthcheck to wait for
    expect(init.ports).toBeUndefined();
    expect(init.restart).toBe('no');
    expect([...oneShot]).toEqual(['keys-init']);

    const dataVolumes = new Set<string>();
    for (const name of scaleBrokers) {
      const { config, env } = serviceConfig(name);
      expect(env.BATON_KEYS_FILE, name).toBeDefined();
      expect(config.broker.keysFile).toBe(env.BATON_KEYS_FILE);
      // the same file in the same volume, mounted read-only
      expect(mountOf(compose.services[name]!, config.broker.keysFile!)).toEqual({ ...provisioned, readOnly: true });
      expect(compose.services[name]!.depends_on!['keys-init']).toEqual({ condition: 'service_completed_successfully' });
      // each broker has a data directory of its own (its audit anchors), which is not the key volume
      const data = mountOf(compose.services[name]!, config.dataDir)!;
      expect(data.volume).toBeDefined();
      expect(data.readOnly).toBe(false);
      expect(data.volume).not.toBe(provisioned.volume);
      dataVolumes.add(data.volume!);
    }
    expect(dataVolumes.size).toBe(scaleBrokers.length);
    // the rotation docs/deploy.md gives runs on keys-init, whose mount can write the file
    const docs = readFileSync(at('docs/deploy.md'), 'utf8');
    const rotate = /docker compose --profile scale run --rm (\S+) keys rotate --keys-file (\S+)/.exec(docs);
    expect(rotate?.slice(1)).toEqual(['keys-init', keysFile]);
  });

  it('gives every broker the same public URL: the load balancer\'s, on the host port it publishes', () => {
    const urls = scaleBrokers.map((n) => serviceConfig(n).config.broker.publicUrl);
    expect(new Set(urls).size).toBe(1);
    const publicUrl = new URL(urls[0]!);
    const frontend = cfg.find((x) => x.kind === 'frontend' && directive(x, 'default_backend').length > 0)!;
    expect(lb.ports).toEqual([`${publicUrl.port}:${bindPort(frontend)}`]);
    expect(publicUrl.hostname).toBe('127.0.0.1');
    // the proxies hand out approval links at that URL too
    for (const name of scaleProxies) expect(serviceConfig(name).config.broker.publicUrl).toBe(urls[0]);
  });

  it('the load balancer: round robin over exactly the profile\'s brokers on their ports, each health-checked with GET /readyz', () => {
    const frontend = cfg.find((x) => x.kind === 'frontend' && directive(x, 'default_backend').length > 0)!;
    const backend = haproxySection(cfg, 'backend', directive(frontend, 'default_backend')[0]![1]!);
    expect(directive(haproxySection(cfg, 'defaults', ''), 'mode')[0]).toEqual(['mode', 'http']);
    expect(directive(backend, 'balance')).toEqual([['balance', 'roundrobin']]);
    expect(directive(backend, 'option', 'httpchk')).toHaveLength(1);
    expect(directive(backend, 'http-check', 'send')[0]).toEqual(['http-check', 'send', 'meth', 'GET', 'uri', '/readyz']);
    expect(directive(backend, 'http-check', 'expect')[0]).toEqual(['http-check', 'expect', 'status', '200']);
    const checkedByDefault = directive(backend, 'default-server').some((l) => l.includes('check'));
    const servers = directive(backend, 'server').map((l) => {
      expect(checkedByDefault || l.includes('check'), `server ${l[1]} is health-checked`).toBe(true);
      expect(l).not.toContain('no-check');
      expect(l).not.toContain('backup');
      return { name: l[1], address: l[2] };
    });
    expect(servers).toEqual(scaleBrokers.map((n) => ({ name: n, address: `${n}:${serviceConfig(n).config.broker.port}` })));
    // the broker it checks is the broker's own readiness route (GET /readyz on broker.port)
    expect(compose.services['broker-1']!.healthcheck!.test).toContain(`http://127.0.0.1:${serviceConfig('broker-1').config.broker.port}/readyz`);
    // it starts after both brokers are healthy; its own healthcheck is its monitor-uri, which fails with no broker up
    for (const n of scaleBrokers) expect(lb.depends_on![n]).toEqual({ condition: 'service_healthy' });
    const health = cfg.find((x) => x.kind === 'frontend' && directive(x, 'monitor-uri').length > 0)!;
    const monitorUri = directive(health, 'monitor-uri')[0]![1]!;
    expect(lb.healthcheck!.test).toEqual(['CMD', 'wget', '-q', '-O', '/dev/null', `http://127.0.0.1:${bindPort(health)}${monitorUri}`]);
    expect(directive(health, 'monitor', 'fail')[0]!.join(' ')).toBe(`monitor fail if { nbsrv(${backend.name}) lt 1 }`);
  });

  it('points every proxy at the load balancer for keys and revocations', () => {
    const frontend = cfg.find((x) => x.kind === 'frontend' && directive(x, 'default_backend').length > 0)!;
    for (const name of scaleProxies) {
      const service = compose.services[name]!;
      const { config } = serviceConfig(name);
      expect(service.environment!.BATON_BROKER_URL).toBe(config.proxy.brokerUrl);
      expect(service.environment!.BATON_KEYSET_URL).toBe(config.proxy.keySetUrl);
      const broker = new URL(config.proxy.brokerUrl!);
      expect(broker.hostname).toBe('broker-lb');
      expect(Number(broker.port)).toBe(bindPort(frontend));
      expect(config.proxy.keySetUrl).toBe(`${broker.origin}/.well-known/baton-keys.json`);
      expect(service.depends_on!['broker-lb']).toEqual({ condition: 'service_healthy' });
      for (const b of scaleBrokers) expect(service.depends_on).not.toHaveProperty(b);
    }
    // one data directory for both, so the generated `hmac` masking key is the same in both
    const data = scaleProxies.map((n) => mountOf(compose.services[n]!, serviceConfig(n).config.dataDir));
    expect(new Set(data.map((d) => d?.volume)).size).toBe(1);
    expect(data[0]!.volume).toBeDefined();
  });

  it("runs every broker and proxy of the profile with a config the real loader accepts in that service's environment", () => {
    for (const name of [...scaleBrokers, ...scaleProxies]) {
      const { config, env, argv } = serviceConfig(name);
      expect(config.mode).toBe('production');
      expect(() => assertModeFitsEnvironment(config, env)).not.toThrow();
      // the same files as the default services' (and the same variables to swap in your own)
      const twin = compose.services[argv[2] === 'serve' ? 'broker' : 'proxy']!;
      expect(rawCompose.services[name]!.volumes!.filter((v) => v.startsWith('${'))).toEqual(rawCompose.services[argv[2] === 'serve' ? 'broker' : 'proxy']!.volumes!.filter((v) => v.startsWith('${')));
      expect(compose.services[name]!.image).toBe(twin.image);
      expect(compose.services[name]!.build).toEqual(twin.build);
    }
    // without its key file setting a broker would make a key file of its own: the loader sees it
    const { file, env } = serviceConfig('broker-1');
    const { BATON_KEYS_FILE: _dropped, ...without } = env;
    expect(loadConfig({ file, env: { ...without, BATON_CONFIG: file }, role: 'broker' }).broker.keysFile).toBeUndefined();
  });
});

describe('Dockerfile and .dockerignore', () => {
  it('builds in two stages and runs as a non-root user with production dependencies only', () => {
    expect(dockerfile.filter((i) => i.op === 'FROM')).toHaveLength(2);
    const build = dockerfile.filter((i) => i.stage === 0 && i.op === 'RUN').map((i) => i.args);
    expect(build.some((r) => /\bnpm ci\b/.test(r))).toBe(true);
    expect(build.some((r) => /\bnpm run build\b/.test(r))).toBe(true);
    const installs = runtime.filter((i) => i.op === 'RUN' && /\bnpm (ci|install)\b/.test(i.args)).map((i) => i.args);
    expect(installs).toHaveLength(1);
    expect(installs[0]).toMatch(/npm ci --omit=dev --ignore-scripts/);
    // from the build stage: the package manifests (to install from) and the compiled output, never
    // its node_modules or sources; from the context: no sources either
    const copies = runtime.filter((i) => i.op === 'COPY').map((i) => i.args.split(/\s+/));
    expect(copies.filter((c) => c[0] === '--from=build').map((c) => c.slice(1, -1))).toEqual([['/manifests/'], ['/src/dist']]);
    for (const c of copies.filter((x) => !x[0]!.startsWith('--from='))) for (const src of c.slice(0, -1)) expect(['.', 'src', 'node_modules', 'test']).not.toContain(src.replace(/\/$/, ''));
    const user = runtime.filter((i) => i.op === 'USER').at(-1)?.args;
    expect(user).toBeDefined();
    expect(['root', '0']).not.toContain(user);
    expect(imageEnv.NODE_ENV).toBe('production');
  });

  it('copies only paths that exist and that .dockerignore leaves in the build context', () => {
    const ignore = readFileSync(at('.dockerignore'), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#'));
    const ignored = (p: string) => ignore.some((pattern) => pattern === p || p.startsWith(`${pattern}/`));
    for (const i of dockerfile.filter((x) => x.op === 'COPY' && !x.args.includes('--from='))) {
      const parts = i.args.split(/\s+/).filter((a) => !a.startsWith('--'));
      for (const src of parts.slice(0, -1)) {
        if (src === '.') continue;
        expect(existsSync(at(src)), `COPY ${src}`).toBe(true);
        expect(ignored(src), `COPY ${src} is excluded by .dockerignore`).toBe(false);
      }
    }
    // never in the context: dependencies, local state, keys
    for (const p of ['node_modules', '.git', '.baton', 'deploy/.env', 'deploy/tls/*.key']) expect(ignore).toContain(p);
  });

  it('has ENTRYPOINT `node bin/baton.mjs` and every command is a baton command whose options exist', async () => {
    expect(jsonForm('ENTRYPOINT')).toEqual(['node', 'bin/baton.mjs']);
    expect(jsonForm('CMD')).toEqual(['serve', '--config', '/etc/baton/broker.yaml']);
    const lines = [jsonForm('CMD'), ...batonServices.map(([, s]) => s.command!)];
    for (const [command] of lines) expect(Object.keys(COMMANDS)).toContain(command);
    // the command's own usage (the same bin the image runs) names every option the compose file passes
    const usages = await Promise.all(lines.map(([command]) => run(process.execPath, [at('bin/baton.mjs'), command!, '--help'], { cwd: root })));
    lines.forEach(([command, ...args], i) => {
      for (const option of args.filter((a) => a.startsWith('--'))) expect(usages[i]!.stdout, `baton ${command} ${option}`).toContain(option);
    });
  });
});

describe('deploy/tls/generate.sh', () => {
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'baton-tls-'));
    await run('sh', [at('deploy/tls/generate.sh'), dir]);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('writes a CA and a proxy certificate for the compose and loopback names, and keeps existing files', async () => {
    const ca = new X509Certificate(readFileSync(join(dir, 'ca.crt')));
    const cert = new X509Certificate(readFileSync(join(dir, 'proxy.crt')));
    expect(cert.verify(ca.publicKey)).toBe(true);
    expect(cert.checkIssued(ca)).toBe(true);
    expect(cert.ca).toBe(false);
    for (const host of ['proxy', 'localhost']) expect(cert.checkHost(host)).toBe(host);
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
    expect(() => createSecureContext({ cert: readFileSync(join(dir, 'proxy.crt')), key: readFileSync(join(dir, 'proxy.key')) })).not.toThrow();
    // readable by the image's user through a read-only mount; the CA key stays private
    expect(statSync(join(dir, 'proxy.key')).mode & 0o777).toBe(0o644);
    expect(statSync(join(dir, 'ca.key')).mode & 0o777).toBe(0o600);
    const before = readFileSync(join(dir, 'proxy.crt'), 'utf8');
    await run('sh', [at('deploy/tls/generate.sh'), dir]);
    expect(readFileSync(join(dir, 'proxy.crt'), 'utf8')).toBe(before);
  });

  it('is never committed: deploy/tls ignores keys and certificates', () => {
    const ignore = readFileSync(at('deploy/tls/.gitignore'), 'utf8');
    for (const p of ['*.key', '*.crt']) expect(ignore).toContain(p);
  });
});

// ---------------------------------------------------------------------------------------------
// The real thing: init SQL on PostgreSQL, then the broker and the proxy from their compose configs

/** A compose upstream URL (host `upstream`) pointed at `local`'s host and database; role and password kept. */
function onThisMachine(composeUrl: string, local: string): string {
  const up = new URL(composeUrl);
  const here = new URL(local);
  up.host = here.host;
  up.pathname = here.pathname;
  return up.toString();
}

function withDatabase(url: string, name: string, user?: { name: string; password: string }): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  if (user) {
    u.username = user.name;
    u.password = user.password;
  }
  return u.toString();
}

/** SCRAM-SHA-256 verifier `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>` matches `password`. */
function scramMatches(verifier: string, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier);
  if (!m) return false;
  const salted = pbkdf2Sync(password, Buffer.from(m[2]!, 'base64'), Number(m[1]), 32, 'sha256');
  const storedKey = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest('base64');
  return storedKey === m[3];
}

describe('the stack for real (PostgreSQL and Redis on this machine)', () => {
  const suffix = randomBytes(4).toString('hex');
  const upstreamDb = `baton_t_deploy_upstream_${suffix}`;
  const storeDb = `baton_t_deploy_store_${suffix}`;
  const devDb = `baton_t_deploy_dev_${suffix}`;
  const sqlPassword = /PASSWORD '([^']+)'/.exec(readFileSync(at('deploy/upstream-init/10-appdb.sql'), 'utf8'))![1]!;
  const proxyUrl = withDatabase(TEST_DATABASE_URL, upstreamDb, { name: 'baton_proxy', password: sqlPassword });
  const scratch = mkdtempSync(join(tmpdir(), 'baton-deploy-'));
  let admin: pg.Client;
  const stops: (() => Promise<void>)[] = [];

  /** What the postgres image's entrypoint does with each init file (docker-entrypoint.sh, docker_process_sql). */
  const runInit = (file: string) =>
    run('psql', ['-v', 'ON_ERROR_STOP=1', '--no-psqlrc', '--quiet', '--dbname', withDatabase(TEST_DATABASE_URL, upstreamDb), '-f', file], { env: { ...process.env, PGOPTIONS: '-c client_min_messages=warning' } });

  beforeAll(async () => {
    admin = new pg.Client({ connectionString: TEST_DATABASE_URL });
    await admin.connect();
    await admin.query(`CREATE DATABASE ${upstreamDb}`);
    await admin.query(`CREATE DATABASE ${storeDb}`);
    await admin.query(`CREATE DATABASE ${devDb}`);
    for (const f of readdirSync(at('deploy/upstream-init')).sort()) await runInit(at('deploy/upstream-init', f));
  });
  afterAll(async () => {
    for (const stop of stops.reverse()) await stop().catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${upstreamDb} WITH (FORCE)`).catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${storeDb} WITH (FORCE)`).catch(() => {});
    await admin.query(`DROP DATABASE IF EXISTS ${devDb} WITH (FORCE)`).catch(() => {});
    // `baton dev` also seeds its own demo database on its server (src/dev/start.ts)
    await dropDemoUpstream(withDatabase(TEST_DATABASE_URL, 'postgres'), 'baton_demo_appdb').catch(() => {});
    // the role is cluster-wide; it owns nothing once its database is gone
    await admin.query('DROP ROLE IF EXISTS baton_proxy').catch(() => {});
    await admin.end();
    rmSync(scratch, { recursive: true, force: true });
  });

  it('the upstream init SQL seeds appdb and creates a role that can use rows and nothing else', { timeout: 60_000 }, async () => {
    // running it again (a restarted init) changes nothing and fails nothing
    for (const f of readdirSync(at('deploy/upstream-init')).sort()) await runInit(at('deploy/upstream-init', f));
    const { rows } = await admin.query<{ rolpassword: string; rolsuper: boolean }>("SELECT rolpassword, rolsuper FROM pg_authid WHERE rolname = 'baton_proxy'");
    expect(rows[0]!.rolsuper).toBe(false);
    expect(scramMatches(rows[0]!.rolpassword, sqlPassword)).toBe(true);

    const client = new pg.Client({ connectionString: proxyUrl });
    await client.connect();
    try {
      const counts = await client.query<{ c: number; o: number; n: number }>(
        'SELECT (SELECT count(*) FROM customers)::int AS c, (SELECT count(*) FROM orders)::int AS o, (SELECT count(*) FROM audit_notes)::int AS n',
      );
      expect(counts.rows[0]).toEqual({ c: 50, o: 300, n: 2 });
      await client.query('BEGIN');
      await client.query("INSERT INTO audit_notes (note) VALUES ('row privileges work')");
      await client.query('ROLLBACK');
      const denied = async (sql: string) => {
        const err = (await client.query(sql).then(
          () => undefined,
          (e: { code?: string }) => e,
        )) as { code?: string } | undefined;
        return err?.code;
      };
      expect(await denied('DROP TABLE orders')).toBe('42501');
      expect(await denied('CREATE TABLE x (a int)')).toBe('42501');
      expect(await denied('ALTER TABLE customers ADD COLUMN y int')).toBe('42501');
      expect(await denied('SELECT lo_create(0)')).toBe('42501');
      expect(await denied('SELECT pg_terminate_backend(pg_backend_pid())')).toBe('42501');
      expect(await denied("SELECT pg_read_file('PG_VERSION')")).toBe('42501');
      expect(await denied('CREATE TEMP TABLE t (a int)')).toBe('42501');
    } finally {
      await client.end();
    }
    // and the proxy's own start-up check (DESIGN rule 8) finds nothing to refuse
    expect(await upstreamRoleProblems(upstreamFromUrl(proxyUrl))).toEqual([]);
  });

  it(
    'the broker and the proxy start with the commands and configs of docker-compose.yml and pass its healthchecks',
    { timeout: 120_000 },
    async () => {
      // the broker: `node bin/baton.mjs serve --config deploy/config/broker.yaml`, its container
      // environment with this machine's stores, ports and paths in place of the compose network's
      const broker = serviceConfig('broker');
      const brokerPort = await freePort();
      const brokerEnv = {
        ...broker.env,
        DATABASE_URL: withDatabase(TEST_DATABASE_URL, storeDb),
        REDIS_URL: TEST_REDIS_URL,
        BATON_DATA_DIR: join(scratch, 'broker'),
        BATON_BROKER_HOST: '127.0.0.1',
        BATON_BROKER_PORT: String(brokerPort),
        BATON_PUBLIC_URL: `http://127.0.0.1:${brokerPort}`,
        BATON_POLICY_FILE: hostPathOf(compose.services.broker!, broker.config.broker.policyFile!)!,
      };
      const brokerArgv = broker.argv.slice(2).map((a) => (a === optionValue(broker.argv, '--config') ? broker.file : a));
      const b = spawnBaton(brokerArgv, brokerEnv);
      stops.push(b.stop);
      await b.waitFor(/broker listening/, 'the broker');
      const health = compose.services.broker!.healthcheck!.test.slice(2).map((a) => a.replace(':8080/', `:${brokerPort}/`));
      await expect(run(process.execPath, health, { cwd: root })).resolves.toBeDefined();

      // the proxy: `node bin/baton.mjs proxy --config <proxy.yaml>` with TLS from generate.sh and its
      // upstream — same role and password — on the database initialised above
      const proxy = serviceConfig('proxy');
      const tls = join(scratch, 'tls');
      await run('sh', [at('deploy/tls/generate.sh'), tls]);
      const proxyPort = await freePort();
      const adminPort = await freePort();
      const file = parseYaml(readFileSync(proxy.file, 'utf8')) as { proxy: { tls: { certFile: string; keyFile: string }; upstreams: Record<string, { url: string }> } };
      file.proxy.tls = { certFile: join(tls, basename(file.proxy.tls.certFile)), keyFile: join(tls, basename(file.proxy.tls.keyFile)) };
      file.proxy.upstreams.appdb!.url = onThisMachine(file.proxy.upstreams.appdb!.url, proxyUrl);
      // the policy file the compose file mounts into the proxy (its masking and approval rules)
      (file.proxy as { policyFile?: string }).policyFile = hostPathOf(compose.services.proxy!, (file.proxy as { policyFile?: string }).policyFile!)!;
      const localProxyFile = join(scratch, 'proxy.yaml');
      writeFileSync(localProxyFile, stringifyYaml(file));
      const p = spawnBaton(['proxy', '--config', localProxyFile], {
        ...proxy.env,
        DATABASE_URL: withDatabase(TEST_DATABASE_URL, storeDb),
        REDIS_URL: TEST_REDIS_URL,
        BATON_DATA_DIR: join(scratch, 'proxy'),
        BATON_PROXY_HOST: '127.0.0.1',
        BATON_PROXY_PORT: String(proxyPort),
        BATON_PROXY_ADMIN_PORT: String(adminPort),
        BATON_BROKER_URL: `http://127.0.0.1:${brokerPort}`,
        BATON_KEYSET_URL: `http://127.0.0.1:${brokerPort}/.well-known/baton-keys.json`,
      });
      stops.push(p.stop);
      await p.waitFor(/proxy listening/, 'the proxy');
      expect(p.output()).not.toMatch(/warning/i);
      const probe = compose.services.proxy!.healthcheck!.test.slice(2).map((a) => a.replace(':9090/', `:${adminPort}/`));
      await expect(run(process.execPath, probe, { cwd: root })).resolves.toBeDefined();

      // a client verifies the proxy's certificate against generate.sh's CA and gets to the password
      // prompt (a Baton token would go there)
      const psql = await run('psql', ['-w', '-c', 'SELECT 1', `host=localhost port=${proxyPort} dbname=appdb user=agent sslmode=verify-full sslrootcert=${join(tls, 'ca.crt')}`]).then(
        () => '',
        (e: { stderr?: string }) => e.stderr ?? '',
      );
      expect(psql).toMatch(/no password supplied/);

      // a healthcheck fails on a port nothing listens on
      await b.stop();
      await expect(run(process.execPath, health, { cwd: root })).rejects.toThrow();
    },
  );
  it(
    'the dev profile: `baton dev` from deploy/config/dev.yaml mints, exchanges and serves SQL from the compose upstream',
    { timeout: 120_000 },
    async () => {
      const dev = serviceConfig('baton-dev');
      const brokerPort = await freePort();
      const proxyPort = await freePort();
      // the compose network's upstream host → the database initialised above (same role and password)
      const file = parseYaml(readFileSync(dev.file, 'utf8')) as { proxy: { upstreams: Record<string, { url: string }> } };
      file.proxy.upstreams.appdb!.url = onThisMachine(file.proxy.upstreams.appdb!.url, proxyUrl);
      const localDevFile = join(scratch, 'dev.yaml');
      writeFileSync(localDevFile, stringifyYaml(file));
      // its command line with this machine's ports and data directory
      const argv = dev.argv.slice(2).map((a, i, all) =>
        all[i - 1] === '--broker-port' ? String(brokerPort) : all[i - 1] === '--proxy-port' ? String(proxyPort) : all[i - 1] === '--data-dir' ? join(scratch, 'dev') : a,
      );
      const d = spawnBaton(argv, {
        ...dev.env,
        BATON_CONFIG: localDevFile,
        DATABASE_URL: withDatabase(TEST_DATABASE_URL, devDb),
        REDIS_URL: TEST_REDIS_URL,
        BATON_BROKER_HOST: '127.0.0.1',
        BATON_PROXY_HOST: '127.0.0.1',
        BATON_PUBLIC_URL: `http://127.0.0.1:${brokerPort}`,
      });
      stops.push(d.stop);
      await d.waitFor(/proxy\s+postgres:\/\//, '`baton dev`');
      const broker = `http://127.0.0.1:${brokerPort}`;
      const health = compose.services['baton-dev']!.healthcheck!.test.slice(2).map((a) => a.replace(`:${dev.config.broker.port}/`, `:${brokerPort}/`));
      await expect(run(process.execPath, health, { cwd: root })).resolves.toBeDefined();

      // the walk-through of docs/deploy.md: dev token → Baton token → SQL through the dev proxy
      const { stdout: jwt } = await run(process.execPath, [at('bin/baton.mjs'), 'dev-token', '--sub', 'alice', '--groups', 'engineers', '--broker', broker], { cwd: root });
      const res = await fetch(`${broker}/v1/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
          subject_token: jwt.trim(),
        }),
      });
      expect(res.status).toBe(200);
      const { access_token: token } = (await res.json()) as { access_token: string };
      const client = new pg.Client({ host: '127.0.0.1', port: proxyPort, database: 'appdb', user: 'agent', password: token, ssl: { rejectUnauthorized: false } });
      await client.connect();
      try {
        // the compose upstream (seeded by deploy/upstream-init), not the demo database of `baton dev`
        const notes = await client.query<{ note: string }>('SELECT note FROM audit_notes ORDER BY id LIMIT 1');
        expect(notes.rows[0]!.note).toBe('demo data seeded by deploy/upstream-init');
        const orders = await client.query<{ n: number }>('SELECT count(*)::int AS n FROM orders');
        expect(orders.rows[0]!.n).toBe(300);
        const denied = await client.query('DROP TABLE orders').then(
          () => undefined,
          (e: { code?: string }) => e.code,
        );
        expect(denied).toBe('42501');
      } finally {
        await client.end();
      }
    },
  );

  describe('the scale profile on this machine: keys-init, broker-1 and broker-2 from their compose settings', () => {
    /** named volumes → directories of this machine */
    const volumeDir = (name: string) => join(scratch, 'volumes', name);
    const onHost = (service: Service, containerPath: string): string => {
      const m = mountOf(service, containerPath);
      if (!m) throw new Error(`${containerPath} is not mounted`);
      return m.volume ? join(volumeDir(m.volume), m.path) : join(m.host!, m.path);
    };
    const init = compose.services['keys-init']!;
    const initArgv = commandLine(init).slice(2);
    const keysFileInInit = optionValue(initArgv, '--keys-file')!;
    /** `baton …` as keys-init runs it (`docker compose run --rm keys-init …`), its container paths swapped for this machine's */
    const runInitCommand = (argv: string[]) =>
      run(process.execPath, [at('bin/baton.mjs'), ...argv.map((a) => (a === keysFileInInit ? onHost(init, a) : a))], { cwd: root, env: { PATH: process.env.PATH ?? '' } });
    const brokers: { name: string; url: string; proc: BatonProcess }[] = [];
    interface KeySet {
      etag: string | null;
      keys: { id: number; status: string }[];
    }
    const keySet = async (url: string): Promise<KeySet> => {
      const res = await fetch(`${url}/.well-known/baton-keys.json`);
      expect(res.status).toBe(200);
      const body = (await res.json()) as { keys: { id: number; status: string }[] };
      return { etag: res.headers.get('etag'), keys: body.keys.map((k) => ({ id: k.id, status: k.status })).sort((a, b) => a.id - b.id) };
    };

    beforeAll(async () => {
      for (const v of Object.keys(compose.volumes)) mkdirSync(volumeDir(v), { recursive: true });
      await runInitCommand(initArgv);
      for (const name of scaleBrokers) {
        const b = serviceConfig(name);
        const service = compose.services[name]!;
        const port = await freePort();
        const proc = spawnBaton(
          b.argv.slice(2).map((a) => (a === optionValue(b.argv, '--config') ? b.file : a)),
          {
            ...b.env,
            DATABASE_URL: withDatabase(TEST_DATABASE_URL, storeDb),
            REDIS_URL: TEST_REDIS_URL,
            BATON_DATA_DIR: onHost(service, b.config.dataDir),
            BATON_KEYS_FILE: onHost(service, b.config.broker.keysFile!),
            BATON_BROKER_HOST: '127.0.0.1',
            BATON_BROKER_PORT: String(port),
            BATON_POLICY_FILE: hostPathOf(service, b.config.broker.policyFile!)!,
          },
        );
        stops.push(proc.stop);
        brokers.push({ name, url: `http://127.0.0.1:${port}`, proc });
      }
      await Promise.all(brokers.map((b) => b.proc.waitFor(/broker listening/, b.name)));
    }, 60_000);

    it('keys-init provisions one key file (a second run changes nothing), both brokers serve it, and the rotation of docs/deploy.md reaches both within the second', { timeout: 30_000 }, async () => {
      const file = onHost(init, keysFileInInit);
      const provisioned = readFileSync(file, 'utf8');
      await runInitCommand(initArgv);
      expect(readFileSync(file, 'utf8')).toBe(provisioned);
      for (const name of scaleBrokers) expect(onHost(compose.services[name]!, serviceConfig(name).config.broker.keysFile!)).toBe(file);

      const before = await Promise.all(brokers.map((b) => keySet(b.url)));
      expect(before[0]!.keys).toHaveLength(1);
      expect(before[0]!.keys[0]!.status).toBe('active');
      expect(before[0]!.etag).toBeTruthy();
      // the same set and the same ETag from either broker: a proxy's If-None-Match works through the load balancer
      expect(before[1]).toEqual(before[0]);

      const rotate = /docker compose --profile scale run --rm keys-init (keys rotate --keys-file \S+)/.exec(readFileSync(at('docs/deploy.md'), 'utf8'))!;
      const { stdout } = await runInitCommand(rotate[1]!.split(' '));
      const rotated = Number(/new active key (\d+)/.exec(stdout)![1]);
      const from = Date.now();
      for (const b of brokers) {
        while (!(await keySet(b.url)).keys.some((k) => k.id === rotated && k.status === 'active')) {
          if (Date.now() - from > 5_000) throw new Error(`${b.name} still serves the old key set`);
          await new Promise((r) => setTimeout(r, 50));
        }
      }
      // each broker re-reads the file every second
      expect(Date.now() - from).toBeLessThan(2_000);
      const after = await Promise.all(brokers.map((b) => keySet(b.url)));
      expect(after[0]!.keys).toEqual([
        { id: before[0]!.keys[0]!.id, status: 'verify' },
        { id: rotated, status: 'active' },
      ]);
      expect(after[1]).toEqual(after[0]);
      expect(after[0]!.etag).not.toBe(before[0]!.etag);
      for (const b of brokers) expect(b.proc.output()).toMatch(/root key rotated/);
    });

    const haproxyInstalled = spawnSync('haproxy', ['-v']).status === 0;
    it.skipIf(!haproxyInstalled)(
      'with haproxy installed: deploy/haproxy/haproxy.cfg alternates between the brokers, keeps answering when one stops, and its health URL fails when none is up',
      { timeout: 60_000 },
      async () => {
        const cfg = parseHaproxy(readFileSync(at('deploy/haproxy/haproxy.cfg'), 'utf8'));
        const frontend = cfg.find((x) => x.kind === 'frontend' && directive(x, 'default_backend').length > 0)!;
        const health = cfg.find((x) => x.kind === 'frontend' && directive(x, 'monitor-uri').length > 0)!;
        const backend = directive(frontend, 'default_backend')[0]![1]!;
        const lbPort = await freePort();
        const healthPort = await freePort();
        const portOf = new Map(brokers.map((b) => [b.name, new URL(b.url).port]));
        // the compose network's addresses → this machine's; nothing else changes
        let swapped = 0;
        const text = readFileSync(at('deploy/haproxy/haproxy.cfg'), 'utf8')
          .replace(new RegExp(`^(\\s*bind\\s+)\\S*:${bindPort(frontend)}$`, 'm'), (_m, head: string) => (swapped++, `${head}127.0.0.1:${lbPort}`))
          .replace(new RegExp(`^(\\s*bind\\s+)\\S*:${bindPort(health)}$`, 'm'), (_m, head: string) => (swapped++, `${head}127.0.0.1:${healthPort}`))
          .replace(/^(\s*server\s+(\S+)\s+)\S+/gm, (_m, head: string, name: string) => (swapped++, `${head}127.0.0.1:${portOf.get(name)!}`));
        expect(swapped).toBe(2 + brokers.length);
        const file = join(scratch, 'haproxy.cfg');
        writeFileSync(file, text);
        const lb = spawn('haproxy', ['-db', '-f', file], { stdio: ['ignore', 'pipe', 'pipe'] });
        let log = '';
        lb.stdout!.on('data', (d: Buffer) => (log += d.toString()));
        lb.stderr!.on('data', (d: Buffer) => (log += d.toString()));
        const exited = new Promise<void>((r) => lb.once('exit', () => r()));
        stops.push(async () => {
          if (lb.exitCode === null && lb.signalCode === null) lb.kill('SIGTERM');
          await exited;
        });
        const status = (url: string) =>
          fetch(url).then(
            async (r) => (await r.arrayBuffer(), r.status),
            () => 0,
          );
        const healthUrl = `http://127.0.0.1:${healthPort}${directive(health, 'monitor-uri')[0]![1]}`;
        const until = async (what: string, ok: () => Promise<boolean> | boolean, ms = 15_000) => {
          const from = Date.now();
          while (!(await ok())) {
            if (Date.now() - from > ms) throw new Error(`${what}; haproxy said:\n${log}`);
            await new Promise((r) => setTimeout(r, 100));
          }
        };
        await until('the load balancer is not healthy', async () => (await status(healthUrl)) === 200);
        const served = () => [...log.matchAll(new RegExp(`\\b${backend}/(\\S+)\\s`, 'g'))].map((m) => m[1]);

        // round robin: four requests, two on each broker (haproxy's httplog line names the server)
        const keysUrl = `http://127.0.0.1:${lbPort}/.well-known/baton-keys.json`;
        for (let i = 0; i < 4; i++) expect(await status(keysUrl)).toBe(200);
        await until('haproxy logged fewer than 4 requests', () => served().length >= 4);
        const counts = (names: (string | undefined)[]) => Object.fromEntries(scaleBrokers.map((n) => [n, names.filter((x) => x === n).length]));
        expect(counts(served().slice(0, 4))).toEqual(Object.fromEntries(scaleBrokers.map((n) => [n, 2])));

        // broker-1 stops: every request still answers (a refused connection goes to the other broker)
        await brokers[0]!.proc.stop();
        for (let i = 0; i < 4; i++) expect(await status(keysUrl)).toBe(200);
        await until('haproxy logged fewer than 8 requests', () => served().length >= 8);
        expect(served().slice(4, 8)).toEqual([brokers[1]!.name, brokers[1]!.name, brokers[1]!.name, brokers[1]!.name]);
        expect(await status(healthUrl)).toBe(200);

        // none left: the health URL (the container's healthcheck) fails once the checks see it
        await brokers[1]!.proc.stop();
        await until('the health URL still answers 200 with no broker up', async () => (await status(healthUrl)) === 503);
        expect(await status(keysUrl)).toBe(503);
      },
    );
  });
});

// ---------------------------------------------------------------------------------------------
// deploy/kubernetes: parsed, and its configs through the real loader (no cluster here either)

interface K8sProbe {
  httpGet?: { path: string; port: number | string };
}
interface K8sContainer {
  name: string;
  image: string;
  args?: string[];
  ports?: { name?: string; containerPort: number }[];
  env?: { name: string; value?: string; valueFrom?: { secretKeyRef?: { name: string; key: string } } }[];
  readinessProbe?: K8sProbe;
  livenessProbe?: K8sProbe;
  resources?: { requests?: Record<string, string>; limits?: Record<string, string> };
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; allowPrivilegeEscalation?: boolean; readOnlyRootFilesystem?: boolean; privileged?: boolean; capabilities?: { drop?: string[]; add?: string[] } };
  volumeMounts?: { name: string; mountPath: string; readOnly?: boolean; subPath?: string }[];
}
interface K8sVolume {
  name: string;
  configMap?: { name: string; items?: { key: string; path: string }[] };
  secret?: { secretName: string; items?: { key: string; path: string }[]; defaultMode?: number };
  emptyDir?: object;
}
interface K8sPodSpec {
  securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; fsGroup?: number };
  containers: K8sContainer[];
  volumes?: K8sVolume[];
}
interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  spec?: {
    replicas?: number;
    selector?: Record<string, unknown>;
    template?: { metadata: { labels: Record<string, string> }; spec: K8sPodSpec };
    minAvailable?: number;
    ports?: { name?: string; port: number; targetPort?: number | string }[];
  };
  data?: Record<string, string>;
  stringData?: Record<string, string>;
  type?: string;
}

describe('deploy/kubernetes: brokers and proxies for a cluster', () => {
  const dir = at('deploy/kubernetes');
  const manifests = (file: string): K8sObject[] =>
    parseAllDocuments(readFileSync(join(dir, file), 'utf8')).map((d) => {
      expect(d.errors, file).toEqual([]);
      return d.toJS() as K8sObject;
    });
  const kustomization = parseYaml(readFileSync(join(dir, 'kustomization.yaml'), 'utf8')) as { resources: string[] };
  const objects = kustomization.resources.flatMap(manifests);
  const example = manifests('secrets.example.yaml');
  const get = (kind: string, name: string): K8sObject => {
    const found = objects.find((o) => o.kind === kind && o.metadata.name === name);
    if (!found) throw new Error(`no ${kind} ${name}`);
    return found;
  };
  const broker = get('Deployment', 'baton-broker');
  const proxy = get('Deployment', 'baton-proxy');
  const deployments = [broker, proxy];
  const pod = (d: K8sObject) => d.spec!.template!.spec;
  const container = (d: K8sObject) => pod(d).containers[0]!;
  const configMap = get('ConfigMap', 'baton-config');
  const scratch = mkdtempSync(join(tmpdir(), 'baton-k8s-'));
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));
  const subset = (small: Record<string, string>, big: Record<string, string>) => Object.entries(small).every(([k, v]) => big[k] === v);

  /** What a container sees at `path`: which volume (the longest mount holding it) and the key inside a ConfigMap or Secret. */
  function fileIn(d: K8sObject, path: string): { volume: K8sVolume; key?: string; mount: NonNullable<K8sContainer['volumeMounts']>[number] } {
    const mount = (container(d).volumeMounts ?? [])
      .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath}/`))
      .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
    if (!mount) throw new Error(`${d.metadata.name}: nothing mounted at ${path}`);
    const volume = pod(d).volumes!.find((v) => v.name === mount.name)!;
    expect(volume, `${d.metadata.name}: volume ${mount.name}`).toBeDefined();
    const rel = posix.relative(mount.mountPath, path);
    const items = volume.configMap?.items ?? volume.secret?.items;
    const key = items ? items.find((i) => i.path === rel)?.key : rel || undefined;
    return { volume, mount, ...(key ? { key } : {}) };
  }

  /** The container's environment: image ENV, then its own (Secret values from secrets.example.yaml). */
  function environmentOf(d: K8sObject): Record<string, string> {
    const env: Record<string, string> = { ...imageEnv };
    for (const e of container(d).env ?? []) {
      if (e.value !== undefined) env[e.name] = e.value;
      const ref = e.valueFrom?.secretKeyRef;
      if (ref) {
        const secret = example.find((o) => o.kind === 'Secret' && o.metadata.name === ref.name);
        expect(secret, `${d.metadata.name}: Secret ${ref.name} in secrets.example.yaml`).toBeDefined();
        expect(Object.keys(secret!.stringData ?? {}), `${d.metadata.name}: ${ref.name}/${ref.key}`).toContain(ref.key);
        env[e.name] = secret!.stringData![ref.key]!;
      }
    }
    return env;
  }

  /** `--config` from the ConfigMap, loaded by the real loader for the container's role in its environment. */
  function configOf(d: K8sObject): { config: Config; env: Record<string, string>; role: Role } {
    const args = container(d).args!;
    const role: Role = args[0] === 'proxy' ? 'proxy' : 'broker';
    const { volume, key } = fileIn(d, optionValue(args, '--config')!);
    expect(volume.configMap?.name).toBe(configMap.metadata.name);
    const file = join(scratch, `${d.metadata.name}-${key!}`);
    writeFileSync(file, configMap.data![key!]!);
    const env = environmentOf(d);
    return { config: loadConfig({ file, env: { ...env, BATON_CONFIG: file }, role }), env, role };
  }

  it('has the kinds of the example, in one namespace; kustomization.yaml applies every manifest but the example Secret', () => {
    expect(objects.map((o) => o.kind).sort()).toEqual(['ConfigMap', 'Deployment', 'Deployment', 'Namespace', 'PodDisruptionBudget', 'PodDisruptionBudget', 'Service', 'Service']);
    const ns = objects.find((o) => o.kind === 'Namespace')!.metadata.name;
    for (const o of objects.filter((x) => x.kind !== 'Namespace')) expect(o.metadata.namespace, `${o.kind} ${o.metadata.name}`).toBe(ns);
    for (const o of example) expect(o.metadata.namespace).toBe(ns);
    expect(readdirSync(dir).filter((f) => f.endsWith('.yaml')).sort()).toEqual([...kustomization.resources, 'kustomization.yaml', 'secrets.example.yaml'].sort());
    expect(example.map((o) => o.kind)).toEqual(['Secret']);
    expect(existsSync(join(dir, 'README.md'))).toBe(true);
    expect(broker.spec!.replicas).toBe(2);
    expect(proxy.spec!.replicas).toBeGreaterThanOrEqual(2);
    expect(container(broker).args!.slice(0, 2)).toEqual(['serve', '--config']);
    expect(container(proxy).args!.slice(0, 2)).toEqual(['proxy', '--config']);
  });

  it("selects each Deployment's pods — and only those — from its Service and its PodDisruptionBudget", () => {
    for (const d of deployments) {
      const labels = d.spec!.template!.metadata.labels;
      const selector = (d.spec!.selector as { matchLabels: Record<string, string> }).matchLabels;
      expect(subset(selector, labels)).toBe(true);
      const others = deployments.filter((x) => x !== d).map((x) => x.spec!.template!.metadata.labels);

      const pdb = get('PodDisruptionBudget', d.metadata.name);
      expect(pdb.apiVersion).toBe('policy/v1');
      const pdbSelector = (pdb.spec!.selector as { matchLabels: Record<string, string> }).matchLabels;
      expect(pdbSelector).toEqual(selector);
      for (const o of others) expect(subset(pdbSelector, o)).toBe(false);
      expect(pdb.spec!.minAvailable).toBeGreaterThanOrEqual(1);
      expect(pdb.spec!.minAvailable).toBeLessThan(d.spec!.replicas!);

      const service = get('Service', d.metadata.name);
      const serviceSelector = service.spec!.selector as Record<string, string>;
      expect(subset(serviceSelector, labels)).toBe(true);
      for (const o of others) expect(subset(serviceSelector, o)).toBe(false);
      for (const p of service.spec!.ports!) expect((container(d).ports ?? []).map((c) => c.name)).toContain(p.targetPort);
    }
  });

  it('probes readiness at /readyz and liveness at /healthz, on a port the container declares and its config listens on', () => {
    for (const d of deployments) {
      const c = container(d);
      const { config, role } = configOf(d);
      // the broker's HTTP port; the proxy's admin listener, on the pod's address (the kubelet probes from outside the container)
      const expected = role === 'broker' ? config.broker.port : config.proxy.admin!.port;
      if (role === 'proxy') expect(config.proxy.admin!.host).toBe('0.0.0.0');
      else expect(config.broker.host).toBe('0.0.0.0');
      for (const [probe, path] of [
        [c.readinessProbe, '/readyz'],
        [c.livenessProbe, '/healthz'],
      ] as const) {
        expect(probe?.httpGet?.path, d.metadata.name).toBe(path);
        const port = probe!.httpGet!.port;
        const declared = (c.ports ?? []).find((p) => (typeof port === 'number' ? p.containerPort === port : p.name === port));
        expect(declared, `${d.metadata.name}: probe port ${port}`).toBeDefined();
        expect(declared!.containerPort).toBe(expected);
      }
    }
    // the proxy's clients' port is the config's too, and its Service sends there
    const { config } = configOf(proxy);
    const pgPort = container(proxy).ports!.find((p) => p.name === get('Service', 'baton-proxy').spec!.ports![0]!.targetPort)!;
    expect(pgPort.containerPort).toBe(config.proxy.port);
  });

  it('mounts the root key file from the Secret baton-keys read-only, as a directory, at BATON_KEYS_FILE', () => {
    const keysFile = container(broker).env!.find((e) => e.name === 'BATON_KEYS_FILE')?.value;
    expect(keysFile).toBeDefined();
    const { volume, key, mount } = fileIn(broker, keysFile!);
    expect(volume.secret?.secretName).toBe('baton-keys');
    expect(key).toBe('keys.json');
    expect(mount.readOnly).toBe(true);
    // a subPath mount would never see the updated Secret (README.md, rotation)
    expect(mount.subPath).toBeUndefined();
    expect(posix.join(mount.mountPath, volume.secret!.items!.find((i) => i.key === key)!.path)).toBe(keysFile);
    // readable by the pod's group, nobody else's
    expect(volume.secret!.defaultMode).toBe(0o440);
    expect(pod(broker).securityContext!.fsGroup).toBe(pod(broker).securityContext!.runAsUser);
    // and the loader takes it as broker.keysFile: every replica reads that one file
    expect(configOf(broker).config.broker.keysFile).toBe(keysFile);
  });

  it('runs non-root with a read-only root filesystem, no privilege escalation and no capabilities; only emptyDirs are writable; resources are bounded', () => {
    for (const d of deployments) {
      const p = pod(d);
      const c = container(d);
      expect(p.securityContext!.runAsNonRoot).toBe(true);
      expect(p.securityContext!.runAsUser).toBeGreaterThan(0);
      expect(c.securityContext!.runAsNonRoot).toBe(true);
      expect(c.securityContext!.readOnlyRootFilesystem).toBe(true);
      expect(c.securityContext!.allowPrivilegeEscalation).toBe(false);
      expect(c.securityContext!.privileged).toBeUndefined();
      expect(c.securityContext!.capabilities!.drop).toEqual(['ALL']);
      expect(c.securityContext!.capabilities!.add).toBeUndefined();
      for (const r of ['cpu', 'memory']) {
        expect(c.resources!.requests![r], `${d.metadata.name} requests ${r}`).toBeDefined();
        expect(c.resources!.limits![r], `${d.metadata.name} limits ${r}`).toBeDefined();
      }
      // what the process writes (its data directory, /tmp) is an emptyDir; every other mount is read-only
      const { config } = configOf(d);
      for (const path of [config.dataDir, '/tmp']) expect(fileIn(d, path).volume.emptyDir, `${d.metadata.name}: ${path}`).toBeDefined();
      for (const m of c.volumeMounts!) {
        const v = p.volumes!.find((x) => x.name === m.name)!;
        if (!v.emptyDir) expect(m.readOnly, `${d.metadata.name}: ${m.mountPath}`).toBe(true);
      }
      expect(c.image).toBe(container(broker).image);
    }
  });

  it('configures both from the ConfigMap through the real loader, with the stores and secrets from Secrets', () => {
    const b = configOf(broker);
    const p = configOf(proxy);
    for (const { config, env } of [b, p]) {
      expect(config.mode).toBe('production');
      expect(() => assertModeFitsEnvironment(config, env)).not.toThrow();
      expect(config.databaseUrl).toBe(example[0]!.stringData!.DATABASE_URL);
      expect(config.redisUrl).toBe(example[0]!.stringData!.REDIS_URL);
    }
    // DATABASE_URL and REDIS_URL come from a Secret, never from the manifest
    for (const d of deployments) {
      for (const name of ['DATABASE_URL', 'REDIS_URL']) {
        const e = container(d).env!.find((x) => x.name === name)!;
        expect(e.value).toBeUndefined();
        expect(e.valueFrom?.secretKeyRef?.name).toBe('baton-stores');
      }
    }
    // the policy both use is in the ConfigMap, mounted, and valid
    for (const [d, policyFile] of [
      [broker, b.config.broker.policyFile!],
      [proxy, p.config.proxy.policyFile!],
    ] as const) {
      const { key } = fileIn(d, policyFile);
      const file = join(scratch, `${d.metadata.name}-policy.yaml`);
      writeFileSync(file, configMap.data![key!]!);
      expect(() => loadPolicyFile(file)).not.toThrow();
    }
    // the proxies reach the brokers through the broker Service; every replica has one public URL
    const service = get('Service', 'baton-broker');
    const brokerUrl = new URL(p.config.proxy.brokerUrl!);
    expect(brokerUrl.hostname).toBe(`${service.metadata.name}.${service.metadata.namespace}.svc.cluster.local`);
    expect(Number(brokerUrl.port)).toBe(service.spec!.ports![0]!.port);
    expect(p.config.proxy.keySetUrl).toBe(`${brokerUrl.origin}/.well-known/baton-keys.json`);
    expect(b.config.broker.publicUrl).toMatch(/^https:\/\//);
    expect(p.config.broker.publicUrl).toBe(b.config.broker.publicUrl);
    // the upstream's password and the masking key (the same in every replica) from the Secret
    expect(new URL(p.config.proxy.upstreams.appdb!.url).password).toBe(example[0]!.stringData!.APPDB_PASSWORD);
    expect(p.config.masking.hmacKey).toBe(example[0]!.stringData!.BATON_MASKING_HMAC_KEY);
    // TLS from the Secret baton-proxy-tls (kubernetes.io/tls keys)
    for (const [f, key] of [
      [p.config.proxy.tls!.certFile, 'tls.crt'],
      [p.config.proxy.tls!.keyFile, 'tls.key'],
    ] as const) {
      const mounted = fileIn(proxy, f);
      expect(mounted.volume.secret?.secretName).toBe('baton-proxy-tls');
      expect(mounted.key).toBe(key);
    }
    // without the Secret's values the loader refuses (the ConfigMap holds no secret)
    const { APPDB_PASSWORD: _p, ...withoutPassword } = p.env;
    const file = join(scratch, 'proxy-no-secret.yaml');
    writeFileSync(file, configMap.data!['proxy.yaml']!);
    expect(() => loadConfig({ file, env: { ...withoutPassword, BATON_CONFIG: file }, role: 'proxy' })).toThrow(/APPDB_PASSWORD/);
  });

  it('README.md says how to apply it and how a rotation reaches the brokers', () => {
    const readme = readFileSync(join(dir, 'README.md'), 'utf8');
    expect(readme).toContain('kubectl apply -k deploy/kubernetes');
    expect(readme).toMatch(/ keys rotate --keys-file \S+/);
    expect(readme).toMatch(/kubectl -n baton create secret generic baton-keys --from-file=keys\.json=\S+ --dry-run=client -o yaml \| kubectl apply -f -/);
  });
});
