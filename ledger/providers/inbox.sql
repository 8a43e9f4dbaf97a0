-- What payment providers told us, and the checkouts we opened with them (issue 5).
-- Applied at start-up under the schema advisory lock; every statement is idempotent.
-- These are working tables, not the ledger: the facts they lead to are events.

-- Every webhook delivery, verified or not, kept raw for audit and replay.
-- An identical body delivered again (provider retries) bumps `deliveries`
-- instead of adding a row, so a retry storm or a flood of forged requests
-- cannot grow the table without bound per distinct body.
CREATE TABLE IF NOT EXISTS provider_inbox (
  id                 bigserial PRIMARY KEY,
  provider           text NOT NULL,
  connection_id      text NOT NULL,
  body_sha256        text NOT NULL,
  -- verified | invalid_signature | unverifiable (provider down) | malformed
  verification       text NOT NULL,
  detail             text,
  headers            jsonb NOT NULL,   -- only the signature/transport headers
  body               bytea NOT NULL,   -- the exact bytes received
  provider_event_ids text[] NOT NULL DEFAULT '{}',
  deliveries         integer NOT NULL DEFAULT 1,
  received_at        timestamptz NOT NULL DEFAULT now(),
  last_received_at   timestamptz NOT NULL DEFAULT now(),
  processed_at       timestamptz,
  UNIQUE (connection_id, body_sha256, verification)
);

-- One row per provider *fact* (``Notification.provider_event_id``), whichever
-- route told us first: webhook, the participant's return, the reconciler or
-- PayPal's capture answer.  The primary key is the de-duplication; a fact is
-- applied to the ledger until `processed_at` is set.  The connection is part
-- of the key so that a delivery through *another* organizer's endpoint (which
-- the ledger refuses to apply) can never pre-empt the real one.  A fact that cannot apply
-- yet (a refund seen before its payment) stays unprocessed with outcome
-- 'deferred' and is retried after the next payment and by the reconciler.
CREATE TABLE IF NOT EXISTS provider_facts (
  provider          text NOT NULL,
  provider_event_id text NOT NULL,
  connection_id     text NOT NULL,
  source            text NOT NULL,
  inbox_id          bigint REFERENCES provider_inbox (id),
  kind              text NOT NULL,
  registration_id   text,
  reference         text NOT NULL,
  amount_minor      bigint,
  currency          text,
  raw_type          text NOT NULL,
  received_at       timestamptz NOT NULL DEFAULT now(),
  attempts          integer NOT NULL DEFAULT 0,
  outcome           text,
  processed_at      timestamptz,
  PRIMARY KEY (provider, connection_id, provider_event_id)
);
CREATE INDEX IF NOT EXISTS provider_facts_unprocessed
  ON provider_facts (registration_id) WHERE processed_at IS NULL;

-- The checkout opened at the provider for each registration, written as soon
-- as the provider answers and *before* CheckoutStarted is recorded: a crash in
-- between is recovered from here without a second provider call, and the
-- reconciler polls every checkout here until it is settled.
CREATE TABLE IF NOT EXISTS provider_checkouts (
  registration_id text PRIMARY KEY,
  provider        text NOT NULL,
  connection_id   text NOT NULL,
  organizer_id    text NOT NULL,
  reference       text NOT NULL,
  url             text NOT NULL,      -- '' when PayU's link was lost
  created_at      timestamptz NOT NULL DEFAULT now(),
  next_poll_at    timestamptz,        -- NULL: created_at + the reconciler's first delay
  polls           integer NOT NULL DEFAULT 0,
  settled_at      timestamptz,        -- paid, expired or failed for good: stop polling
  settled_as      text
);
CREATE INDEX IF NOT EXISTS provider_checkouts_by_reference
  ON provider_checkouts (provider, reference);
CREATE INDEX IF NOT EXISTS provider_checkouts_open
  ON provider_checkouts (created_at) WHERE settled_at IS NULL;
