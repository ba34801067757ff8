/**
 * Ed25519 and the byte strings Biscuit signs, with node:crypto.
 *
 * Signature format version 0 (the only one biscuit-auth 5 / biscuit-wasm 0.5 writes; `SignedBlock.version`
 * absent): a block is signed by the previous block's next key over
 * `block bytes ‖ [external signature] ‖ u32le(algorithm = 0, Ed25519) ‖ next public key (32 bytes)`,
 * and a sealed token's final signature is made with the last next key over
 * `last block bytes ‖ u32le(0) ‖ last next public key ‖ last block signature`.
 *
 * @see https://github.com/biscuit-auth/biscuit-rust/blob/main/biscuit-auth/src/crypto/mod.rs
 *      (`generate_block_signature_payload_v0`, `generate_seal_signature_payload_v0`)
 */
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, type KeyObject } from 'node:crypto';

/** `PublicKey.Algorithm.Ed25519` as the 4 little-endian bytes the payloads embed. */
const ED25519_ALGORITHM_LE = Uint8Array.of(0, 0, 0, 0);

function rawPublicKey(key: KeyObject): Uint8Array {
  const x = createPublicKey(key).export({ format: 'jwk' }).x;
  if (typeof x !== 'string') throw new Error('Ed25519 public key export failed');
  return new Uint8Array(Buffer.from(x, 'base64url'));
}

/** A fresh Ed25519 key pair as raw bytes: the 32-byte seed and the 32-byte public key. */
export function generateEd25519(): { seed: Uint8Array; publicKey: Uint8Array } {
  const { privateKey } = generateKeyPairSync('ed25519');
  const d = privateKey.export({ format: 'jwk' }).d;
  if (typeof d !== 'string') throw new Error('Ed25519 private key export failed');
  return { seed: new Uint8Array(Buffer.from(d, 'base64url')), publicKey: rawPublicKey(privateKey) };
}

/**
 * Ed25519 signature (RFC 8032, deterministic) of `message` with the secret `seed`, which must belong
 * to `publicKey` (the chain's last next key), so a proof that does not match the chain throws instead
 * of yielding a token nobody can verify. The seed is imported as a JWK: OpenSSL decodes JWK ~10×
 * faster than PKCS#8 DER (≈30 µs vs ≈300 µs) and attenuate() sits on agents' hot path. OpenSSL
 * derives the public half from `d` (ignoring the `x` we must pass), so comparing that derived key with
 * `publicKey` is the pairing check.
 */
export function signMatching(seed: Uint8Array, publicKey: Uint8Array, message: Uint8Array): Uint8Array {
  const key = createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: Buffer.from(seed).toString('base64url'), x: Buffer.from(publicKey).toString('base64url') },
    format: 'jwk',
  });
  if (!Buffer.from(rawPublicKey(key)).equals(Buffer.from(publicKey))) throw new Error("the proof does not match the last block's next key");
  return new Uint8Array(sign(null, message, key));
}

/** What a v0 block signature covers. */
export function blockSignaturePayloadV0(
  block: Uint8Array,
  nextKey: Uint8Array,
  externalSignature?: Uint8Array,
): Uint8Array {
  return Buffer.concat([block, ...(externalSignature ? [externalSignature] : []), ED25519_ALGORITHM_LE, nextKey]);
}

/** What the final (seal) signature covers. */
export function sealSignaturePayloadV0(block: Uint8Array, nextKey: Uint8Array, signature: Uint8Array): Uint8Array {
  return Buffer.concat([block, ED25519_ALGORITHM_LE, nextKey, signature]);
}
