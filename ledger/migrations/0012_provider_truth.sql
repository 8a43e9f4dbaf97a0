-- Issue 18 (provider truth).  Edit freely until released, then never.

-- == Item 1: a provider checkout expires with its seat hold (R20).
-- expires_at: when the checkout stops taking money -- the time sent to the
-- provider (Stripe expires_at, PayU validityTime) and the end of the seat's
-- hold; the reconciler makes a checkout unpayable at the provider once it has
-- passed (Stripe expire, PayU DELETE, PayPal: never captured).  NULL for
-- checkouts opened before this migration (the provider's default validity).
ALTER TABLE provider_checkouts ADD COLUMN IF NOT EXISTS expires_at timestamptz;
CREATE INDEX IF NOT EXISTS provider_checkouts_lapsing
  ON provider_checkouts (expires_at) WHERE settled_at IS NULL AND expires_at IS NOT NULL;


-- == Views: layout 3 (issue 18 item 2) ========================================
-- Disputes, reversals and failed refunds are facts: who_paid gains disputed,
-- withdrawn_minor (money the provider took back, net of what it reinstated)
-- and reinstated_minor; fee_daily gains withdrawn_minor (not revenue: net is
-- gross - refunds - withdrawn).  LAYOUT in projections/generations.py is 3: a
-- database with views of layout 2 is rebuilt by the runner into this shape.
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
      version              integer NOT NULL,
      disputed             boolean NOT NULL DEFAULT false,  -- a dispute open or lost (issue 18)
      withdrawn_minor      bigint NOT NULL DEFAULT 0,       -- taken back by the provider, net of reinstated
      reinstated_minor     bigint NOT NULL DEFAULT 0
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
      withdrawn_minor    bigint NOT NULL DEFAULT 0,   -- taken back by the provider, net (issue 18)
      PRIMARY KEY (organizer_id, currency, day, fee_policy)
    )$ddl$, s);
  EXECUTE format('CREATE INDEX IF NOT EXISTS fee_daily_day ON %I.fee_daily (day)', s);
END $fn$;

-- A database that never applied an event gets layout 3 at once.
DO $fresh$
DECLARE
  s text;
BEGIN
  IF (SELECT count(*) FROM projections.generations) = 1
     AND EXISTS (SELECT 1 FROM projections.generations
                 WHERE layout = 2 AND position = 0 AND state = 'active') THEN
    SELECT schema_name INTO s FROM projections.generations;
    EXECUTE 'DROP VIEW IF EXISTS projections.who_paid, projections.paid_events, projections.fee_daily';
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
    PERFORM projections.create_generation_tables(s);
    UPDATE projections.generations SET layout = 3, updated_at = now();
    PERFORM projections.point_views_at(s);
  END IF;
END $fresh$;
