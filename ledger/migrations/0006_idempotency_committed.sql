-- Issue 11, item 3: an Idempotency-Key's outcome is recorded in the same
-- transaction as its command's events, so a retry after a crash answers from
-- what was committed instead of running the command again.
-- committed: {"<command>:<aggregate id>": <version after the change>, …}, or
-- {"token_hash": …} for POST /v1/tokens (one live token per key).
-- Expand-only: older code ignores the column.
ALTER TABLE idempotency_keys ADD COLUMN IF NOT EXISTS committed jsonb;
