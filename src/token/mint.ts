/**
 * Minting the authority block (broker only). The authority block is the only block whose facts grant
 * anything (DESIGN.md): token id, subject, issuer, agent, one `right` per (resource, operation), roles,
 * and the expiry check. Every caller-derived value is bound as a parameter.
 */
import { randomBytes } from 'node:crypto';
import { BiscuitBuilder, type PrivateKey } from './biscuit.ts';
import { dateParam } from './terms.ts';
import { AUTHORITY_FACTS, AUTHORITY_RIGHT, AUTHORITY_ROLE, EXPIRY_CHECK, isOperation, parseResource } from './vocabulary.ts';

export interface Right {
  resource: string;
  operation: string;
}

export interface MintRequest {
  tokenId?: string;
  subject: string;
  issuer: string;
  /** The agent (OAuth client / actor) acting for the subject. */
  agent: string;
  rights: Right[];
  roles?: string[];
  expiresAt: Date;
}

export interface MintedToken {
  token: string;
  tokenId: string;
  /** Revocation id of the authority block (hex), the root of every descendant's chain. */
  revocationId: string;
  expiresAt: Date;
}

/** A fresh token id: `tok_` + 20 random base32 characters. */
export function newTokenId(): string {
  return `tok_${randomBytes(13).toString('base64url').replace(/[-_]/g, 'x').slice(0, 20).toLowerCase()}`;
}

/**
 * Builds and signs an authority block. Takes ownership of `signer.privateKey` (frees it): pass a
 * fresh key, as `Keyring.signingKey()` returns.
 *
 * @example
 * const { token } = mintToken({ subject: 'alice', issuer: 'https://idp', agent: 'planner',
 *   rights: [{ resource: 'pg:appdb/public.*', operation: 'read' }], expiresAt }, keyring.signingKey());
 */
export function mintToken(req: MintRequest, signer: { id: number; privateKey: PrivateKey }): MintedToken {
  for (const r of req.rights) {
    parseResource(r.resource);
    if (!isOperation(r.operation)) throw new TypeError(`unknown operation "${r.operation}"`);
  }
  const tokenId = req.tokenId ?? newTokenId();
  const builder = new BiscuitBuilder();
  builder.addCodeWithParameters(
    AUTHORITY_FACTS,
    { token_id: tokenId, subject: req.subject, issuer: req.issuer, agent: req.agent },
    {},
  );
  for (const right of dedupe(req.rights)) {
    builder.addCodeWithParameters(AUTHORITY_RIGHT, { resource: right.resource, operation: right.operation }, {});
  }
  for (const role of new Set(req.roles ?? [])) builder.addCodeWithParameters(AUTHORITY_ROLE, { role }, {});
  const expires = dateParam(req.expiresAt);
  builder.addCodeWithParameters(EXPIRY_CHECK, { expires_at: expires }, {});
  builder.setRootKeyId(signer.id);
  let biscuit;
  try {
    biscuit = builder.build(signer.privateKey); // consumes the builder, only borrows the key
  } finally {
    signer.privateKey.free(); // wasm memory is not garbage-collected: the signer is ours to free
  }
  try {
    const [revocationId] = biscuit.getRevocationIdentifiers() as string[];
    return { token: biscuit.toBase64(), tokenId, revocationId: revocationId!, expiresAt: new Date(expires.date) };
  } finally {
    biscuit.free();
  }
}

function dedupe(rights: Right[]): Right[] {
  const seen = new Map<string, Right>();
  for (const r of rights) seen.set(`${r.resource}\u0000${r.operation}`, r);
  return [...seen.values()];
}
