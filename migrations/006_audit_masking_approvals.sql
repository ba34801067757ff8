-- Audit entries record what the proxy masked (columns and rules, never values) and which
-- just-in-time approval an entry requested, decided or used. Both are hashed fields of the entry
-- (writer.ts eventCodec / rows.ts): NULL for every entry written before this migration, so old
-- hashes are unchanged.
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS masking jsonb;
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS approval_id text;
-- "the whole story of an approval": request, decision and execution entries by id
CREATE INDEX IF NOT EXISTS audit_events_approval ON audit_events (approval_id, seq) WHERE approval_id IS NOT NULL;
