/** The record of every token the broker issued (ids and claims — never the token itself). */
import type pg from 'pg';
import type { Right } from '../token/mint.ts';

export interface IssuedToken {
  tokenId: string;
  revocationId: string;
  subject: string;
  issuer: string;
  agent: string;
  rights: Right[];
  roles: string[];
  rootKeyId: number;
  expiresAt: Date;
}

export async function recordIssuedToken(pool: pg.Pool, t: IssuedToken): Promise<void> {
  await pool.query(
    `INSERT INTO issued_tokens (token_id, revocation_id, subject, issuer, agent, rights, roles, root_key_id, expires_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)`,
    [t.tokenId, t.revocationId, t.subject, t.issuer, t.agent, JSON.stringify(t.rights), t.roles, t.rootKeyId, t.expiresAt],
  );
}
