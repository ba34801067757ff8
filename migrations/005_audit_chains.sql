-- Audit trail, one chain per writer (see docs/audit.md "Chains"). Before this migration every append
-- of every process serialised on one advisory chain lock inside PostgreSQL (audit_append, 004). Now
-- each writer process registers chains of its own (audit_chains), hashes in Node and writes a whole
-- batch in one INSERT; nothing is shared on the hot path but the tables and the `seq` sequence.
--
--   chain hash (rows with chain_id) = hex(SHA-256(UTF-8(prev_hash || '\n' || chain_id || ':' || chain_seq
--                                      || '\n' || content)))
--   content = canonical JSON (RFC 8785) of the entry without seq, chainId, chainSeq, prevHash, hash and
--             lineage; the lineage is covered by `lineageHash` = hex(SHA-256(canonical JSON of the lineage)),
--             stored once per distinct lineage in audit_lineages.
--
-- `seq` stays a global ordering column (one sequence over events and outcomes, for queries and
-- cursors); it is not hashed for new rows (the writer does not know it before the insert). The chain
-- position is (chain_id, chain_seq), unique, so no two batches can ever claim the same link.
--
-- Rows written before this migration (chain_id NULL) are the legacy chain: one global chain per
-- table in seq order, verified as before. audit_append (004) is redefined to keep appending to that
-- legacy chain only, so a process still running the old code during a rolling upgrade neither forks
-- nor breaks it.
--
-- Chain heads are anchored by signed checkpoints (audit_checkpoints): Ed25519 signatures by the
-- chain's anchor key over (chain_id, chain_seq, hash, signed_at). Verification checks each
-- checkpoint is in its chain and that the chain reaches the newest one: deleting the newest rows of
-- a chain is detected.
--
-- Idempotent: safe to run twice.

-- Chains. 1 and 2 name the legacy chains (audit_append's chain numbers); new chains start at 3.
CREATE SEQUENCE IF NOT EXISTS audit_chain_id AS bigint START 3;
CREATE TABLE IF NOT EXISTS audit_chains (
  chain_id     bigint PRIMARY KEY,
  kind         text NOT NULL CHECK (kind IN ('events', 'outcomes')),
  created_at   timestamptz NOT NULL DEFAULT now(),
  description  text NOT NULL,        -- what wrote it (program, role), for people reading verify output
  host         text,
  pid          integer,
  anchor_key   text                  -- Ed25519 public key (64 hex digits) signing this chain's checkpoints; NULL: legacy
);
INSERT INTO audit_chains (chain_id, kind, description)
VALUES (1, 'events', 'legacy event chain (rows written before migration 005, and by audit_append)'),
       (2, 'outcomes', 'legacy outcome chain (rows written before migration 005, and by audit_append)')
ON CONFLICT (chain_id) DO NOTHING;

-- Lineages, stored once each, content-addressed: hash = hex(SHA-256(UTF-8(canonical JSON of lineage))).
-- The query helpers that used to be generated per event row are generated here, once per lineage.
CREATE TABLE IF NOT EXISTS audit_lineages (
  hash       text PRIMARY KEY,
  lineage    jsonb NOT NULL,
  subject    text GENERATED ALWAYS AS (lineage->0->>'subject') STORED,
  delegates  text[] GENERATED ALWAYS AS (audit_lineage_delegates(lineage)) STORED
);
CREATE INDEX IF NOT EXISTS audit_lineages_subject ON audit_lineages (subject);
CREATE INDEX IF NOT EXISTS audit_lineages_delegates ON audit_lineages USING gin (delegates);

-- Events and outcomes: chain position and lineage reference. New rows have chain_id, chain_seq and
-- lineage_hash and no inline lineage; legacy rows the other way round.
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS chain_id bigint;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS chain_seq bigint;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS lineage_hash text;
ALTER TABLE audit_events ALTER COLUMN lineage DROP NOT NULL;
ALTER TABLE audit_events ALTER COLUMN seq SET DEFAULT nextval('audit_seq');
ALTER TABLE audit_outcomes ADD COLUMN IF NOT EXISTS chain_id bigint;
ALTER TABLE audit_outcomes ADD COLUMN IF NOT EXISTS chain_seq bigint;
ALTER TABLE audit_outcomes ALTER COLUMN seq SET DEFAULT nextval('audit_seq');

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'audit_events_chain_shape') THEN
    ALTER TABLE audit_events ADD CONSTRAINT audit_events_chain_shape CHECK (
      CASE WHEN chain_id IS NULL THEN chain_seq IS NULL AND lineage IS NOT NULL AND lineage_hash IS NULL
           ELSE chain_seq IS NOT NULL AND lineage IS NULL AND lineage_hash IS NOT NULL END);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'audit_outcomes_chain_shape') THEN
    ALTER TABLE audit_outcomes ADD CONSTRAINT audit_outcomes_chain_shape CHECK ((chain_id IS NULL) = (chain_seq IS NULL));
  END IF;
