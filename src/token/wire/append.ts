/**
 * Offline attenuation and sealing: `appendBlock` and `sealToken`, without the root public key.
 *
 * A Biscuit's proof is the secret of the last block's next key. Appending signs the new block with
 * that secret (signature format v0, the one biscuit-wasm 0.5 writes and reads), names a fresh Ed25519
 * key as the new next key and hands its secret on as the new proof. Sealing replaces the secret with a
 * final signature, after which nothing can be appended. Neither step checks the chain back to the root:
 * a forged token stays forged, and the verifier (biscuit-wasm with the root key) rejects it.
 *
 * @see https://github.com/biscuit-auth/biscuit-rust/blob/main/biscuit-auth/src/token/unverified.rs
 */
import { BatonError } from '../../errors.ts';
import { encodeContainer, malformed, MAX_TOKEN_BYTES, tokenText, type Container } from './container.ts';
import {
  blockSignaturePayloadV0,
  generateEd25519,
  sealSignaturePayloadV0,
  signMatching,
} from './crypto.ts';
import { decodeParts } from './decode.ts';
import { encodeBlock } from './encode.ts';
import { SCHEMA_VERSION, type BlockModel } from './model.ts';

/**
 * Highest block version `appendBlock` writes by default: biscuit-wasm 0.5 (biscuit-auth 5) reads
 * versions 3–5, so Datalog v3.3 features (version 6) would make the token unreadable to it.
 */
export const DEFAULT_MAX_APPEND_VERSION = SCHEMA_VERSION.V3_2;

export interface AppendOptions {
  /** Refuse larger tokens (default 64 KiB). */
  readonly maxBytes?: number;
  /** Highest block version to write (default 5, what biscuit-wasm 0.5 reads). */
  readonly maxVersion?: number;
}

/** The proof secret, after checking the token can be extended and the secret matches the chain end. */
function proofSecret(container: Container): Uint8Array {
  if ('finalSignature' in container.proof) {
    throw new BatonError('BATON_ERR_TOKEN_SEALED', 'the token is sealed and cannot be attenuated');
  }
  const last = container.blocks[container.blocks.length - 1]!;
  if (last.nextKey.algorithm !== 'ed25519') malformed('only Ed25519 chains can be extended offline');
  return container.proof.nextSecret;
}

/** Signs with the proof secret; a secret that does not belong to the chain's last next key is malformed. */
function signWithProof(secret: Uint8Array, lastNextKey: Uint8Array, payload: Uint8Array): Uint8Array {
  try {
    return signMatching(secret, lastNextKey, payload);
  } catch {
    return malformed("the proof does not match the last block's next key");
  }
}

/**
 * Appends an attenuation block to a token offline (no root key needed).
 *
 * @param token the parent token (URL-safe base64, as `Biscuit.toBase64()` writes it).
 * @param block the block's Datalog; invalid models throw `TypeError`.
 * @returns the child token, URL-safe base64 with padding.
 * @throws BatonError `BATON_ERR_TOKEN_SEALED` for a sealed token, `BATON_ERR_TOKEN_MALFORMED` for
 *   anything that is not a well-formed, extensible token.
 *
 * @example
 * const child = appendBlock(parent, {
 *   facts: [{ name: 'delegated_to', terms: [{ string: 'helper-7' }] }],
 *   checks: [{ kind: 'if', queries: [{
 *     body: [{ name: 'operation', terms: [{ variable: 'op' }] }],
 *     expressions: [[{ value: { set: [{ string: 'read' }] } }, { value: { variable: 'op' } }, { binary: 'contains' }]],
 *     scopes: [],
 *   }] }],
 * });
 */
export function appendBlock(token: string | Uint8Array, block: BlockModel, options: AppendOptions = {}): string {
  const { container, tables } = decodeParts(token, options.maxBytes ?? MAX_TOKEN_BYTES);
  const secret = proofSecret(container);
  const encoded = encodeBlock(block, tables, options.maxVersion ?? DEFAULT_MAX_APPEND_VERSION);
  const next = generateEd25519();
  const last = container.blocks[container.blocks.length - 1]!;
  const signature = signWithProof(secret, last.nextKey.bytes, blockSignaturePayloadV0(encoded.bytes, next.publicKey));
  return tokenText(
    encodeContainer({
      ...container,
      blocks: [
        ...container.blocks,
        { block: encoded.bytes, nextKey: { algorithm: 'ed25519', bytes: next.publicKey }, signature, version: 0 },
      ],
      proof: { nextSecret: next.seed },
    }),
  );
}

/**
 * Seals a token offline: the proof secret becomes a final signature, so no block can be appended.
 *
 * @throws BatonError `BATON_ERR_TOKEN_SEALED` if it is sealed already, `BATON_ERR_TOKEN_MALFORMED`.
 *
 * @example
 * const final = sealToken(child); // appendBlock(final, …) now throws BATON_ERR_TOKEN_SEALED
 */
export function sealToken(token: string | Uint8Array, options: { maxBytes?: number } = {}): string {
  const { container } = decodeParts(token, options.maxBytes ?? MAX_TOKEN_BYTES);
  const secret = proofSecret(container);
  const last = container.blocks[container.blocks.length - 1]!;
  const finalSignature = signWithProof(secret, last.nextKey.bytes, sealSignaturePayloadV0(last.block, last.nextKey.bytes, last.signature));
  return tokenText(encodeContainer({ ...container, proof: { finalSignature } }));
}
