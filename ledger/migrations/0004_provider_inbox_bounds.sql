-- Moved here from ledger/providers/inbox.sql when the schema became versioned migrations
-- (written for issue 11 by its owner; edit freely until released, then never).

-- Issue 11 item 6: a flood of forged deliveries must not fill the database.
-- Every delivery is *counted* per connection and verification result; only
-- verified deliveries are kept whole (provider_inbox).  Of the others, the
-- most recent few are kept in a ring per connection and result: slot =
-- delivery number modulo inbox.REJECTED_SAMPLE, each body cut to
-- inbox.SAMPLE_BODY_BYTES with its real size in `body_size`.  A new one
-- overwrites its slot in place (an update of no indexed column: a HOT update,
-- pruned within its page), so the table keeps its size without waiting for VACUUM.
CREATE TABLE IF NOT EXISTS provider_delivery_counts (
  connection_id text NOT NULL,
  provider      text NOT NULL,
  verification  text NOT NULL,     -- as provider_inbox.verification
  deliveries    bigint NOT NULL DEFAULT 0,
  bytes         bigint NOT NULL DEFAULT 0,   -- body bytes received, stored or not
  first_at      timestamptz NOT NULL DEFAULT now(),
  last_at       timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (connection_id, verification)
);
CREATE TABLE IF NOT EXISTS provider_rejected_deliveries (
  connection_id text NOT NULL,
  verification  text NOT NULL,     -- invalid_signature | unverifiable | malformed
  slot          integer NOT NULL,
  provider      text NOT NULL,
  body_sha256   text NOT NULL,     -- of the whole body
  detail        text,
  headers       jsonb NOT NULL,    -- the signature/transport headers, each cut short
  body          bytea NOT NULL,    -- the first SAMPLE_BODY_BYTES
  body_size     integer NOT NULL,  -- the whole body's size
  received_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (connection_id, verification, slot)
) WITH (fillfactor = 50);
