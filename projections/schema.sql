-- Read models ("who paid", fee reports) built from the notification log.
-- Applied at start-up under the schema advisory lock; every statement is idempotent.
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
-- CREATE INDEX IF NOT EXISTS would still take a share lock on every start-up
-- and wait for the runner's batch in flight.
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
      VALUES (1, 'projections_g1', 2, 'active', now());  -- LAYOUT
    PERFORM projections.point_views_at('projections_g1');
  END IF;
END $boot$;
