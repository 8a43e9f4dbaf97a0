-- Migration 1: the schema of the first release, as one versioned step.
--
-- Written so that it also applies to a database the first release created (it
-- ran these same statements on every start): everything is IF NOT EXISTS,
-- CREATE OR REPLACE, or guarded by a catalog check, and nothing takes a lock on
-- an existing table that it does not need.  From here on, a schema change is a
-- new file (0002_…): this one is never edited (its checksum is recorded).

-- == The event store (the `eventsourcing` library's tables) =====================
-- The statements its PostgreSQL recorders run with CREATE_TABLE=true (version
-- 9.5.6, tables `ledger_events` and `ledger_snapshots`, originator ids of type
-- uuid); the library no longer creates them on start-up.
CREATE TABLE IF NOT EXISTS "public"."ledger_events" (
  originator_id "uuid" NOT NULL,
  originator_version bigint NOT NULL,
  topic text,
  state bytea,
  notification_id bigserial,
  PRIMARY KEY (originator_id, originator_version)
) WITH (
  autovacuum_enabled = true,
  autovacuum_vacuum_threshold = 100000000,
  autovacuum_vacuum_scale_factor = 0.5,
  autovacuum_analyze_threshold = 1000,
  autovacuum_analyze_scale_factor = 0.01
);
DO $type$
BEGIN
  IF to_regtype('public.stored_event_uuid') IS NULL THEN
    CREATE TYPE "public"."stored_event_uuid"
      AS (originator_id "uuid", originator_version bigint, topic text, state bytea);
  END IF;
END $type$;
DO $idx$
BEGIN
  IF to_regclass('public.ledger_events_notification_id_idx') IS NULL THEN
    CREATE UNIQUE INDEX "ledger_events_notification_id_idx" ON "public"."ledger_events" (notification_id ASC);
  END IF;
END $idx$;
CREATE OR REPLACE FUNCTION "public"."es_insert_events_uuid"(events "public"."stored_event_uuid"[])
RETURNS SETOF bigint LANGUAGE plpgsql AS
$BODY$BEGIN    SET LOCAL lock_timeout = '10s';    NOTIFY "ledger_events";    RETURN QUERY    INSERT INTO "public"."ledger_events" AS t (    originator_id, originator_version, topic, state)    SELECT originator_id, originator_version, topic, state    FROM unnest(events)    RETURNING notification_id;END;$BODY$;
CREATE TABLE IF NOT EXISTS "public"."ledger_snapshots" (
  originator_id "uuid" NOT NULL,
  originator_version bigint NOT NULL,
  topic text,
  state bytea,
  PRIMARY KEY (originator_id, originator_version)
) WITH (
  autovacuum_enabled = true,
  autovacuum_vacuum_threshold = 100000000,
  autovacuum_vacuum_scale_factor = 0.5,
  autovacuum_analyze_threshold = 1000,
  autovacuum_analyze_scale_factor = 0.01
);

-- == The ledger's own tables (first release: ledger/schema.sql) =================

-- Append-only event store: nothing is updated or deleted in place.
CREATE OR REPLACE FUNCTION ledger_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the event store is append-only: % refused', TG_OP;
END $$;
-- Created only when missing: CREATE TRIGGER takes a lock on ledger_events that
-- every reader and writer of the log would queue behind.
DO $trg$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.ledger_events'::regclass
                 AND tgname = 'ledger_events_append_only') THEN
    CREATE TRIGGER ledger_events_append_only BEFORE UPDATE OR DELETE ON ledger_events
      FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgrelid = 'public.ledger_events'::regclass
                 AND tgname = 'ledger_events_no_truncate') THEN
    CREATE TRIGGER ledger_events_no_truncate BEFORE TRUNCATE ON ledger_events
      FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
  END IF;
END $trg$;

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

-- == Read models (first release: projections/schema.sql) ====================
-- Read models ("who paid", fee reports) built from the notification log.
--
-- Generations: each full build of the views lives in a schema of its own
-- (projections_g1, projections_g2 …).  The API reads the stable views in the
-- `projections` schema, which point at the one *active* generation; a rebuild
-- fills a *building* generation from position 0 while the active one keeps
-- serving, then re-points the views in one transaction (see projections/rebuild.py).
-- A generation's tracking position lives in its row here and is updated in the
-- same transaction as its tables (see projections/batch.py).

