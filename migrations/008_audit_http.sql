-- Entries of the HTTP proxy (source proxy-http) record the request they decided: method, the
-- normalised path with query values redacted, and the MCP method and tool or the Kubernetes verb.
-- A hashed field of the entry (writer.ts eventCodec / rows.ts): NULL for every entry written before
-- this migration and for every other source, so old hashes are unchanged.
ALTER TABLE audit_events ADD COLUMN IF NOT EXISTS http jsonb;
