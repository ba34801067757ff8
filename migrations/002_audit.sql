-- Audit trail (see docs/audit.md). Two append-only, hash-chained tables:
--   audit_events   one row per decision, committed BEFORE the statement/request runs;
--   audit_outcomes one row per outcome recorded AFTER execution, keyed by event_id
--                  (event rows are immutable, so the outcome cannot be an UPDATE).
-- Both draw `seq` from one sequence, so a seq names one row across the whole trail. The writer
-- assigns seq explicitly, in chain order, under a per-chain advisory lock.
-- Idempotent: safe to run twice.

CREATE SEQUENCE IF NOT EXISTS audit_seq AS bigint;

-- Every agent and delegate name in a lineage (for the `delegate` filter).
CREATE OR REPLACE FUNCTION audit_lineage_delegates(lineage jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(DISTINCT v.name ORDER BY v.name), '{}')
  FROM jsonb_array_elements(lineage) AS link,
       LATERAL (VALUES (link->>'agent'), (link->>'delegatedTo')) AS v(name)
  WHERE v.name IS NOT NULL
$$;

-- Every resource an event touched: `resource` plus each `accesses[].resource`.
CREATE OR REPLACE FUNCTION audit_touched_resources(resource text, accesses jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT coalesce(array_agg(DISTINCT s.r ORDER BY s.r), '{}')
  FROM (SELECT resource AS r
        UNION ALL
        SELECT a->>'resource' FROM jsonb_array_elements(coalesce(accesses, '[]'::jsonb)) AS a) AS s
  WHERE s.r IS NOT NULL
$$;

CREATE TABLE IF NOT EXISTS audit_events (
  seq          bigint PRIMARY KEY,
  id           uuid NOT NULL UNIQUE,
  time         timestamptz NOT NULL,
  source       text NOT NULL CHECK (source IN ('broker', 'proxy-pg', 'proxy-http')),
  action       text NOT NULL,
  decision     text NOT NULL CHECK (decision IN ('allow', 'deny')),
  reason       text,
  lineage      jsonb NOT NULL,
  token_id     text,
  resource     text,
  operation    text,
  accesses     jsonb,
  fingerprint  text,
  normalized   text,
  outcome      jsonb,             -- only when known at append time (broker events, denials)
  duration_ms  numeric,           -- numeric, not float8: exact round trip of the hashed JS number
  prev_hash    text NOT NULL,
  hash         text NOT NULL,
  -- Derived, never hashed, never writable: generated from hashed columns.
  subject      text GENERATED ALWAYS AS (lineage->0->>'subject') STORED,
  delegates    text[] GENERATED ALWAYS AS (audit_lineage_delegates(lineage)) STORED,
  resources    text[] GENERATED ALWAYS AS (audit_touched_resources(resource, accesses)) STORED
);
CREATE INDEX IF NOT EXISTS audit_events_subject ON audit_events (subject, seq);
CREATE INDEX IF NOT EXISTS audit_events_token ON audit_events (token_id, seq);
CREATE INDEX IF NOT EXISTS audit_events_decision ON audit_events (decision, seq);
CREATE INDEX IF NOT EXISTS audit_events_time ON audit_events (time);
CREATE INDEX IF NOT EXISTS audit_events_delegates ON audit_events USING gin (delegates);
CREATE INDEX IF NOT EXISTS audit_events_resources ON audit_events USING gin (resources);

CREATE TABLE IF NOT EXISTS audit_outcomes (
  seq          bigint PRIMARY KEY,
  id           uuid NOT NULL UNIQUE,
  event_id     uuid NOT NULL,     -- no FK: a bad reference must not poison a group-commit batch
  time         timestamptz NOT NULL,
  outcome      jsonb NOT NULL,
  duration_ms  numeric,
  prev_hash    text NOT NULL,
  hash         text NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_outcomes_event ON audit_outcomes (event_id, seq);

-- Append-only: refuse UPDATE, DELETE and TRUNCATE for every role, the owner included. ENABLE ALWAYS
-- keeps the trigger firing under session_replication_role = replica; only ALTER TABLE … DISABLE
-- TRIGGER (owner or superuser) bypasses it, and the hash chain makes that detectable.
CREATE OR REPLACE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'audit trail is append-only: % on % refused', TG_OP, TG_TABLE_NAME
    USING ERRCODE = 'insufficient_privilege';
END
$$;

DROP TRIGGER IF EXISTS audit_events_append_only ON audit_events;
CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_events
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_events ENABLE ALWAYS TRIGGER audit_events_append_only;

DROP TRIGGER IF EXISTS audit_outcomes_append_only ON audit_outcomes;
CREATE TRIGGER audit_outcomes_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_outcomes
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_outcomes ENABLE ALWAYS TRIGGER audit_outcomes_append_only;

REVOKE UPDATE, DELETE, TRUNCATE ON audit_events, audit_outcomes FROM PUBLIC;
