/**
 * Redis Sentinel and Redis Cluster (issue 15 point 3), for real: a sentinel process watching the
 * machine's Redis, and a three-master cluster of redis-server processes on loopback. Rate limits and
 * the pub/sub fan-out work through both; on the cluster the channels are sharded (SPUBLISH /
 * SSUBSCRIBE) and land on different masters; two SharedStates (as two processes would) see each
 * other's messages. Config validation accepts both and refuses them together with REDIS_URL.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, redisTopology } from '../../src/config/load.ts';
import { openSharedState, type RedisTopology, type SharedState } from '../../src/store/shared-state.ts';
import { freePort } from '../../src/util/free-port.ts';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'baton-redis-topologies-'));
const processes: ChildProcess[] = [];
const states: SharedState[] = [];
let sentinelPort: number;
let clusterPorts: number[];

async function redisCli(port: number, ...args: string[]): Promise<string> {
  return (await run('redis-cli', ['-p', String(port), ...args])).stdout;
}

async function until(what: string, check: () => Promise<boolean>, ms = 15_000): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: not ready within ${ms} ms`);
}

/** A free port whose cluster bus port (port + 10000) is valid too: below 55536, and free. */
async function busSafePort(): Promise<number> {
  for (;;) {
    const port = 20_000 + Math.floor(Math.random() * 25_000);
    if ((await isFree(port)) && (await isFree(port + 10_000))) return port;
  }
}

function isFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

function startRedis(args: string[]): void {
  const p = spawn('redis-server', args, { stdio: 'ignore', cwd: dir });
  processes.push(p);
}

beforeAll(async () => {
  // a sentinel watching the machine's Redis as master "baton-test"
  sentinelPort = await freePort();
  const conf = join(dir, 'sentinel.conf');
  writeFileSync(conf, `port ${sentinelPort}\nbind 127.0.0.1\nsentinel monitor baton-test 127.0.0.1 6379 1\n`);
  startRedis([conf, '--sentinel']);
  await until('sentinel', async () => (await redisCli(sentinelPort, 'SENTINEL', 'get-master-addr-by-name', 'baton-test')).includes('6379'));

  // three masters, no replicas
  clusterPorts = [await busSafePort(), await busSafePort(), await busSafePort()];
  for (const port of clusterPorts) {
    startRedis(['--port', String(port), '--bind', '127.0.0.1', '--cluster-enabled', 'yes', '--cluster-config-file', `nodes-${port}.conf`, '--save', '', '--appendonly', 'no']);
  }
  await until('cluster nodes', async () => {
    for (const port of clusterPorts) if (!(await redisCli(port, 'PING')).includes('PONG')) return false;
    return true;
  });
  await run('redis-cli', ['--cluster', 'create', ...clusterPorts.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '0', '--cluster-yes']);
  await until('cluster state ok', async () => {
    for (const port of clusterPorts) if (!(await redisCli(port, 'CLUSTER', 'INFO')).includes('cluster_state:ok')) return false;
    return true;
  });
}, 60_000);

