/**
 * Verifying a Baton token's signature chain against the broker's root keys. Verification is separate
 * from authorization: a proxy verifies once per connection and then authorizes each statement.
 */
import { BatonError, describe } from '../errors.ts';
import { assertAdmissible } from './admission.ts';
import { Biscuit } from './biscuit.ts';
import type { KeyResolver } from './keys.ts';
import { MAX_TOKEN_BYTES } from './limits.ts';
import { decodeToken, type DecodedToken } from './wire/index.ts';

/** Tokens larger than this are refused before any parsing (src/token/limits.ts). */
export { MAX_TOKEN_BYTES };

export interface VerifiedToken {
  /** The verified biscuit-wasm object; owned by the caller (free() when done). */
  biscuit: Biscuit;
  /** The structural view of every block (facts, checks, revocation ids). */
  decoded: DecodedToken;
  rootKeyId: number;
  /** Revocation ids, authority block first; a child's list extends its parent's. */
  revocationIds: string[];
}

/**
 * Parses `token`, refuses structures outside the bounds and reserved names of admission.ts (before
 * any Datalog runs), and checks every block signature against the root key named by its `root_key_id`.
 * `decoded`, when given, must be `decodeToken(token)`.
 *
 * @throws BatonError BATON_ERR_TOKEN_MALFORMED | BATON_ERR_TOKEN_TOO_COMPLEX | BATON_ERR_TOKEN_RESERVED_NAME
 *   | BATON_ERR_TOKEN_UNKNOWN_KEY | BATON_ERR_TOKEN_SIGNATURE
 * @example const v = verifyToken(tokenString, keyring); try { … } finally { v.biscuit.free(); }
 */
export function verifyToken(token: string, keys: KeyResolver, decoded?: DecodedToken): VerifiedToken {
  if (typeof token !== 'string' || token.length === 0) {
    throw new BatonError('BATON_ERR_TOKEN_MALFORMED', 'token is missing');
  }
  if (token.length > MAX_TOKEN_BYTES) {
    throw new BatonError('BATON_ERR_TOKEN_TOO_COMPLEX', `token refused: token is larger than MAX_TOKEN_BYTES=${MAX_TOKEN_BYTES}`, { detail: 'MAX_TOKEN_BYTES' });
  }
  // a caller that already decoded the token (to pick its key source) passes the result in
  decoded ??= decodeToken(token.trim()); // throws BATON_ERR_TOKEN_MALFORMED on garbage
  // Unsigned structure, but refusing it costs nothing and spares the engine: signatures are checked next.
  assertAdmissible(decoded);
  const rootKeyId = decoded.rootKeyId;
  if (rootKeyId === undefined) {
    throw new BatonError('BATON_ERR_TOKEN_UNKNOWN_KEY', 'token names no root key id');
  }
  const publicKey = keys.publicKey(rootKeyId);
  if (!publicKey) {
    throw new BatonError('BATON_ERR_TOKEN_UNKNOWN_KEY', `token was signed by unknown or retired key ${rootKeyId}`);
  }
  let biscuit: Biscuit;
  try {
    biscuit = Biscuit.fromBase64(token.trim(), publicKey);
  } catch (err) {
    throw new BatonError('BATON_ERR_TOKEN_SIGNATURE', 'token signature is invalid', { detail: describe(err) });
  } finally {
    publicKey.free();
  }
  return { biscuit, decoded, rootKeyId, revocationIds: decoded.blocks.map((b) => b.revocationId) };
}
