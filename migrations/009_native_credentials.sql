-- Native PostgreSQL credentials issued from tokens (issue 14): one row per ephemeral login role.
-- The reaper drops a role once it expires or any link of its token chain is revoked; the row stays
-- (dropped_at, dropped_reason) as the record of what existed. No password is stored.
CREATE TABLE IF NOT EXISTS native_pg_roles (
  role_name       text PRIMARY KEY,
  upstream        text NOT NULL,
  token_id        text,
  -- every link's Biscuit revocation id: revoking any of them reaps the role
  revocation_ids  text[] NOT NULL,
  lineage         jsonb NOT NULL,
  expires_at      timestamptz NOT NULL,
  created_at      timestamptz NOT NULL DEFAULT now(),
  dropped_at      timestamptz,
  dropped_reason  text
);
CREATE INDEX IF NOT EXISTS native_pg_roles_live_expiry ON native_pg_roles (expires_at) WHERE dropped_at IS NULL;
CREATE INDEX IF NOT EXISTS native_pg_roles_live_revocation ON native_pg_roles USING gin (revocation_ids) WHERE dropped_at IS NULL;
