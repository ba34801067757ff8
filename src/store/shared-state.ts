/**
 * Fast shared state between broker and proxies: fixed-window rate limits and a pub/sub channel
 * (revocation fan-out). Redis when configured — one server (REDIS_URL), Sentinel, or Cluster, all
 * through ioredis; on a Cluster the channels are sharded (SPUBLISH/SSUBSCRIBE, Redis ≥ 7), each
 * living on the shard its name hashes to. Otherwise an in-process implementation that serves a
 * single process (`baton dev`).
 */
import { Cluster, Redis, type RedisOptions } from 'ioredis';

export interface RateLimitResult {
  allowed: boolean;
  /** Seconds until the window resets (for Retry-After). */
  retryAfter: number;
}

export interface SharedState {
  readonly kind: 'redis' | 'memory';
  /** Counts one hit on `key`; allowed while the window's count ≤ limit. */
  hit(key: string, limit: number, windowSeconds: number): Promise<RateLimitResult>;
  publish(channel: string, message: string): Promise<void>;
  /** Subscribes; `onState` reports whether the subscription is live (false while reconnecting). */
  subscribe(channel: string, onMessage: (message: string) => void, onState?: (live: boolean) => void): Promise<() => Promise<void>>;
  close(): Promise<void>;
}

export interface HostPort {
  host: string;
  port: number;
}

/** How to reach Redis (config `redisUrl`, `redis.sentinel`, `redis.cluster`). */
export type RedisTopology =
  | { kind: 'single'; url: string }
  | { kind: 'sentinel'; name: string; sentinels: HostPort[]; password?: string; sentinelPassword?: string }
  | { kind: 'cluster'; nodes: HostPort[]; password?: string };

/** @example openSharedState({ redis: { kind: 'cluster', nodes: [{ host: '10.0.0.5', port: 7000 }] } }) */
export function openSharedState(opts: { url?: string; redis?: RedisTopology; prefix?: string }): SharedState {
  const topology = opts.redis ?? (opts.url ? { kind: 'single' as const, url: opts.url } : undefined);
  return topology ? new RedisState(topology, opts.prefix ?? 'baton:') : new MemoryState();
}

/** One ioredis client (a Redis, or a Cluster) for `topology`, with these per-connection options. */
function connect(topology: RedisTopology, options: RedisOptions, cluster: { shardedSubscribers?: boolean } = {}): Redis | Cluster {
  switch (topology.kind) {
    case 'single':
      return new Redis(topology.url, options);
    case 'sentinel':
      return new Redis({
        ...options,
        name: topology.name,
        sentinels: topology.sentinels,
        ...(topology.password ? { password: topology.password } : {}),
        ...(topology.sentinelPassword ? { sentinelPassword: topology.sentinelPassword } : {}),
      });
    case 'cluster':
      return new Cluster(topology.nodes, {
        enableOfflineQueue: options.enableOfflineQueue ?? true,
        ...cluster,
        redisOptions: { ...options, ...(topology.password ? { password: topology.password } : {}) },
      });
  }
}

class MemoryState implements SharedState {
  readonly kind = 'memory' as const;
  readonly #windows = new Map<string, { count: number; resetAt: number }>();
  readonly #subscribers = new Map<string, Set<(m: string) => void>>();

  async hit(key: string, limit: number, windowSeconds: number): Promise<RateLimitResult> {
    const now = Date.now();
    let w = this.#windows.get(key);
    if (!w || w.resetAt <= now) {
      w = { count: 0, resetAt: now + windowSeconds * 1000 };
      this.#windows.set(key, w);
      if (this.#windows.size > 100_000) this.#sweep(now);
    }
    w.count++;
    return { allowed: w.count <= limit, retryAfter: Math.max(1, Math.ceil((w.resetAt - now) / 1000)) };
  }

  async publish(channel: string, message: string): Promise<void> {
    for (const fn of this.#subscribers.get(channel) ?? []) queueMicrotask(() => fn(message));
  }

  async subscribe(channel: string, onMessage: (m: string) => void, onState?: (live: boolean) => void) {
    const set = this.#subscribers.get(channel) ?? new Set();
    set.add(onMessage);
    this.#subscribers.set(channel, set);
    onState?.(true);
    return async () => void set.delete(onMessage);
  }

  async close(): Promise<void> {
    this.#subscribers.clear();
  }

  #sweep(now: number): void {
    for (const [k, w] of this.#windows) if (w.resetAt <= now) this.#windows.delete(k);
  }
}

class RedisState implements SharedState {
  readonly kind = 'redis' as const;
  readonly #topology: RedisTopology;
  readonly #prefix: string;
  readonly #redis: Redis | Cluster;
  readonly #subscribers: Array<Redis | Cluster> = [];
  /** A Cluster's channels are sharded: SPUBLISH / SSUBSCRIBE / 'smessage'. */
  readonly #sharded: boolean;

  constructor(topology: RedisTopology, prefix: string) {
    this.#topology = topology;
    this.#prefix = prefix;
    this.#sharded = topology.kind === 'cluster';
    this.#redis = connect(topology, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    this.#redis.on('error', () => {}); // surfaced per call; ioredis reconnects by itself
    this.#connected = new Promise((resolve) => this.#redis.once('ready', resolve));
  }

  readonly #connected: Promise<unknown>;

  /**
   * Commands fail at once while disconnected (no offline queue: a Redis outage must refuse, not
   * pile up), but right after start-up — a Sentinel lookup, a Cluster's slot map — the first
   * connection is given up to two seconds.
   */
  async #ready(): Promise<void> {
    if (this.#redis.status === 'ready') return;
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([this.#connected, new Promise((r) => (timer = setTimeout(r, 2000)))]);
    clearTimeout(timer);
  }

  async hit(key: string, limit: number, windowSeconds: number): Promise<RateLimitResult> {
    await this.#ready();
    const k = `${this.#prefix}rl:${key}`;
    const [[, count], [, ttl]] = (await this.#redis.multi().incr(k).ttl(k).exec()) as [[null, number], [null, number]];
    if (ttl < 0) await this.#redis.expire(k, windowSeconds);
    return { allowed: count <= limit, retryAfter: ttl > 0 ? ttl : windowSeconds };
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.#ready();
    if (this.#sharded) await this.#redis.spublish(this.#prefix + channel, message);
    else await this.#redis.publish(this.#prefix + channel, message);
  }

  async subscribe(channel: string, onMessage: (m: string) => void, onState?: (live: boolean) => void) {
    const sub = connect(this.#topology, { maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(n * 100, 1000) }, { shardedSubscribers: this.#sharded });
    this.#subscribers.push(sub);
    const full = this.#prefix + channel;
    sub.on('error', () => onState?.(false));
    sub.on('close', () => onState?.(false));
    sub.on('ready', () => {
      // (re)subscribe on every connect; the caller resyncs on the live=true edge
      const subscribed = this.#sharded ? sub.ssubscribe(full) : sub.subscribe(full);
      subscribed.then(() => onState?.(true), () => onState?.(false));
    });
    sub.on(this.#sharded ? 'smessage' : 'message', (ch: string, message: string) => {
      if (ch === full) onMessage(message);
    });
    return async () => {
      sub.disconnect();
    };
  }

  async close(): Promise<void> {
    for (const s of this.#subscribers) s.disconnect();
    this.#redis.disconnect();
  }
}
