-- Issue 16, erasure (R24): participants' personal data sealed per registration.
-- Edit freely until released, then never.

-- == Data keys, one per registration ============================================
-- AES-256-GCM data keys that seal a registration's personal data in its events
-- (ledger/personal_data.py).  Each key is itself wrapped (sealed) with
-- LEDGER_SECRET_KEY, bound to the registration id.  Erasing (ledger/erasure.py)
-- sets wrapped_key to NULL: the ciphertext in the append-only event store then
-- reads as erased, while every event's hash (over the ciphertext) still verifies.
-- A registration stored before sealing existed gets a tombstone row (no key,
-- erased_at set) when erased, so readers hide its clear-text events too.
CREATE TABLE IF NOT EXISTS personal_data_keys (
  registration_id uuid PRIMARY KEY,
  wrapped_key     bytea,
  created_at      timestamptz NOT NULL DEFAULT now(),
  erased_at       timestamptz,
  erasure_id      uuid,
  CHECK ((wrapped_key IS NULL) = (erased_at IS NOT NULL))
);

-- == Views: layout 3 ==========================================================
-- who_paid's name and email may be NULL (erased) and the row says so (`erased`).
-- LAYOUT in projections/generations.py is 3: views of an older layout are rebuilt
-- by the runner (ledger rebuild) into this shape.
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
      name                 text,              -- NULL once erased (R24)
      email                text,
      erased               boolean NOT NULL DEFAULT false,
      currency             text NOT NULL,
      price_minor          bigint NOT NULL,
      provider             text NOT NULL,
      provider_reference   text,
      status               text NOT NULL,
      paid_minor           bigint NOT NULL DEFAULT 0,
      refunded_minor       bigint NOT NULL DEFAULT 0,
      ticket_minor         bigint NOT NULL DEFAULT 0,   -- money paying for the ticket held (R17)
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

  -- R16-R18: money movements summed per organizer, currency, UTC day and the
  -- fee policy that computed the facts' fee figures.  Only sums of figures fixed
  -- on the facts: no rounding happens here.  refund_due_minor is the change of
  -- money owed back (R17) by the day's facts: its sum over all days is what is
  -- owed now.
  EXECUTE format($ddl$
    CREATE TABLE IF NOT EXISTS %I.fee_daily (
      organizer_id       text NOT NULL,
      currency           text NOT NULL,
      day                date NOT NULL,
      fee_policy         text NOT NULL,
      tickets            integer NOT NULL DEFAULT 0,
      payments           integer NOT NULL DEFAULT 0,
      gross_minor        bigint NOT NULL DEFAULT 0,
      refund_count       integer NOT NULL DEFAULT 0,
      refunded_minor     bigint NOT NULL DEFAULT 0,
      refund_due_minor   bigint NOT NULL DEFAULT 0,
      fee_minor          bigint NOT NULL DEFAULT 0,
      fee_reversed_minor bigint NOT NULL DEFAULT 0,
      PRIMARY KEY (organizer_id, currency, day, fee_policy)
    )$ddl$, s);
  EXECUTE format('CREATE INDEX IF NOT EXISTS fee_daily_day ON %I.fee_daily (day)', s);
END $fn$;

-- A database that never applied an event gets layout 3 at once (as in 0009).
DO $fresh$
BEGIN
  IF EXISTS (SELECT 1 FROM projections.generations
             WHERE generation = 1 AND layout = 2 AND position = 0 AND state = 'active')
     AND (SELECT count(*) FROM projections.generations) = 1 THEN
    EXECUTE 'DROP VIEW IF EXISTS projections.who_paid, projections.paid_events, projections.fee_daily';
    EXECUTE 'DROP SCHEMA projections_g1 CASCADE';
    PERFORM projections.create_generation_tables('projections_g1');
    UPDATE projections.generations SET layout = 3, updated_at = now() WHERE generation = 1;
    PERFORM projections.point_views_at('projections_g1');
  END IF;
END $fresh$;
