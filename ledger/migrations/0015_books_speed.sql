-- Issue 15 (books): the trial balance and "as of" fast enough for 1,000
-- organizers x 3 currencies over 1M events (docs/books.md, Performance).
--
-- == Views: layout 6 =========================================================
-- Layout 5 (0012) plus:
-- * book_accounts.chart_order, a generated column (money held first, then the
--   chart's order), and the index book_accounts_shown in the order answers
--   list accounts, holding their totals: the trial balance of every organizer
--   is read from that index as it stands, with no sort;
-- * journal_lines' primary key covers account_id, debit_minor, credit_minor and
--   book_checkpoints' covers the totals: "as of" reads a checkpoint and the
--   lines next to it from the indexes alone, wherever the rows lie on disk.
-- LAYOUT in projections/generations.py is 6: the runner rebuilds a database
-- with views of layout 5 into this shape.

-- The whole shape of a generation's tables, layout 6.
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
      -- Where the account stands among its organizer's and currency's: money
      -- held first, then the chart's order (projections.books.FIXED_ACCOUNTS).
      chart_order  smallint GENERATED ALWAYS AS ((CASE WHEN account LIKE 'held:%%' THEN 0
        ELSE coalesce(array_position(ARRAY['refunds_paid', 'withdrawn', 'ticket_revenue', 'owed_back',
                                           'fee_expense', 'fee_payable'], account), 99) END)::smallint) STORED,
      UNIQUE (organizer_id, currency, account)
    )$ddl$, s);
  -- Accounts in the order answers list them (currency, organizer, chart order,
  -- name; byte order): the trial balance reads this index, no sort.
  EXECUTE format(
    'CREATE INDEX IF NOT EXISTS book_accounts_shown ON %I.book_accounts (currency COLLATE "C",'
    ' organizer_id COLLATE "C", chart_order, account COLLATE "C") INCLUDE (debit_minor, credit_minor)',
    s);

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
      -- covering: "as of" sums a range of positions from the index alone
      PRIMARY KEY (position, line_no) INCLUDE (account_id, debit_minor, credit_minor),
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
      PRIMARY KEY (position, account_id) INCLUDE (debit_total, credit_total)  -- covering
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

-- Until that rebuild switches over, the books are read from the layout-5
-- tables: they get chart_order now (a generated column: no writer, old or
-- new, has to set it; book_accounts has one row per account, so this is
-- quick), and the views are pointed at them again to show it.
DO $in_place$
DECLARE
  g record;
BEGIN
  FOR g IN SELECT schema_name, state FROM projections.generations
           WHERE layout = 5 AND state IN ('active', 'building')
             AND to_regclass(format('%I.book_accounts', schema_name)) IS NOT NULL LOOP
    EXECUTE format($ddl$
      ALTER TABLE %I.book_accounts ADD COLUMN IF NOT EXISTS chart_order smallint GENERATED ALWAYS AS (
        (CASE WHEN account LIKE 'held:%%' THEN 0
         ELSE coalesce(array_position(ARRAY['refunds_paid', 'withdrawn', 'ticket_revenue', 'owed_back',
                                            'fee_expense', 'fee_payable'], account), 99) END)::smallint) STORED
      $ddl$, g.schema_name);
    IF g.state = 'active' THEN
      PERFORM projections.point_views_at(g.schema_name);
    END IF;
  END LOOP;
END $in_place$;

-- A database that never applied an event gets layout 6 at once.
DO $fresh$
DECLARE
  s text;
BEGIN
  IF (SELECT count(*) FROM projections.generations) = 1
     AND EXISTS (SELECT 1 FROM projections.generations
                 WHERE layout = 5 AND position = 0 AND state = 'active') THEN
    SELECT schema_name INTO s FROM projections.generations;
    EXECUTE 'DROP VIEW IF EXISTS projections.who_paid, projections.paid_events, projections.fee_daily,'
            ' projections.fee_facts, projections.book_accounts, projections.journal_entries,'
            ' projections.journal_lines, projections.book_checkpoints';
    EXECUTE format('DROP SCHEMA %I CASCADE', s);
    PERFORM projections.create_generation_tables(s);
    UPDATE projections.generations SET layout = 6, updated_at = now();
    PERFORM projections.point_views_at(s);
  END IF;
END $fresh$;
