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


-- == Views: layout 5, the whole shape of this release's views ================
-- Layout 2 (0009) plus: who_paid.name/email nullable and who_paid.erased
-- (erasure, R24; keys in 0010); the books -- journal_entries, journal_lines
-- (balance and frozen triggers from 0011), book_accounts, book_checkpoints --
-- and fee_facts (issue 15, R22); who_paid.disputed, withdrawn_minor,
-- reinstated_minor and fee_daily/fee_facts.withdrawn_minor (provider
-- corrections, issue 18: net is gross - refunds - withdrawn).  LAYOUT in
-- projections/generations.py is 5: a database with views of an older layout
-- is rebuilt by the runner into this shape.
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

  -- R16-R18: money movements summed per organizer, currency, UTC day and fee policy.
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

  -- The same figures per fact, with the fact's log position: the fee report
  -- "as of" a position sums the facts up to it (fee_daily is their running sum).
  EXECUTE format($ddl$
    CREATE TABLE IF NOT EXISTS %I.fee_facts (
      position           bigint NOT NULL,
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
      PRIMARY KEY (position)
    )$ddl$, s);

  -- R22: the books.  One account per organizer, currency and account name,
  -- with its current totals (the trial balance "now" reads only this table).
  EXECUTE format($ddl$
    CREATE TABLE IF NOT EXISTS %I.book_accounts (
      account_id   integer PRIMARY KEY,
      organizer_id text NOT NULL,
      currency     text NOT NULL,
      account      text NOT NULL,
      debit_minor  bigint NOT NULL DEFAULT 0,
      credit_minor bigint NOT NULL DEFAULT 0,
      position     bigint NOT NULL,           -- of its last line
      UNIQUE (organizer_id, currency, account)
    )$ddl$, s);

  -- One entry per money fact: the log position and event that caused it.
  EXECUTE format($ddl$
    CREATE TABLE IF NOT EXISTS %I.journal_entries (
      position        bigint PRIMARY KEY,     -- also the entry's id
      event_id        uuid NOT NULL,          -- the stored event (uuid5 of aggregate id and version)
      kind            text NOT NULL,          -- the event type, e.g. PaymentRecorded
      organizer_id    text NOT NULL,
      currency        text NOT NULL,
      registration_id uuid NOT NULL,
      paid_event_id   uuid NOT NULL,
      occurred_at     timestamptz NOT NULL
    )$ddl$, s);
  EXECUTE format(
    'CREATE INDEX IF NOT EXISTS journal_entries_organizer ON %I.journal_entries (organizer_id, position)', s);
  EXECUTE format(
    'CREATE INDEX IF NOT EXISTS journal_entries_time ON %I.journal_entries (occurred_at, position)', s);

  -- Its lines, each with the account's running totals after it: "as of n" is
  -- the latest line per account with position <= n (one index probe each).
  EXECUTE format($ddl$
    CREATE TABLE IF NOT EXISTS %I.journal_lines (
      position      bigint NOT NULL,
      line_no       smallint NOT NULL,
      account_id    integer NOT NULL,
      organizer_id  text NOT NULL,
      currency      text NOT NULL,
      account       text NOT NULL,
      debit_minor   bigint NOT NULL CHECK (debit_minor >= 0),
      credit_minor  bigint NOT NULL CHECK (credit_minor >= 0),
      debit_total   bigint NOT NULL,         -- the account's debits up to and with this line
      credit_total  bigint NOT NULL,
      PRIMARY KEY (position, line_no),
      CHECK (debit_minor = 0 OR credit_minor = 0),
      CHECK (debit_minor + credit_minor > 0)
    )$ddl$, s);
  EXECUTE format(
    'CREATE INDEX IF NOT EXISTS journal_lines_account ON %I.journal_lines (account_id, position DESC, line_no DESC)'
    ' INCLUDE (debit_total, credit_total)', s);
  -- Every account's running totals at a position, taken when a batch crosses a
  -- multiple of projections.books.CHECKPOINT_EVERY: the trial balance of every
  -- organizer "as of n" is the checkpoint at or before n plus the lines after it.
  EXECUTE format($ddl$
    CREATE TABLE IF NOT EXISTS %I.book_checkpoints (
      position     bigint NOT NULL,
      account_id   integer NOT NULL,
      debit_total  bigint NOT NULL,
      credit_total bigint NOT NULL,
      PRIMARY KEY (position, account_id)
    )$ddl$, s);
  EXECUTE format('DROP TRIGGER IF EXISTS journal_lines_balance ON %I.journal_lines', s);
  EXECUTE format($ddl$
    CREATE TRIGGER journal_lines_balance AFTER INSERT ON %I.journal_lines
      REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
      EXECUTE FUNCTION projections.journal_lines_balance()$ddl$, s);
  EXECUTE format('DROP TRIGGER IF EXISTS journal_lines_frozen ON %I.journal_lines', s);
  EXECUTE format($ddl$
    CREATE TRIGGER journal_lines_frozen BEFORE UPDATE ON %I.journal_lines
      FOR EACH ROW EXECUTE FUNCTION projections.journal_lines_frozen()$ddl$, s);
END $fn$;

CREATE OR REPLACE FUNCTION projections.point_views_at(s text) RETURNS void
LANGUAGE plpgsql AS $fn$
BEGIN
  EXECUTE 'DROP VIEW IF EXISTS projections.who_paid, projections.paid_events, projections.fee_daily,'
          ' projections.fee_facts, projections.book_accounts, projections.journal_entries,'
          ' projections.journal_lines, projections.book_checkpoints';
  EXECUTE format('CREATE VIEW projections.who_paid AS SELECT * FROM %I.who_paid', s);
  EXECUTE format('CREATE VIEW projections.paid_events AS SELECT * FROM %I.paid_events', s);
  EXECUTE format('CREATE VIEW projections.fee_daily AS SELECT * FROM %I.fee_daily', s);
  IF to_regclass(format('%I.journal_lines', s)) IS NOT NULL THEN
    EXECUTE format('CREATE VIEW projections.fee_facts AS SELECT * FROM %I.fee_facts', s);
    EXECUTE format('CREATE VIEW projections.book_accounts AS SELECT * FROM %I.book_accounts', s);
    EXECUTE format('CREATE VIEW projections.journal_entries AS SELECT * FROM %I.journal_entries', s);
    EXECUTE format('CREATE VIEW projections.journal_lines AS SELECT * FROM %I.journal_lines', s);
    EXECUTE format('CREATE VIEW projections.book_checkpoints AS SELECT * FROM %I.book_checkpoints', s);
  END IF;
END $fn$;

-- A database that never applied an event gets layout 5 at once.
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
    UPDATE projections.generations SET layout = 5, updated_at = now();
    PERFORM projections.point_views_at(s);
  END IF;
END $fresh$;
