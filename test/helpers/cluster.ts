/**
 * Baton as several processes on loopback (issue 15): `baton serve` brokers in production mode behind
 * no load balancer (callers pick one), `baton proxy` Postgres proxies, one shared key file, the real
 * PostgreSQL and Redis, and a real OIDC provider (oidc-provider) minting the subject tokens.
 * Used by test/scale/ and bench/scale.ts.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { dropDemoUpstream, ensureDemoUpstream } from '../../src/dev/demo-upstream.ts';
import { Keyring } from '../../src/keys/keyring.ts';
import { freePort } from '../../src/util/free-port.ts';
import { BROKER_AUDIENCE, signingJwk, startProvider, type TestProvider } from '../oidc/provider.ts';
import { spawnBaton, type BatonProcess } from './baton-process.ts';
import { createTestDatabase, TEST_DATABASE_URL, type TestDatabase } from './database.ts';

const POLICY = fileURLToPath(new URL('../../config/dev-policy.yaml', import.meta.url));

export interface ClusterBroker extends BatonProcess {
  url: string;
}
export interface ClusterProxy extends BatonProcess {
  port: number;
}

export interface Cluster {
  idp: TestProvider;
  /** The shared store (issued tokens, revocations, audit). */
  store: TestDatabase;
  /** The demo upstream as proxies log in to it. */
  appdbUrl: string;
  keysFile: string;
  startBroker(name: string): Promise<ClusterBroker>;
  /** A proxy resyncing revocations (and fetching keys) from `broker`; `proxy` adds to its `proxy` config. */
  startProxy(name: string, broker: { url: string }, env?: Record<string, string>, proxy?: Record<string, unknown>): Promise<ClusterProxy>;
  /** One RFC 8693 exchange at `broker` (with a fresh OIDC token unless one is given). */
  exchange(broker: { url: string }, subjectToken?: string): Promise<{ status: number; token?: string }>;
  /** Stops every process started, then drops the databases. */
  stop(): Promise<void>;
}

export async function startCluster(area: string): Promise<Cluster> {
  const redis = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379';
  const idp = await startProvider(await signingJwk('ES256', `${area}-1`));
  const store = await createTestDatabase(area);
  const admin = new URL(TEST_DATABASE_URL);
  admin.pathname = '/postgres';
  const appdb = `baton_t_${area}_appdb_${process.pid}`;
  const appdbUrl = await ensureDemoUpstream(admin.toString(), appdb);
  const scratch = mkdtempSync(join(tmpdir(), `baton-${area}-`));
  const keysFile = join(scratch, 'keys.json');
  Keyring.open(keysFile); // provisioned once, like a secret mount, before any broker starts
  const started: BatonProcess[] = [];

  return {
    idp,
    store,
    appdbUrl,
    keysFile,
    async startBroker(name) {
      const port = await freePort();
      const config = join(scratch, `${name}.json`);
      writeFileSync(
        config,
        JSON.stringify({
          mode: 'production',
          broker: { host: '127.0.0.1', port, publicUrl: 'http://baton.test', policyFile: POLICY, keysFile, rateLimit: { perSubject: 1_000_000, perClient: 1_000_000 } },
          oidc: { issuers: [{ issuer: idp.issuer, audiences: [BROKER_AUDIENCE] }] },
        }),
      );
      const p = spawnBaton(['serve', '--config', config], { DATABASE_URL: store.url, REDIS_URL: redis, BATON_DATA_DIR: join(scratch, name) });
      started.push(p);
      await p.waitFor(/broker listening/, `broker ${name}`);
      return Object.assign(p, { url: `http://127.0.0.1:${port}` });
    },
    async startProxy(name, broker, env = {}, proxy = {}) {
      const port = await freePort();
      const config = join(scratch, `${name}.json`);
      writeFileSync(config, JSON.stringify({ mode: 'production', proxy: { host: '127.0.0.1', port, upstreams: { appdb: { url: appdbUrl } }, policyFile: POLICY, ...proxy } }));
      const p = spawnBaton(['proxy', '--config', config], {
        DATABASE_URL: store.url,
        REDIS_URL: redis,
        BATON_DATA_DIR: join(scratch, name),
        BATON_BROKER_URL: broker.url,
        BATON_KEYSET_URL: `${broker.url}/.well-known/baton-keys.json`,
        ...env,
      });
      started.push(p);
      await p.waitFor(/proxy listening/, `proxy ${name}`);
      return Object.assign(p, { port });
    },
    async exchange(broker, subjectToken) {
      const res = await fetch(`${broker.url}/v1/token`, {
        method: 'POST',
        body: new URLSearchParams({
          grant_type: 'urn:ietf:params:oauth:grant-type:token-exchange',
          subject_token: subjectToken ?? (await idp.token()),
          subject_token_type: 'urn:ietf:params:oauth:token-type:jwt',
        }),
      });
      const body = (await res.json().catch(() => ({}))) as { access_token?: string };
      return { status: res.status, ...(body.access_token ? { token: body.access_token } : {}) };
    },
    async stop() {
      await Promise.all(started.map((p) => p.stop()));
      await idp.close();
      await store.drop();
      await dropDemoUpstream(admin.toString(), appdb);
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
