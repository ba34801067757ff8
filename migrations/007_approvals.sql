-- Just-in-time approvals (docs/approvals.md, DESIGN.md rule 7). One row per statement the proxy held
-- for approval. A request is bound to the requesting chain's LAST block (revocation_id) and the exact
-- statement (statement_hash: SHA-256 of the SQL text and, for the extended protocol, the Bind values).
--
-- Stored states: pending → approved → used, or pending → denied. "expired" is computed when read
-- (a pending request past expires_at, an approval past approved_until and unused); a sweep may also
-- store it. Times are written by the desk (its clock), not by now(), so tests can freeze it.
-- Idempotent: safe to run twice.

CREATE TABLE IF NOT EXISTS approvals (
  id                  text PRIMARY KEY CHECK (id ~ '^apr_[A-Za-z0-9_-]{22}$'),
  -- insertion order (requests of one binding are created under a lock, so this is their order)
  seq                 bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
  state               text NOT NULL CHECK (state IN ('pending', 'approved', 'denied', 'expired', 'used')),
  -- revocation id (hex) of the requesting token's last block: the binding
  revocation_id       text NOT NULL,
  -- every revocation id of the requesting chain, root first: one revoked voids the request
  revocation_ids      text[] NOT NULL,
  statement_hash      text NOT NULL CHECK (statement_hash ~ '^[0-9a-f]{64}$'),
  upstream            text NOT NULL,
  -- the exact statement, shown to approvers (they must see what they approve)
  statement           text NOT NULL CHECK (char_length(statement) <= 100000),
  normalized          text NOT NULL,
  accesses            jsonb NOT NULL,
  rules               text[] NOT NULL,
  -- the requesting chain as the audit records it
  lineage             jsonb NOT NULL,
  token_id            text,
  created_at          timestamptz NOT NULL,
  -- when a pending request expires; a denial binds its statement until then too
  expires_at          timestamptz NOT NULL,
  decided_at          timestamptz,
  -- the approver's subject and token lineage
  decided_by          text,
  decided_by_lineage  jsonb,
  reason              text,
  -- an approval may be used (once) until then
  approved_until      timestamptz,
  used_at             timestamptz,
  CHECK (state IN ('pending', 'expired') OR (decided_at IS NOT NULL AND decided_by IS NOT NULL)),
  CHECK (state NOT IN ('approved', 'used') OR approved_until IS NOT NULL),
  CHECK (state <> 'used' OR used_at IS NOT NULL),
  CHECK (state <> 'denied' OR (reason IS NOT NULL AND reason <> ''))
);

-- admit: the latest request (and any usable approval) for one binding
CREATE INDEX IF NOT EXISTS approvals_binding ON approvals (revocation_id, statement_hash, seq DESC);
-- GET /v1/approvals?state=…, newest first
CREATE INDEX IF NOT EXISTS approvals_state ON approvals (state, seq DESC);
