-- Live proxy sessions (issue 16, the console's "live sessions"): each proxy process publishes its open
-- sessions here and refreshes `heartbeat_at` every few seconds; a row whose heartbeat is older than
-- the reader's bound belongs to a proxy that died and is ignored (and pruned). Observability only:
-- nothing is enforced from this table. No token, no SQL text.
CREATE TABLE IF NOT EXISTS proxy_sessions (
  id                text PRIMARY KEY,
  proxy             text NOT NULL,
  kind              text NOT NULL,
  upstream          text NOT NULL,
  remote            text NOT NULL,
  -- the session token's authority token id, and its last block's revocation id ("end session" revokes it)
  token_id          text,
  revocation_id     text NOT NULL,
  lineage           jsonb NOT NULL,
  started_at        timestamptz NOT NULL,
  last_activity_at  timestamptz NOT NULL,
  statements        integer NOT NULL DEFAULT 0,
  denied            integer NOT NULL DEFAULT 0,
  heartbeat_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS proxy_sessions_proxy ON proxy_sessions (proxy);
CREATE INDEX IF NOT EXISTS proxy_sessions_heartbeat ON proxy_sessions (heartbeat_at);
