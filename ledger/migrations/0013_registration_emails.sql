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