CREATE SCHEMA IF NOT EXISTS projections;

CREATE TABLE IF NOT EXISTS projections.generations (
  generation   integer PRIMARY KEY,
  schema_name  text NOT NULL UNIQUE,
  layout       integer NOT NULL,
  state        text NOT NULL CHECK (state IN ('building', 'active', 'retired', 'dropped')),
  position     bigint NOT NULL DEFAULT 0,   -- last notification applied (tracking)
  target       bigint NOT NULL DEFAULT 0,   -- head when a rebuild started (progress)
  created_at   timestamptz NOT NULL DEFAULT now(),
  activated_at timestamptz,
  updated_at   timestamptz NOT NULL DEFAULT now()
);
-- At most one active and one building generation.  Created only when missing:
-- CREATE INDEX IF NOT EXISTS would still take a share lock on an existing
-- table and wait for the runner's batch in flight.
DO $idx$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = 'projections'
                 AND indexname = 'generations_one_active') THEN
    CREATE UNIQUE INDEX generations_one_active ON projections.generations ((true)) WHERE state = 'active';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_indexes WHERE schemaname = 'projections'
                 AND indexname = 'generations_one_building') THEN
    CREATE UNIQUE INDEX generations_one_building ON projections.generations ((true)) WHERE state = 'building';
  END IF;
END $idx$;

