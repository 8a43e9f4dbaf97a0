-- Moved here from ledger/schema.sql when the schema became versioned migrations
-- (written for issue 11 by its owner; edit freely until released, then never).

-- Page sign-in sessions (issue 11 item 8): the cookie names a session, only
-- its SHA-256 is kept; signing out revokes the row, so a copied cookie is
-- refused at once.  Expired rows are purged in bounded batches at sign-in.
CREATE TABLE IF NOT EXISTS page_sessions (
  session_hash text PRIMARY KEY,
  token_hash   text NOT NULL,
  created_at   timestamptz NOT NULL DEFAULT now(),
  expires_at   timestamptz NOT NULL,
  revoked_at   timestamptz
);
CREATE INDEX IF NOT EXISTS page_sessions_expiry ON page_sessions (expires_at);
