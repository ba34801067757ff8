/**
 * biscuit-wasm's first authorize() after load can fail with `RunLimit: Timeout` while the engine is
 * cold (DESIGN.md). Servers call this once at start so no caller ever sees that.
 */
import { authorize } from './authorize.ts';
import { Keyring } from '../keys/keyring.ts';
import { mintToken } from './mint.ts';
import { verifyToken } from './verify.ts';

let warmed: Promise<void> | undefined;

export function warmUpAuthorizer(): Promise<void> {
  warmed ??= (async () => {
    const ring = Keyring.ephemeral();
    const { token } = mintToken(
      { subject: 'warmup', issuer: 'warmup', agent: 'warmup', rights: [{ resource: 'pg:warmup/public.t', operation: 'read' }], expiresAt: new Date(Date.now() + 60_000) },
      ring.signingKey(),
    );
    const v = verifyToken(token, ring);
    try {
      for (let i = 0; i < 20; i++) {
        try {
          authorize(v.biscuit, 'pg:warmup/public.t', 'read', new Date());
        } catch {
          // cold-engine RunLimit: exactly what warming up absorbs
        }
      }
    } finally {
      v.biscuit.free();
    }
  })();
  return warmed;
}
