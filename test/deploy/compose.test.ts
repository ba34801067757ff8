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
 */
import { execFile } from 'node:child_process';
import { spawnBaton } from '../helpers/baton-process.ts';
import { createHash, createHmac, pbkdf2Sync, randomBytes, X509Certificate } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
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
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
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
      expect(service.healthcheck?.test, `${name} has no healthcheck`).toBeDefined();
      for (const dep of Object.entries(service.depends_on ?? {})) {
        expect(compose.services[dep[0]]?.healthcheck, `${name} waits for ${dep[0]}'s health`).toBeDefined();
        expect(dep[1].condition).toBe('service_healthy');
      }
    }
    for (const [name] of batonServices) {
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
    const names = batonServices.map(([n]) => n).sort();
    expect(names).toEqual(['baton-dev', 'broker', 'proxy']);
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
    for (const [name] of batonServices) {
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
    for (const name of ['proxy', 'baton-dev']) {
      const up = new URL(serviceConfig(name).config.proxy.upstreams.appdb!.url);
      expect(up.hostname).toBe('upstream');
      expect(up.pathname).toBe(`/${compose.services.upstream!.environment!.POSTGRES_DB}`);
      expect(up.username).toBe('baton_proxy');
      expect(decodeURIComponent(up.password)).toBe(rolePassword);
      expect(compose.services[name]!.depends_on).toHaveProperty('upstream');
    }
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
});
