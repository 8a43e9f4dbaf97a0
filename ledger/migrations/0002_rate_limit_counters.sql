-- Moved here from ledger/schema.sql when the schema became versioned migrations
-- (written for issue 11 by its owner; edit freely until released, then never).

-- Per-client hit counters of the public operations' rate limits (issue 11 item 5),
-- shared by every API process: one fixed window per key (ledger/rate_limit_counters.py).
-- Rows whose window ended are purged in bounded batches.
CREATE TABLE IF NOT EXISTS rate_limit_counters (
  key        text PRIMARY KEY,
  hits       integer NOT NULL,
  expires_at timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS rate_limit_counters_expiry ON rate_limit_counters (expires_at);
