-- The notify worker's own tables (workers/notify.py, docs/emails.md).
-- Applied at start-up under an advisory lock; every statement is idempotent.

-- Where the planner is in the notification log.  It is advanced in the same
-- transaction that plans the e-mails a fact implies (notify_outbox) and issues or
-- revokes access tokens, so a crash can neither lose a fact nor plan it twice.
CREATE TABLE IF NOT EXISTS notify_position (
  worker   text PRIMARY KEY,
  position bigint NOT NULL
);
INSERT INTO notify_position (worker, position) VALUES ('notify', 0) ON CONFLICT DO NOTHING;

-- Who to write to, as of the planner's position: R13 reschedule notices go to
-- every registration of the event that is still open at that point of the log.
CREATE TABLE IF NOT EXISTS notify_registrations (
  registration_id text PRIMARY KEY,
  event_id        text NOT NULL,
  organizer_id    text NOT NULL,
  is_open         boolean NOT NULL
);
CREATE INDEX IF NOT EXISTS notify_registrations_open_by_event
  ON notify_registrations (event_id) WHERE is_open;

-- One row per e-mail (per fact and recipient), the record of what was sent.
-- 'pending' until the SMTP server accepted it ('sent') or refused it for good
-- ('failed', also recorded as an EmailDeliveryFailed event on the registration).
-- The access token is never stored here: it is re-derived when the e-mail is
-- composed (ledger/access_tokens.py).
CREATE TABLE IF NOT EXISTS notify_outbox (
  seq              bigserial PRIMARY KEY,
  dedupe_key       text NOT NULL UNIQUE,   -- one e-mail per fact, e.g. confirmation:<registration>
  message_id       text NOT NULL UNIQUE,   -- the Message-ID header, derived from the trigger event id
  kind             text NOT NULL CONSTRAINT notify_outbox_kind_check
                   CHECK (kind IN ('confirmation', 'resend', 'reschedule', 'cancellation', 'rejection',
                                   'owed_back', 'refund')),
  registration_id  text NOT NULL,
  trigger_event_id text NOT NULL,
  trigger_position bigint NOT NULL,
  recipient        text NOT NULL,
  context          jsonb NOT NULL,         -- everything the templates need except the token
  composed_at      timestamptz NOT NULL,   -- the Date header: when the fact happened
  state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent', 'failed')),
  attempts         integer NOT NULL DEFAULT 0,
  next_attempt_at  timestamptz NOT NULL DEFAULT now(),
  first_failed_at  timestamptz,
  last_error       text,
  smtp_code        integer,
  created_at       timestamptz NOT NULL DEFAULT now(),
  sent_at          timestamptz
);
-- Kinds added after the first release (owed_back, refund: issue 12).  A table
-- created before keeps its old check until it is replaced here, once.
DO $kinds$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'notify_outbox_kind_check'
                 AND pg_get_constraintdef(oid) LIKE '%owed_back%') THEN
    ALTER TABLE notify_outbox DROP CONSTRAINT IF EXISTS notify_outbox_kind_check;
    ALTER TABLE notify_outbox ADD CONSTRAINT notify_outbox_kind_check
      CHECK (kind IN ('confirmation', 'resend', 'reschedule', 'cancellation', 'rejection', 'owed_back', 'refund'));
  END IF;
END $kinds$;
CREATE INDEX IF NOT EXISTS notify_outbox_pending
  ON notify_outbox (next_attempt_at, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS notify_outbox_pending_by_registration
  ON notify_outbox (registration_id, seq) WHERE state = 'pending';

-- Participants' access tokens (R10-R12): only a SHA-256 of the token is kept.
-- Checked by GET /v1/join/{token}; revoked on rejection, cancellation or a refund
-- that ends access (R19: a partial refund keeps it).
CREATE TABLE IF NOT EXISTS access_tokens (
  token_hash      text PRIMARY KEY,
  registration_id text NOT NULL,
  event_id        text NOT NULL,
  issued_at       timestamptz NOT NULL,
  revoked_at      timestamptz,
  revoked_reason  text
);
CREATE INDEX IF NOT EXISTS access_tokens_by_registration ON access_tokens (registration_id);
CREATE INDEX IF NOT EXISTS access_tokens_by_event ON access_tokens (event_id);
