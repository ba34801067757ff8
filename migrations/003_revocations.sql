-- Revocations (see docs/revocation.md). One row per revoked Biscuit revocation id; every token whose
-- chain contains that id is dead (the ids of a parent's blocks are a prefix of its children's).
-- Rows are purged once `expires_at` has passed: by then every token that could carry the id has
-- expired by itself, so the set stays small.
-- Idempotent: safe to run twice.

CREATE SEQUENCE IF NOT EXISTS revocations_seq AS bigint;

CREATE TABLE IF NOT EXISTS revocations (
  revocation_id  text PRIMARY KEY,
  -- `since` cursor: revoke() draws it under a transaction-scoped advisory lock, so seq order is
  -- commit order and a reader never sees seq N+1 before seq N (no gaps a cursor could skip).
  seq            bigint NOT NULL UNIQUE DEFAULT nextval('revocations_seq'),
  token_id       text,
  revoked_at     timestamptz NOT NULL DEFAULT now(),
  -- When the revoked token, and so every descendant, expires (an upper bound; see docs).
  expires_at     timestamptz NOT NULL,
  -- The revoking token's id, or 'possession' when the revoked token itself was presented.
  revoked_by     text NOT NULL,
  reason         text
);
ALTER SEQUENCE revocations_seq OWNED BY revocations.seq;
CREATE INDEX IF NOT EXISTS revocations_revoked_at ON revocations (revoked_at);
CREATE INDEX IF NOT EXISTS revocations_expires_at ON revocations (expires_at);

-- Names this database's revocation history. Cursors carry it, so a proxy whose cursor came from
-- another database (restored, replaced) is answered from the start instead of silently skipping.
CREATE TABLE IF NOT EXISTS revocation_epoch (
  only_row  boolean PRIMARY KEY DEFAULT true CHECK (only_row),
  epoch     text NOT NULL
);
INSERT INTO revocation_epoch (epoch) VALUES (md5(random()::text || clock_timestamp()::text)) ON CONFLICT DO NOTHING;
