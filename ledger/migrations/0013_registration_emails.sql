-- Issue 13 item 10: one registration per e-mail address and event.
--
-- A row claims (event, e-mail) for the registration that first used the
-- address; it is inserted in the same transaction as that registration's
-- events (ledger/registration_emails.py), so two concurrent registrations
-- with the same address cannot both commit: the second violates the primary
-- key, its command is retried and finds the first.  `email_digest` is an
-- HMAC-SHA-256 of the normalized address (trimmed, lower case) under a key
-- derived from LEDGER_SECRET_KEY: the address itself is never stored here,
-- and the digest cannot be reversed or recomputed without the key.  Erasing a
-- participant's personal data (R24) deletes their rows.
CREATE TABLE IF NOT EXISTS registration_emails (
  event_id        uuid  NOT NULL,
  email_digest    bytea NOT NULL CHECK (octet_length(email_digest) = 32),
  registration_id uuid  NOT NULL UNIQUE,
  PRIMARY KEY (event_id, email_digest)
);

-- Issue 13 item 1 (R1): a checkout of a connection that receives no webhooks
-- (a Stripe key alone) is polled at this steady interval from its creation,
-- without backoff, so its payment is booked within a bounded delay
-- (LEDGER_POLL_WITHOUT_WEBHOOK_SECONDS); NULL: the webhook is the normal path
-- and the reconciler's first delay and backoff apply.
ALTER TABLE provider_checkouts ADD COLUMN IF NOT EXISTS steady_poll_seconds integer
  CHECK (steady_poll_seconds IS NULL OR steady_poll_seconds > 0);
