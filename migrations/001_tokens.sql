-- Every Baton token the broker issued. Never the token itself: ids, who, what, until when.
CREATE TABLE IF NOT EXISTS issued_tokens (
  token_id       text PRIMARY KEY,
  revocation_id  text NOT NULL UNIQUE,
  subject        text NOT NULL,
  issuer         text NOT NULL,
  agent          text NOT NULL,
  rights         jsonb NOT NULL,
  roles          text[] NOT NULL DEFAULT '{}',
  root_key_id    integer NOT NULL,
  issued_at      timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS issued_tokens_subject ON issued_tokens (subject);
CREATE INDEX IF NOT EXISTS issued_tokens_expires ON issued_tokens (expires_at);
