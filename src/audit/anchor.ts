/**
 * Chain-head anchoring: signed checkpoints. A writer signs the head of each of its chains — every
 * N entries or T seconds, and when it closes — with the chain's anchor key, an Ed25519 key whose
 * public half is recorded when the chain is registered (`audit_chains.anchor_key`). Checkpoints live
 * apart from the rows (`audit_checkpoints`, append-only) and may also be published elsewhere
 * (`onCheckpoint`). Verification checks that each checkpoint's (chainSeq, hash) is in its chain and
 * that the chain reaches the newest one, so deleting the newest entries of a chain is detected.
 *
 *   signature = Ed25519( UTF-8( "baton-audit-checkpoint/v1\n" + chainId + "\n" + chainSeq + "\n" + hash + "\n" + signedAt ) )
 */
import { type KeyObject, createPublicKey, generateKeyPairSync, sign, verify } from 'node:crypto';

/** A signed statement "chain `chainId` had entry `chainSeq` with hash `hash` at `signedAt`". */
export interface AuditCheckpoint {
  chainId: number;
  chainSeq: number;
  hash: string;
  /** ISO 8601 UTC (toISOString) of the signing. */
  signedAt: string;
  /** Ed25519 signature, hex. */
  signature: string;
}

/** An Ed25519 key pair for one chain; `publicKeyHex` is the raw 32-byte public key in hex. */
export interface AnchorKey {
  privateKey: KeyObject;
  publicKeyHex: string;
}

/** The bytes a checkpoint signature covers. */
export function checkpointMessage(cp: Omit<AuditCheckpoint, 'signature'>): Buffer {
  return Buffer.from(`baton-audit-checkpoint/v1\n${cp.chainId}\n${cp.chainSeq}\n${cp.hash}\n${cp.signedAt}`, 'utf8');
}

/**
 * A fresh anchor key, or the given Ed25519 private key with its public half.
 *
 * @example
 * const key = anchorKey(); // per-chain key held only in this process's memory
 */
export function anchorKey(privateKey?: KeyObject): AnchorKey {
  const key = privateKey ?? generateKeyPairSync('ed25519').privateKey;
  if (key.type !== 'private' || key.asymmetricKeyType !== 'ed25519') throw new TypeError('anchorKey: an Ed25519 private key is required');
  const jwk = createPublicKey(key).export({ format: 'jwk' });
  return { privateKey: key, publicKeyHex: Buffer.from(String(jwk.x), 'base64url').toString('hex') };
}

/**
 * Signs the head (`chainSeq`, `hash`) of chain `chainId` now.
 *
 * @example
 * const cp = signCheckpoint(key, 7, 1000, head.hash);
 */
export function signCheckpoint(key: AnchorKey, chainId: number, chainSeq: number, hash: string, at = new Date()): AuditCheckpoint {
  const unsigned = { chainId, chainSeq, hash, signedAt: at.toISOString() };
  return { ...unsigned, signature: sign(null, checkpointMessage(unsigned), key.privateKey).toString('hex') };
}

/**
 * True if `cp` carries a valid signature by the Ed25519 public key `publicKeyHex` (raw, hex).
 *
 * @example
 * if (!checkpointSignatureValid(cp, chain.anchorKey)) report('forged checkpoint');
 */
export function checkpointSignatureValid(cp: AuditCheckpoint, publicKeyHex: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(publicKeyHex) || !/^[0-9a-f]{128}$/.test(cp.signature)) return false;
  try {
    const key = createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: Buffer.from(publicKeyHex, 'hex').toString('base64url') }, format: 'jwk' });
    return verify(null, checkpointMessage(cp), key, Buffer.from(cp.signature, 'hex'));
  } catch {
    return false;
  }
}
