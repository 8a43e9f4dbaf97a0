-- Issue 11 item 2 (written for it by its owner; edit freely until released, then never).

-- How each follower of the log (projections, relay, notify) is doing, for the
-- processes that do not run it: /readyz answers 503 naming a consumer that
-- fails on an event, or stays behind the head without moving, and
-- `ledger status` shows it (ledger/consumer_health.py).  One row per consumer,
-- upserted by the follower on its first position, on every change between
-- healthy and failing, and at most once a second while its position moves.
-- `error` is a message with quoted values removed: no personal data.
CREATE TABLE IF NOT EXISTS consumer_health (
  name          text PRIMARY KEY,
  position      bigint,
  moved_at      timestamptz NOT NULL DEFAULT now(),  -- when `position` last changed
  failures      integer NOT NULL DEFAULT 0,          -- consecutive failed attempts; 0: healthy
  failing_since timestamptz,
  failing_after bigint,                              -- the failing batch starts after this position
  failing_event bigint,                              -- the event it cannot apply, when the consumer names it
  event_type    text,
  error_class   text,
  error         text,
  updated_at    timestamptz NOT NULL DEFAULT now()
);
