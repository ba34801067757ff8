/** Reading a token's lineage and effective rights, verified when keys are given. */
import type { ErrorCode } from '../errors.ts';
import { admissionError } from '../token/admission.ts';
import { keySetResolver, parseKeySet, type KeyResolver, type KeySetDocument } from './key-set.ts';
import { effectiveRights, readLineage, type EffectiveRights, type LineageLink } from '../token/lineage.ts';
import { verifyToken } from '../token/verify.ts';
import { decodeToken } from '../token/wire/index.ts';

export interface InspectOptions {
  /** The broker's key set document (or a resolver). Without it the token is decoded UNVERIFIED. */
  publicKeys?: KeySetDocument | KeyResolver;
}

export interface Inspection {
  /** True only when every signature was checked against a root key you supplied. */
  verified: boolean;
  rootKeyId?: number;
  sealed: boolean;
  lineage: LineageLink[];
  effective: EffectiveRights;
  /**
   * Unverified inspection only: why every verifier would refuse this token (a block defining a
   * reserved name, a block beyond the structural bounds). With keys, inspect throws that error
   * instead. When set, `lineage` and `effective` describe a token nobody will accept.
   */
  refusal?: { code: ErrorCode; message: string };
}

/**
 * @example
 * const { lineage, effective } = inspect(token, { publicKeys: await (await fetch(`${broker}/.well-known/baton-keys.json`)).json() });
 * @throws BatonError BATON_ERR_TOKEN_MALFORMED, or (with keys) the refusal of `verifyToken`
 *   (BATON_ERR_TOKEN_TOO_COMPLEX, BATON_ERR_TOKEN_RESERVED_NAME, a signature or key error)
 */
export function inspect(token: string, opts: InspectOptions = {}): Inspection {
  let verified = false;
  let decoded;
  let refusal: Inspection['refusal'];
  if (opts.publicKeys) {
    const resolver = 'publicKey' in opts.publicKeys ? opts.publicKeys : keySetResolver(parseKeySet(opts.publicKeys));
    const v = verifyToken(token, resolver);
    v.biscuit.free();
    decoded = v.decoded;
    verified = true;
  } else {
    decoded = decodeToken(token.trim());
    const err = admissionError(decoded, token.trim().length);
    if (err) refusal = { code: err.code, message: err.message };
  }
  return {
    verified,
    ...(decoded.rootKeyId !== undefined ? { rootKeyId: decoded.rootKeyId } : {}),
    sealed: decoded.sealed,
    lineage: readLineage(decoded),
    effective: effectiveRights(decoded),
    ...(refusal ? { refusal } : {}),
  };
}
