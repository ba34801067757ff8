-- Audit trail, fast append (see docs/audit.md "Writing"). One SQL call, audit_append(), appends a
-- whole group-commit batch to a chain: take the chain lock, read the head, allocate seqs, hash,
-- insert. Called as a single autocommit statement that commits with synchronous_commit = on, so
-- lock + insert + commit + WAL flush cost the writer ONE round trip (it used to take four plus a
-- second transaction meant to wait for the flush).
--
-- The chain hash is computed here, in PostgreSQL, over the exact text the writer sends:
--
--   hash = hex(SHA-256(UTF-8(prev_hash || E'\n' || seq || E'\n' || content)))
--
-- where `content` is the canonical JSON (RFC 8785) of the entry without seq, prevHash and hash.
-- `src/audit/hash.ts` (chainHash) computes the identical value for verification; the columns are
-- derived from the same text, so what is stored is what was hashed. Rows written before this
-- migration keep their original hash (SHA-256 of the canonical JSON of the whole entry minus hash);
-- verification accepts either form per row (the two hash inputs cannot coincide: one starts with
-- '{', the other with 64 hex digits).
--
-- Idempotent: safe to run twice. 002 stays as it was (it may already be applied).

-- The generated query-helper columns of audit_events call these for every row inserted. As plain SQL
-- functions (002) they are planned again on every call, a third of an append's server time; the
-- same queries in PL/pgSQL keep their plans for the session. Same results, same signatures, so the
-- generated columns (and rows already stored) are unaffected.
CREATE OR REPLACE FUNCTION audit_lineage_delegates(lineage jsonb) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
BEGIN
  RETURN (SELECT coalesce(array_agg(DISTINCT v.name ORDER BY v.name), '{}')
          FROM jsonb_array_elements(lineage) AS link,
               LATERAL (VALUES (link->>'agent'), (link->>'delegatedTo')) AS v(name)
          WHERE v.name IS NOT NULL);
END
$$;

CREATE OR REPLACE FUNCTION audit_touched_resources(resource text, accesses jsonb) RETURNS text[]
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
  RETURN (SELECT coalesce(array_agg(DISTINCT s.r ORDER BY s.r), '{}')
          FROM (SELECT resource AS r
                UNION ALL
                SELECT a->>'resource' FROM jsonb_array_elements(coalesce(accesses, '[]'::jsonb)) AS a) AS s
          WHERE s.r IS NOT NULL);
END
$$;

-- Appends a batch to chain 1 (audit_events) or 2 (audit_outcomes). `contents` are the canonical
-- JSON of each entry without seq/prevHash/hash, in the order to chain them. Returns the previous
-- head (prevHash of the first entry) and each entry's seq and hash. Run it as its own autocommit
-- statement: its commit is the durable one. Errors roll the whole batch back.
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
  -- The head must be read by a LATER statement than the lock: under READ COMMITTED each statement
  -- of a volatile function takes a fresh snapshot, so that read sees every batch committed before
  -- the lock was granted. A REPEATABLE READ / SERIALIZABLE snapshot is older than the lock and
  -- would fork the chain: refuse it.
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'audit append needs READ COMMITTED, not %', current_setting('transaction_isolation')
      USING ERRCODE = 'invalid_transaction_state';
  END IF;
  -- A key the columns would not keep would be hashed but not stored, and the entry would never
  -- verify. Checked (like the JSON parse above) before the lock is taken.
  SELECT k INTO bad FROM unnest(docs) AS d, jsonb_object_keys(d) AS k WHERE k <> ALL (stored) LIMIT 1;
  IF bad IS NOT NULL THEN
    RAISE EXCEPTION 'audit entry has a field the table does not store: %', bad USING ERRCODE = 'invalid_parameter_value';
  END IF;

  -- Events (chain 1) gate execution (DESIGN.md rule 6): durable before the caller hears back, whatever
  -- the server or session default. Outcomes (chain 2) are recorded after execution and gate nothing:
  -- they commit asynchronously (flushed by the WAL writer within wal_writer_delay), so they do not add
  -- an fsync per statement; a crash can lose only the newest outcomes, leaving a shorter, still valid
  -- outcome chain. The lock (keys 'audi' = 0x61756469 and the chain) is held to the end of the
  -- transaction, so chain order is also WAL order.
  PERFORM set_config('synchronous_commit', CASE WHEN chain = 1 THEN 'on' ELSE 'off' END, true),
          set_config('lock_timeout', greatest(lock_timeout_ms, 1) || 'ms', true),
          pg_advisory_xact_lock(1635083369, chain);
  IF chain = 1 THEN
    first_prev := (SELECT e.hash FROM audit_events AS e ORDER BY e.seq DESC LIMIT 1);
  ELSE
    first_prev := (SELECT o.hash FROM audit_outcomes AS o ORDER BY o.seq DESC LIMIT 1);
  END IF;
  first_prev := coalesce(first_prev, repeat('0', 64));

  -- hash = hex(SHA-256(UTF-8(prev_hash || '\n' || seq || '\n' || content))), seqs in chain order.
  seqs := '{}';
  hashes := '{}';
  prev := first_prev;
  FOR i IN 1 .. coalesce(cardinality(contents), 0) LOOP
    seqs[i] := nextval('audit_seq');
    prev := encode(sha256(convert_to(prev || E'\n' || seqs[i] || E'\n' || contents[i], 'UTF8')), 'hex');
    hashes[i] := prev;
  END LOOP;

  -- The columns come from the very JSON that was hashed.
  IF chain = 1 THEN
    INSERT INTO audit_events (seq, id, time, source, action, decision, reason, lineage, token_id, resource,
                              operation, accesses, fingerprint, normalized, outcome, duration_ms, prev_hash, hash)
    SELECT t.seq, (d->>'id')::uuid, (d->>'time')::timestamptz, d->>'source', d->>'action', d->>'decision',
           d->>'reason', d->'lineage', d->>'tokenId', d->>'resource', d->>'operation', d->'accesses',
           d->>'fingerprint', d->>'normalized', d->'outcome', (d->'durationMs')::numeric,
           coalesce(hashes[t.n::integer - 1], first_prev), t.hash
    FROM unnest(docs, seqs, hashes) WITH ORDINALITY AS t(d, seq, hash, n);
  ELSE
    INSERT INTO audit_outcomes (seq, id, event_id, time, outcome, duration_ms, prev_hash, hash)
    SELECT t.seq, (d->>'id')::uuid, (d->>'eventId')::uuid, (d->>'time')::timestamptz, d->'outcome',
           (d->'durationMs')::numeric, coalesce(hashes[t.n::integer - 1], first_prev), t.hash
    FROM unnest(docs, seqs, hashes) WITH ORDINALITY AS t(d, seq, hash, n);
  END IF;
END
$$;
