/**
 * The outer layer of a token: base64 text ⇄ the `Biscuit` protobuf message (signed blocks + proof).
 *
 * Everything a caller can hand us is bounded and checked here, and every failure becomes one
 * `BATON_ERR_TOKEN_MALFORMED` error: a token is attacker-controlled input.
 */
import { BatonError } from '../../errors.ts';
import type { PublicKeyModel } from './model.ts';
import { BiscuitMessage } from './schema.ts';

/** Largest token we decode (bytes after base64). Real tokens are a few hundred bytes to a few KiB. */
export const MAX_TOKEN_BYTES = 64 * 1024;

/** A signed block with its payload still serialized (the signature covers these exact bytes). */
export interface SignedBlockBytes {
  readonly block: Uint8Array;
  readonly nextKey: PublicKeyModel;
  readonly signature: Uint8Array;
  readonly external?: { readonly signature: Uint8Array; readonly publicKey: PublicKeyModel };
  /** `SignedBlock.version`, the signature payload format; 0 when absent. */
  readonly version: number;
}

export type Proof = { readonly nextSecret: Uint8Array } | { readonly finalSignature: Uint8Array };

/** The `Biscuit` message: blocks[0] is the authority block. */
export interface Container {
  readonly rootKeyId?: number;
  readonly blocks: readonly SignedBlockBytes[];
  readonly proof: Proof;
}

/** Throws the one error every decoding failure surfaces as. */
export function malformed(reason: string, cause?: unknown): never {
  throw new BatonError('BATON_ERR_TOKEN_MALFORMED', `malformed token: ${reason}`, { detail: reason, cause });
}

const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/;

/** Token text (URL-safe base64, padded or not, as biscuit-wasm's `toBase64()`) or raw bytes → bytes. */
export function tokenBytes(token: string | Uint8Array, maxBytes = MAX_TOKEN_BYTES): Uint8Array {
  if (token instanceof Uint8Array) {
    if (token.length > maxBytes) malformed(`larger than ${maxBytes} bytes`);
    return token;
  }
  if (typeof token !== 'string') malformed('expected a string or bytes');
  const text = token.trim();
  // Check the length before decoding so an oversized string costs nothing.
  if (text.length > Math.ceil(maxBytes / 3) * 4) malformed(`larger than ${maxBytes} bytes`);
  // Buffer.from(…, 'base64url') skips characters it does not know; refuse them instead.
  if (text.length === 0 || !BASE64URL.test(text) || text.replace(/=+$/, '').length % 4 === 1) {
    malformed('not URL-safe base64');
  }
  return new Uint8Array(Buffer.from(text, 'base64url'));
}

/** Bytes → URL-safe base64 with padding, exactly as biscuit-rust's `to_base64` writes it. */
export function tokenText(bytes: Uint8Array): string {
  const b64 = Buffer.from(bytes).toString('base64url');
  return b64 + '='.repeat((4 - (b64.length % 4)) % 4);
}

const ALGORITHMS = ['ed25519', 'secp256r1'] as const;
const KEY_LENGTH = { ed25519: 32, secp256r1: 33 } as const;

interface RawKey {
  algorithm: number;
  key: Uint8Array;
}

/** A `PublicKey` message → the model, checking algorithm and size. */
export function decodePublicKey(raw: RawKey, where: string): PublicKeyModel {
  const algorithm = ALGORITHMS[raw.algorithm];
  if (!algorithm) malformed(`${where}: unknown key algorithm ${raw.algorithm}`);
  if (raw.key.length !== KEY_LENGTH[algorithm]) malformed(`${where}: ${algorithm} key of ${raw.key.length} bytes`);
  return { algorithm, bytes: raw.key };
}

/** Ed25519 signatures are 64 bytes; secp256r1 ones are DER (at most 72). */
function signature(bytes: Uint8Array, algorithm: PublicKeyModel['algorithm'], where: string): Uint8Array {
  const ok = algorithm === 'ed25519' ? bytes.length === 64 : bytes.length >= 8 && bytes.length <= 72;
  if (!ok) malformed(`${where}: signature of ${bytes.length} bytes`);
  return bytes;
}

