/** The record of every token the broker issued (ids and claims — never the token itself). */
import type pg from 'pg';
import { createBatcher } from '../store/batcher.ts';
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

const COLUMNS = 9;

/** One multi-row INSERT: a single durable commit for the whole batch. */
async function insertIssuedTokens(pool: pg.Pool, tokens: IssuedToken[]): Promise<void> {
  const values: unknown[] = [];
  const rows = tokens.map((t, i) => {
    values.push(t.tokenId, t.revocationId, t.subject, t.issuer, t.agent, JSON.stringify(t.rights), t.roles, t.rootKeyId, t.expiresAt);
    return `(${Array.from({ length: COLUMNS }, (_, c) => `$${i * COLUMNS + c + 1}`).join(', ')})`;
  });
  await pool.query(
    `INSERT INTO issued_tokens (token_id, revocation_id, subject, issuer, agent, rights, roles, root_key_id, expires_at) VALUES ${rows.join(', ')}`,
    values,
  );
}

/**
 * Records issued tokens with group commit: concurrent exchanges share one INSERT and one commit.
 *
 * @example const record = issuedTokenRecorder(pool); await record(issued);
 */
export function issuedTokenRecorder(pool: pg.Pool): (t: IssuedToken) => Promise<void> {
  const batcher = createBatcher<IssuedToken>((batch) => insertIssuedTokens(pool, batch), { maxBatch: 500 });
  return (t) => batcher.add(t);
}
