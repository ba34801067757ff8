/**
 * Fast shared state between broker and proxies: fixed-window rate limits and a pub/sub channel
 * (revocation fan-out). Redis when REDIS_URL is set; otherwise an in-process implementation that
 * serves a single process (`baton dev`).
 */
import { Redis } from 'ioredis';

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

export function openSharedState(opts: { url?: string; prefix?: string }): SharedState {
  return opts.url ? new RedisState(opts.url, opts.prefix ?? 'baton:') : new MemoryState();
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
  readonly #url: string;
  readonly #prefix: string;
  readonly #redis: Redis;
  readonly #subscribers: Redis[] = [];

  constructor(url: string, prefix: string) {
    this.#url = url;
    this.#prefix = prefix;
    this.#redis = new Redis(url, { maxRetriesPerRequest: 1, enableOfflineQueue: false, lazyConnect: false });
    this.#redis.on('error', () => {}); // surfaced per call; ioredis reconnects by itself
  }

  async hit(key: string, limit: number, windowSeconds: number): Promise<RateLimitResult> {
    const k = `${this.#prefix}rl:${key}`;
    const [[, count], [, ttl]] = (await this.#redis.multi().incr(k).ttl(k).exec()) as [[null, number], [null, number]];
    if (ttl < 0) await this.#redis.expire(k, windowSeconds);
    return { allowed: count <= limit, retryAfter: ttl > 0 ? ttl : windowSeconds };
  }

  async publish(channel: string, message: string): Promise<void> {
    await this.#redis.publish(this.#prefix + channel, message);
  }

  async subscribe(channel: string, onMessage: (m: string) => void, onState?: (live: boolean) => void) {
    const sub = new Redis(this.#url, { maxRetriesPerRequest: null, retryStrategy: (n) => Math.min(n * 100, 1000) });
    this.#subscribers.push(sub);
    const full = this.#prefix + channel;
    sub.on('error', () => onState?.(false));
    sub.on('close', () => onState?.(false));
    sub.on('ready', () => {
      // (re)subscribe on every connect; the caller resyncs on the live=true edge
      sub.subscribe(full).then(() => onState?.(true), () => onState?.(false));
    });
    sub.on('message', (ch: string, message: string) => {
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
