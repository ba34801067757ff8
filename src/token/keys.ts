/**
 * How verifiers find the root public key for a token: by the token's `root_key_id`.
 * The broker's Keyring, a key set fetched from `/.well-known/baton-keys.json`, or a static file all
 * satisfy `KeyResolver`.
 */
import { z } from 'zod';
import { PublicKey } from './biscuit.ts';

export interface KeyResolver {
  /** A FRESH PublicKey for `id` (biscuit-wasm may consume it), or undefined when unknown/retired. */
  publicKey(id: number): InstanceType<typeof PublicKey> | undefined;
}

/** The public key set document, as served at `/.well-known/baton-keys.json`. */
export const KeySetDocument = z.object({
  keys: z.array(
    z.object({
      id: z.number().int().min(1).max(0xffffffff),
      algorithm: z.literal('ed25519'),
      public_key: z.string().regex(/^[0-9a-f]{64}$/),
      status: z.enum(['active', 'verify']),
      created_at: z.string(),
    }),
  ),
});
export type KeySetDocument = z.infer<typeof KeySetDocument>;

/** A resolver over a published key set document: one implementation, in the SDK (which cannot import zod). */
export { keySetResolver } from '../sdk/key-set.ts';
