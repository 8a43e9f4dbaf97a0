-- The project's own tables beside the event store (created by `eventsourcing`).
-- Applied at start-up under an advisory lock; every statement is idempotent.

-- Append-only event store: nothing is updated or deleted in place.
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the event store is append-only: % refused', TG_OP;
END $$;
DROP TRIGGER IF EXISTS ledger_events_append_only ON ledger_events;
CREATE TRIGGER ledger_events_append_only BEFORE UPDATE OR DELETE ON ledger_events
  FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
DROP TRIGGER IF EXISTS ledger_events_no_truncate ON ledger_events;
CREATE TRIGGER ledger_events_no_truncate BEFORE TRUNCATE ON ledger_events
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Bearer tokens: only a SHA-256 of the token is kept.
CREATE TABLE IF NOT EXISTS api_tokens (
  token_hash   text PRIMARY KEY,
  role         text NOT NULL CHECK (role IN ('admin', 'finance', 'organizer')),
  organizer_id text,
  label        text,
  created_at   timestamptz NOT NULL DEFAULT now(),
  revoked_at   timestamptz
);

-- Idempotency-Key: the first response, replayed byte for byte for 24 h.
CREATE TABLE IF NOT EXISTS idempotency_keys (
  credential   text NOT NULL,
  key          text NOT NULL,
  request_hash text NOT NULL,
  state        text NOT NULL CHECK (state IN ('in_progress', 'done')),
  status       integer,
  headers      jsonb,
  body         bytea,
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (credential, key)
);

-- Provider credentials, encrypted (AES-256-GCM with LEDGER_SECRET_KEY); never in events.
CREATE TABLE IF NOT EXISTS provider_secrets (
  connection_id text PRIMARY KEY,
  organizer_id  text NOT NULL,
  ciphertext    bytea NOT NULL,
  created_at    timestamptz NOT NULL DEFAULT now()
);