-- The tables of one generation.  LAYOUT in projections/generations.py names
-- this shape: change both together (a layout change makes the runner rebuild).
CREATE OR REPLACE FUNCTION projections.create_generation_tables(s text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  EXECUTE format('CREATE SCHEMA IF NOT EXISTS %I', s);

  -- R14: one row per registration, its derived status and money.
  EXECUTE format($ddl$
    CREATE TABLE IF NOT EXISTS %I.who_paid (
      registration_id      uuid PRIMARY KEY,
      seq                  bigint NOT NULL,   -- position of ParticipantRegistered: list order
      event_id             uuid NOT NULL,
      organizer_id         text NOT NULL,
      name                 text NOT NULL,
      email                text NOT NULL,
      currency             text NOT NULL,
      price_minor          bigint NOT NULL,
      provider             text NOT NULL,
      provider_reference   text,
      status               text NOT NULL,
      paid_minor           bigint NOT NULL DEFAULT 0,
      refunded_minor       bigint NOT NULL DEFAULT 0,
      refund_due_minor     bigint NOT NULL DEFAULT 0,
      fee_minor            bigint NOT NULL DEFAULT 0,
      fee_reversed_minor   bigint NOT NULL DEFAULT 0,
      confirmed            boolean NOT NULL DEFAULT false,
      closed_reason        text,
      close_note           text,
      payment_failures     integer NOT NULL DEFAULT 0,
      last_failure_reason  text,
      resends              integer NOT NULL DEFAULT 0,
      registered_at        timestamptz NOT NULL,
      checkout_started_at  timestamptz,
      paid_at              timestamptz,
      confirmed_at         timestamptz,
      rejected_at          timestamptz,
      cancelled_at         timestamptz,
      refunded_at          timestamptz,
      payment_failed_at    timestamptz,
      updated_at           timestamptz NOT NULL,
      version              integer NOT NULL
    )$ddl$, s);
  EXECUTE format('CREATE INDEX IF NOT EXISTS who_paid_event_seq ON %I.who_paid (event_id, seq)', s);
  EXECUTE format(
    'CREATE INDEX IF NOT EXISTS who_paid_event_status_seq ON %I.who_paid (event_id, status, seq)', s);

  -- Owner and title of each paid event: tenant checks without loading aggregates.
  EXECUTE format($ddl$
    CREATE TABLE IF NOT EXISTS %I.paid_events (
      event_id     uuid PRIMARY KEY,
      organizer_id text NOT NULL,
      title        text NOT NULL,
      currency     text NOT NULL,
      price_minor  bigint NOT NULL,
      status       text NOT NULL,
      created_at   timestamptz NOT NULL,
      updated_at   timestamptz NOT NULL
    )$ddl$, s);

  -- R16: money movements summed per organizer, currency and UTC day.  Only
  -- sums of per-payment figures: no rounding happens here.
  EXECUTE format($ddl$
    CREATE TABLE IF NOT EXISTS %I.fee_daily (
      organizer_id       text NOT NULL,
      currency           text NOT NULL,
      day                date NOT NULL,
      tickets            integer NOT NULL DEFAULT 0,
      payments           integer NOT NULL DEFAULT 0,
      gross_minor        bigint NOT NULL DEFAULT 0,
      refund_count       integer NOT NULL DEFAULT 0,
      refunded_minor     bigint NOT NULL DEFAULT 0,
      fee_minor          bigint NOT NULL DEFAULT 0,
      fee_reversed_minor bigint NOT NULL DEFAULT 0,
      PRIMARY KEY (organizer_id, currency, day)
    )$ddl$, s);
  EXECUTE format('CREATE INDEX IF NOT EXISTS fee_daily_day ON %I.fee_daily (day)', s);
END $fn$;

-- Point the stable views at generation schema `s`.  Called inside the
-- transaction that activates a generation, so readers switch atomically.
CREATE OR REPLACE FUNCTION projections.point_views_at(s text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  EXECUTE 'DROP VIEW IF EXISTS projections.who_paid, projections.paid_events, projections.fee_daily';
  EXECUTE format('CREATE VIEW projections.who_paid AS SELECT * FROM %I.who_paid', s);
  EXECUTE format('CREATE VIEW projections.paid_events AS SELECT * FROM %I.paid_events', s);
  EXECUTE format('CREATE VIEW projections.fee_daily AS SELECT * FROM %I.fee_daily', s);
END $fn$;

-- First start: an empty active generation 1 (the runner fills it from position 0).
DO $boot$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM projections.generations) THEN
    PERFORM projections.create_generation_tables('projections_g1');
    INSERT INTO projections.generations (generation, schema_name, layout, state, activated_at)
      VALUES (1, 'projections_g1', 1, 'active', now());
    PERFORM projections.point_views_at('projections_g1');
  END IF;
END $boot$;

-- == The Kafka relay (first release: workers/relay.sql) =====================
-- The Kafka relay's progress (workers/relay.py), one row per topic.
-- Invariant: every event with position <= published_position was acknowledged
-- by the broker (acks=all) into the topic incarnation named by topic_id.  The
-- row is written only after the acknowledgement, so a crash can re-send the
-- un-acknowledged tail but never skip an event.  When the broker reports a
-- different topic_id (the topic was created anew, e.g. an embedded memory
-- broker restarted empty) the relay starts again from 0 and counts a reset.
CREATE TABLE IF NOT EXISTS relay_position (
    topic              text PRIMARY KEY,
    published_position bigint NOT NULL DEFAULT 0 CHECK (published_position >= 0),
    topic_id           text,
    resets             integer NOT NULL DEFAULT 0,
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- == The notify worker (first release: workers/notify.sql) ==================
-- The notify worker's own tables (workers/notify.py, docs/emails.md).

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
  kind             text NOT NULL CHECK (kind IN ('confirmation', 'resend', 'reschedule', 'cancellation', 'rejection')),
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
CREATE INDEX IF NOT EXISTS notify_outbox_pending
  ON notify_outbox (next_attempt_at, seq) WHERE state = 'pending';
CREATE INDEX IF NOT EXISTS notify_outbox_pending_by_registration
  ON notify_outbox (registration_id, seq) WHERE state = 'pending';

-- Participants' access tokens (R10-R12): only a SHA-256 of the token is kept.
-- Checked by GET /v1/join/{token}; revoked on rejection, cancellation or a refund
-- that closes the registration.
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

-- == Payment providers (first release: ledger/providers/inbox.sql) ==========
-- What payment providers told us, and the checkouts we opened with them (issue 5).
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