END
$$;

-- resources (the primary resource and every access, for the resource filter) was a generated column
-- computed by a PL/pgSQL function for every row — a third of an insert's server time. The writer now
-- fills it from the very fields it hashes, and verification recomputes and compares it, so a changed
-- value is still detected. Rows already stored keep their values.
ALTER TABLE audit_events ALTER COLUMN resources DROP EXPRESSION IF EXISTS;

-- (chain_id, chain_seq) is the link: unique, so two batches can never both extend the same head.
CREATE UNIQUE INDEX IF NOT EXISTS audit_events_chain ON audit_events (chain_id, chain_seq);
CREATE UNIQUE INDEX IF NOT EXISTS audit_outcomes_chain ON audit_outcomes (chain_id, chain_seq);
CREATE INDEX IF NOT EXISTS audit_events_lineage ON audit_events (lineage_hash, seq);
-- The legacy chain in seq order (its head for audit_append, its walk for verification).
CREATE INDEX IF NOT EXISTS audit_events_legacy ON audit_events (seq) WHERE chain_id IS NULL;
CREATE INDEX IF NOT EXISTS audit_outcomes_legacy ON audit_outcomes (seq) WHERE chain_id IS NULL;
-- subject and delegates are only set on legacy rows now (new rows find them through audit_lineages):
-- index the legacy rows only, so new rows do not pay for two indexes of NULLs.
CREATE INDEX IF NOT EXISTS audit_events_subject_legacy ON audit_events (subject, seq) WHERE chain_id IS NULL;
CREATE INDEX IF NOT EXISTS audit_events_delegates_legacy ON audit_events USING gin (delegates) WHERE chain_id IS NULL;
DROP INDEX IF EXISTS audit_events_subject;
DROP INDEX IF EXISTS audit_events_delegates;
-- decision: only the (rare) denials need an index; `allow` pages come from the seq index itself.
CREATE INDEX IF NOT EXISTS audit_events_denied ON audit_events (seq) WHERE decision = 'deny';
DROP INDEX IF EXISTS audit_events_decision;

-- Signed chain-head checkpoints, apart from the rows. signature = Ed25519 (hex) by the chain's
-- anchor key over UTF-8('baton-audit-checkpoint/v1\n' || chain_id || '\n' || chain_seq || '\n' ||
-- hash || '\n' || signed_at), signed_at as the writer's toISOString().
CREATE TABLE IF NOT EXISTS audit_checkpoints (
  chain_id     bigint NOT NULL,
  chain_seq    bigint NOT NULL,
  hash         text NOT NULL,
  signed_at    text NOT NULL,
  signature    text NOT NULL,
  recorded_at  timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (chain_id, chain_seq)
);

-- Append-only, like the rows: UPDATE, DELETE and TRUNCATE refused for every role (ENABLE ALWAYS).
DROP TRIGGER IF EXISTS audit_chains_append_only ON audit_chains;
CREATE TRIGGER audit_chains_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_chains
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_chains ENABLE ALWAYS TRIGGER audit_chains_append_only;
DROP TRIGGER IF EXISTS audit_lineages_append_only ON audit_lineages;
CREATE TRIGGER audit_lineages_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_lineages
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_lineages ENABLE ALWAYS TRIGGER audit_lineages_append_only;
DROP TRIGGER IF EXISTS audit_checkpoints_append_only ON audit_checkpoints;
CREATE TRIGGER audit_checkpoints_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON audit_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change();
ALTER TABLE audit_checkpoints ENABLE ALWAYS TRIGGER audit_checkpoints_append_only;
REVOKE UPDATE, DELETE, TRUNCATE ON audit_chains, audit_lineages, audit_checkpoints FROM PUBLIC;

