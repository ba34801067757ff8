/** A broker-minted root token, a verifier and an authorizer for the token-layer tests (real components). */
import { Keyring } from '../../src/keys/keyring.ts';
import { authorize } from '../../src/token/authorize.ts';
import { mintToken, type Right } from '../../src/token/mint.ts';
import { BlockBuilder } from '../../src/token/biscuit.ts';
import { verifyToken } from '../../src/token/verify.ts';

export const NOW = new Date('2026-11-23T12:00:00Z');
export const ORDERS = 'pg:appdb/public.orders';
export const CUSTOMERS = 'pg:appdb/public.customers';

export const ring = Keyring.ephemeral();

/** A root token of `ring`, valid for an hour after NOW. */
export function rootToken(rights: Right[] = ['read', 'insert', 'update', 'delete'].map((operation) => ({ resource: 'pg:appdb/public.*', operation }))): string {
  return mintToken({ subject: 'alice', issuer: 'https://idp', agent: 'planner', rights, expiresAt: new Date(NOW.getTime() + 3600_000) }, ring.signingKey()).token;
}

/** What the proxy's authorizer decides for one (resource, operation) at `at`. */
export function allowed(token: string, resource: string, operation: string, at: Date = NOW): boolean {
  const v = verifyToken(token, ring);
  try {
    return authorize(v.biscuit, resource, operation, at).allow;
  } finally {
    v.biscuit.free();
  }
}

/** The coded error `fn` throws (`code`, message), or undefined. */
export function refusal(fn: () => unknown): { code: string; message: string } | undefined {
  try {
    fn();
  } catch (e) {
    return { code: (e as { code?: string }).code ?? String(e), message: (e as Error).message };
  }
  return undefined;
}

/** Appends hand-written Datalog with biscuit-wasm, as an attacker with any Biscuit library would. */
export function appendDatalog(token: string, code: string): string {
  const v = verifyToken(token, ring);
  try {
    const block = new BlockBuilder();
    block.addCode(code);
    const child = v.biscuit.appendBlock(block);
    try {
      return child.toBase64();
    } finally {
      child.free();
    }
  } finally {
    v.biscuit.free();
  }
}
