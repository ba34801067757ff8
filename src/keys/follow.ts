/**
 * The broker side of key-set freshness: follow `baton keys rotate|retire` made by another process (the
 * key file changes under us), and announce every change of the published set on the SharedState
 * channel `keys`, so standalone proxies refetch `/.well-known/baton-keys.json` at once instead of at
 * their next poll. The message is only a hint ("refetch"): proxies never take keys from the channel.
 */
import type { SharedState } from '../store/shared-state.ts';
import type { Keyring } from './keyring.ts';

/** The SharedState channel key-set changes are announced on. */
export const KEYSET_CHANNEL = 'keys';

/** What is published on the channel: the new set's tag (the key-set route's ETag, unquoted). */
export interface KeySetMessage {
  tag: string;
}

export interface FollowKeyringOptions {
  state: SharedState;
  channel?: string;
  /** How often the key file is checked for changes by another process. Default 1000 ms. */
  everyMs?: number;
  /** The active key changed (audit it). Must not throw. */
  onRotated?: (change: { from: number; to: number }) => void;
  log?: (event: Record<string, unknown>) => void;
}

/**
 * @returns a function that stops following
 * @example const stop = followKeyring(keyring, { state, onRotated: (r) => audit(r) });
 */
export function followKeyring(keyring: Keyring, opts: FollowKeyringOptions): () => void {
  const channel = opts.channel ?? KEYSET_CHANNEL;
  const announce = () => {
    const message: KeySetMessage = { tag: keyring.tag };
    opts.state.publish(channel, JSON.stringify(message)).catch((err: Error) => {
      // proxies still poll the key set every few seconds (and fail closed past their bound)
      opts.log?.({ event: 'keys.publish_failed', error: err.message });
    });
  };
  const stopListening = keyring.onChange(announce);
  const timer = setInterval(() => {
    try {
      const rotated = keyring.reloadIfChanged();
      if (rotated) opts.onRotated?.(rotated);
    } catch (err) {
      opts.log?.({ event: 'keys.file_unreadable', error: (err as Error).message });
    }
  }, opts.everyMs ?? 1000);
  timer.unref();
  return () => {
    clearInterval(timer);
    stopListening();
  };
}