afterAll(async () => {
  for (const s of states) await s.close();
  for (const p of processes) p.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function open(topology: RedisTopology): SharedState {
  const s = openSharedState({ redis: topology, prefix: `baton-t-${process.pid}:` });
  states.push(s);
  return s;
}

/** Subscribes on `b`, waits until live, publishes on `a`; resolves with what arrived. */
async function roundTrip(a: SharedState, b: SharedState, channel: string, message: string): Promise<string> {
  let live!: () => void;
  const isLive = new Promise<void>((r) => (live = r));
  let got!: (m: string) => void;
  const received = new Promise<string>((r) => (got = r));
  const stop = await b.subscribe(channel, got, (up) => up && live());
  await isLive;
  await a.publish(channel, message);
  const m = await Promise.race([received, new Promise<string>((_, reject) => setTimeout(() => reject(new Error(`no message on ${channel}`)), 5000))]);
  await stop();
  return m;
}

describe('Redis Sentinel', () => {
  it('rate limits and the fan-out work through the master the sentinel names', async () => {
    const topology: RedisTopology = { kind: 'sentinel', name: 'baton-test', sentinels: [{ host: '127.0.0.1', port: sentinelPort }] };
    const a = open(topology);
    const b = open(topology);
    const key = `sentinel-${Date.now()}`;
    expect((await a.hit(key, 2, 60)).allowed).toBe(true);
    expect((await b.hit(key, 2, 60)).allowed).toBe(true);
    expect((await a.hit(key, 2, 60)).allowed).toBe(false); // one window, shared by both
    expect(await roundTrip(a, b, 'revocations', 'rev-1')).toBe('rev-1');
  });
});

describe('Redis Cluster', () => {
  const topology = (): RedisTopology => ({ kind: 'cluster', nodes: clusterPorts.map((port) => ({ host: '127.0.0.1', port })) });

  it('rate limits across slots, and sharded channels on different masters reach another client', async () => {
    const a = open(topology());
    const b = open(topology());
    for (let i = 0; i < 6; i++) {
      const key = `cluster-${Date.now()}-${i}`;
      expect((await a.hit(key, 1, 60)).allowed).toBe(true);
      expect((await b.hit(key, 1, 60)).allowed).toBe(false);
    }
    // the channels Baton uses hash to slots on different masters; each lives on its own shard
    const channels = ['revocations', 'keys', 'approvals', 'audit-checkpoints:x', 'c1', 'c2', 'c3'];
    for (const ch of channels) expect(await roundTrip(a, b, ch, `m-${ch}`)).toBe(`m-${ch}`);
    const held: Array<() => Promise<void>> = [];
    for (const ch of channels) {
      let live!: () => void;
      const up = new Promise<void>((r) => (live = r));
      held.push(await b.subscribe(ch, () => {}, (on) => on && live()));
      await up;
    }
    const perNode = await Promise.all(clusterPorts.map(async (port) => (await redisCli(port, 'PUBSUB', 'SHARDCHANNELS', `baton-t-${process.pid}:*`)).trim().split('\n').filter(Boolean).length));
    expect(perNode.reduce((x, y) => x + y, 0)).toBe(channels.length);
    expect(perNode.filter((n) => n > 0).length).toBeGreaterThan(1);
    for (const stop of held) await stop();
  });
});

describe('configuration', () => {
  it('accepts Sentinel and Cluster from the file or the environment, and refuses them with REDIS_URL', () => {
    const c = loadConfig({ env: { REDIS_CLUSTER_NODES: '10.0.0.1:7000, 10.0.0.2:7000' }, overrides: { mode: 'dev' } });
    expect(redisTopology(c)).toEqual({ kind: 'cluster', nodes: [{ host: '10.0.0.1', port: 7000 }, { host: '10.0.0.2', port: 7000 }] });
    const s = loadConfig({ env: { REDIS_SENTINELS: 'sentinel-a:26379', REDIS_SENTINEL_NAME: 'baton' }, overrides: { mode: 'dev' } });
    expect(redisTopology(s)).toEqual({ kind: 'sentinel', name: 'baton', sentinels: [{ host: 'sentinel-a', port: 26379 }] });
    expect(redisTopology(loadConfig({ env: { REDIS_URL: 'redis://r:6379' }, overrides: { mode: 'dev' } }))).toEqual({ kind: 'single', url: 'redis://r:6379' });
    expect(() => loadConfig({ env: { REDIS_URL: 'redis://r:6379', REDIS_CLUSTER_NODES: 'n:7000' }, overrides: { mode: 'dev' } })).toThrow(/REDIS_URL and redis.cluster exclude each other/);
    expect(() => loadConfig({ env: { REDIS_CLUSTER_NODES: 'n:7000', REDIS_SENTINELS: 's:1', REDIS_SENTINEL_NAME: 'm' }, overrides: { mode: 'dev' } })).toThrow(/exclude each other/);
    expect(() => loadConfig({ env: { REDIS_CLUSTER_NODES: 'just-a-host' }, overrides: { mode: 'dev' } })).toThrow(/must be host:port/);
  });
});
