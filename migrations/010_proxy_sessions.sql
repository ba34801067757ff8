-- Live proxy sessions (issue 16, the console's "live sessions"): each proxy process publishes its open
-- sessions here and refreshes its own row in proxy_heartbeats every few seconds; sessions of a proxy
-- whose heartbeat is older than the reader's bound belong to a proxy that died and are ignored (and
-- pruned). One heartbeat row per proxy, not per session: 10,000 idle pooled sessions cost no writes.
-- Observability only: nothing is enforced from these tables. No token, no SQL text.
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
  denied            integer NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS proxy_sessions_proxy ON proxy_sessions (proxy);

CREATE TABLE IF NOT EXISTS proxy_heartbeats (
  proxy         text PRIMARY KEY,
  heartbeat_at  timestamptz NOT NULL DEFAULT now()
);
