/**
 * The broker's public key set as the proxy holds it: fetched from `/.well-known/baton-keys.json` and
 * cached, refetched when a token names a key id we don't know (rotation) at most once a second, and
 * refreshed every 5 minutes (retirements). Or a static file.
 */
import { readFileSync } from 'node:fs';
import { keySetResolver, KeySetDocument, type KeyResolver } from '../../token/keys.ts';

export interface KeySetSource {
  /** A resolver that knows every key currently published (refetching first when `wantedKeyId` is new). */
  resolver(wantedKeyId?: number): Promise<KeyResolver>;
}

export function staticKeySet(path: string): KeySetSource {
  const resolver = keySetResolver(KeySetDocument.parse(JSON.parse(readFileSync(path, 'utf8'))));
  return { resolver: async () => resolver };
}

export function remoteKeySet(url: string, opts: { maxAgeMs?: number; minRefetchMs?: number } = {}): KeySetSource {
  const maxAge = opts.maxAgeMs ?? 5 * 60_000;
  const minRefetch = opts.minRefetchMs ?? 1_000;
  let doc: KeySetDocument | undefined;
  let fetchedAt = 0;
  let inflight: Promise<void> | undefined;

  const refresh = () =>
    (inflight ??= (async () => {
      try {
        const res = await fetch(url, { signal: AbortSignal.timeout(5000) });
        if (!res.ok) throw new Error(`key set ${url}: HTTP ${res.status}`);
        doc = KeySetDocument.parse(await res.json());
        fetchedAt = Date.now();
      } finally {
        inflight = undefined;
      }
    })());

  return {
    async resolver(wantedKeyId) {
      const unknown = wantedKeyId !== undefined && doc !== undefined && !doc.keys.some((k) => k.id === wantedKeyId);
      // an unknown id may be a rotation we haven't seen: refetch, but at most every minRefetch
      if (!doc || Date.now() - fetchedAt > maxAge || (unknown && Date.now() - fetchedAt > minRefetch)) await refresh();
      return keySetResolver(doc!);
    },
  };
}
