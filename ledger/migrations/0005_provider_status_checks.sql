-- Moved here from ledger/providers/inbox.sql when the schema became versioned migrations
-- (written for issue 11 by its owner; edit freely until released, then never).

-- Issue 11 item 7: how often the provider was asked about a checkout
-- ("<registration id>:<reference>") on behalf of a participant's return page
-- in the current window: at most a few calls per checkout per minute, whatever
-- the number of API processes or page reloads.  Rows whose window ended a day
-- ago are purged in bounded batches as new ones are claimed
-- (ledger/providers/inbox.py).
CREATE TABLE IF NOT EXISTS provider_status_checks (
  checkout    text PRIMARY KEY,
  calls       integer NOT NULL,
  window_ends timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS provider_status_checks_age ON provider_status_checks (window_ends);