-- audit_append (004) now extends only the legacy chains (rows without chain_id): same contract,
-- same hash form, head read among legacy rows. Kept for processes still running the old writer.
CREATE OR REPLACE FUNCTION audit_append(chain integer, contents text[], lock_timeout_ms integer,
                                        OUT first_prev text, OUT seqs bigint[], OUT hashes text[])
LANGUAGE plpgsql AS $$
DECLARE
  docs jsonb[] := ARRAY(SELECT c::jsonb FROM unnest(contents) WITH ORDINALITY AS t(c, n) ORDER BY n);
  stored text[] := CASE chain
    WHEN 1 THEN ARRAY['id', 'time', 'source', 'action', 'decision', 'reason', 'lineage', 'tokenId', 'resource',
                      'operation', 'accesses', 'fingerprint', 'normalized', 'outcome', 'durationMs']
    WHEN 2 THEN ARRAY['id', 'eventId', 'time', 'outcome', 'durationMs'] END;
  bad text;
  prev text;
BEGIN
  IF stored IS NULL THEN
    RAISE EXCEPTION 'audit chain % does not exist', chain USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'audit append needs READ COMMITTED, not %', current_setting('transaction_isolation')
      USING ERRCODE = 'invalid_transaction_state';
  END IF;
  SELECT k INTO bad FROM unnest(docs) AS d, jsonb_object_keys(d) AS k WHERE k <> ALL (stored) LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'audit entry has a field the table does not store: %', bad USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM set_config('synchronous_commit', CASE WHEN chain = 1 THEN 'on' ELSE 'off' END, true),
          set_config('lock_timeout', greatest(lock_timeout_ms, 1) || 'ms', true),
          pg_advisory_xact_lock(1635083369, chain);
  IF chain = 1 THEN
    first_prev := (SELECT e.hash FROM audit_events AS e WHERE e.chain_id IS NULL ORDER BY e.seq DESC LIMIT 1);
  ELSE
    first_prev := (SELECT o.hash FROM audit_outcomes AS o WHERE o.chain_id IS NULL ORDER BY o.seq DESC LIMIT 1);
  END IF;
  first_prev := coalesce(first_prev, repeat('0', 64));
  seqs := '{}';
  hashes := '{}';
  prev := first_prev;
  FOR i IN 1 .. coalesce(cardinality(contents), 0) LOOP
    seqs[i] := nextval('audit_seq');
    prev := encode(sha256(convert_to(prev || E'\n' || seqs[i] || E'\n' || contents[i], 'UTF8')), 'hex');
    hashes[i] := prev;
  END LOOP;
  IF chain = 1 THEN
    INSERT INTO audit_events (seq, id, time, source, action, decision, reason, lineage, token_id, resource,
                              operation, accesses, fingerprint, normalized, outcome, duration_ms, prev_hash, hash, resources)
    SELECT t.seq, (d->>'id')::uuid, (d->>'time')::timestamptz, d->>'source', d->>'action', d->>'decision',
           d->>'reason', d->'lineage', d->>'tokenId', d->>'resource', d->>'operation', d->'accesses',
           d->>'fingerprint', d->>'normalized', d->'outcome', (d->'durationMs')::numeric,
           coalesce(hashes[t.n::integer - 1], first_prev), t.hash, audit_touched_resources(d->>'resource', d->'accesses')
    FROM unnest(docs, seqs, hashes) WITH ORDINALITY AS t(d, seq, hash, n);
  ELSE
    INSERT INTO audit_outcomes (seq, id, event_id, time, outcome, duration_ms, prev_hash, hash)
    SELECT t.seq, (d->>'id')::uuid, (d->>'eventId')::uuid, (d->>'time')::timestamptz, d->'outcome',
           (d->'durationMs')::numeric, coalesce(hashes[t.n::integer - 1], first_prev), t.hash
    FROM unnest(docs, seqs, hashes) WITH ORDINALITY AS t(d, seq, hash, n);
  END IF;
END
$$;