interface RawSignedBlock {
  block: Uint8Array;
  nextKey: RawKey;
  signature: Uint8Array;
  externalSignature?: { signature: Uint8Array; publicKey: RawKey };
  version?: number;
}

interface RawBiscuit {
  rootKeyId?: number;
  authority: RawSignedBlock;
  blocks: RawSignedBlock[];
  proof: { nextSecret?: Uint8Array; finalSignature?: Uint8Array; Content?: string };
}

/**
 * Decodes the container and checks its shape (key and signature sizes, one proof). Block `i` is signed
 * by block `i-1`'s next key, so its signature size follows that key's algorithm; the root key is
 * unknown here, so the authority signature is only checked to be a plausible Ed25519 or P-256 size.
 */
export function decodeContainer(bytes: Uint8Array): Container {
  let raw: RawBiscuit;
  try {
    raw = BiscuitMessage.toObject(BiscuitMessage.decode(bytes), {
      oneofs: true,
      arrays: true,
      defaults: false,
    }) as RawBiscuit;
  } catch (err) {
    malformed('not a Biscuit protobuf message', err);
  }
  const signed = [raw.authority, ...raw.blocks];
  if (raw.authority.externalSignature) malformed('the authority block has an external signature');
  const blocks = signed.map((b, i): SignedBlockBytes => {
    const where = `block ${i}`;
    const nextKey = decodePublicKey(b.nextKey, `${where} next key`);
    // Block i is signed by block i-1's next key; the authority by the (unknown) root key.
    const signer = i === 0 ? undefined : decodePublicKey(signed[i - 1]!.nextKey, where).algorithm;
    const sig = signer
      ? signature(b.signature, signer, where)
      : b.signature.length >= 8 && b.signature.length <= 72
        ? b.signature
        : malformed(`${where}: signature of ${b.signature.length} bytes`);
    const ext = b.externalSignature;
    const external = ext && {
      publicKey: decodePublicKey(ext.publicKey, `${where} external key`),
      signature: ext.signature,
    };
    if (external) signature(external.signature, external.publicKey.algorithm, `${where} external signature`);
    return { block: b.block, nextKey, signature: sig, version: b.version ?? 0, ...(external ? { external } : {}) };
  });
  const last = blocks[blocks.length - 1]!;
  let proof: Proof;
  if (raw.proof.Content === 'nextSecret' && raw.proof.nextSecret) {
    if (raw.proof.nextSecret.length !== 32) malformed(`proof secret of ${raw.proof.nextSecret.length} bytes`);
    proof = { nextSecret: raw.proof.nextSecret };
  } else if (raw.proof.Content === 'finalSignature' && raw.proof.finalSignature) {
    proof = { finalSignature: signature(raw.proof.finalSignature, last.nextKey.algorithm, 'final signature') };
  } else {
    malformed('no proof');
  }
  return { ...(raw.rootKeyId !== undefined ? { rootKeyId: raw.rootKeyId } : {}), blocks, proof };
}

const ALGORITHM_NUMBER = { ed25519: 0, secp256r1: 1 } as const;

function rawKey(k: PublicKeyModel): RawKey {
  return { algorithm: ALGORITHM_NUMBER[k.algorithm], key: k.bytes };
}

/** Encodes the container back to bytes; blocks keep their exact serialized payloads. */
export function encodeContainer(c: Container): Uint8Array {
  const signedBlock = (b: SignedBlockBytes): RawSignedBlock => ({
    block: b.block,
    nextKey: rawKey(b.nextKey),
    signature: b.signature,
    ...(b.external
      ? { externalSignature: { signature: b.external.signature, publicKey: rawKey(b.external.publicKey) } }
      : {}),
    // Version 0 is written as an absent field, as biscuit-rust does.
    ...(b.version !== 0 ? { version: b.version } : {}),
  });
  const [authority, ...rest] = c.blocks;
  if (!authority) throw new TypeError('a token has at least its authority block');
  const message = BiscuitMessage.fromObject({
    ...(c.rootKeyId !== undefined ? { rootKeyId: c.rootKeyId } : {}),
    authority: signedBlock(authority),
    blocks: rest.map(signedBlock),
    proof: c.proof,
  });
  return BiscuitMessage.encode(message).finish();
}
