-- Issue 15 (books: double-entry accounts, trial balance, statements, as of; R22).
-- Edit freely until released, then never.

-- == Every journal entry balances (R22) ======================================
-- A statement-level check on the lines a statement inserts: per entry
-- (position) and currency, debits must equal credits.  The journal writer
-- inserts an entry's lines in one statement (one COPY per batch), so an entry
-- cut in two halves, each unbalanced, is refused as well.  Lines are never
-- updated: a rebuild fills a new generation.
CREATE OR REPLACE FUNCTION projections.journal_lines_balance() RETURNS trigger
LANGUAGE plpgsql AS $fn$
DECLARE
  bad record;
BEGIN
  SELECT position, currency, sum(debit_minor) AS d, sum(credit_minor) AS c INTO bad
    FROM inserted GROUP BY position, currency HAVING sum(debit_minor) <> sum(credit_minor) LIMIT 1;
  IF FOUND THEN
    RAISE EXCEPTION 'unbalanced journal entry at position %: % debit <> % credit in %',
      bad.position, bad.d, bad.c, bad.currency USING ERRCODE = 'check_violation';
  END IF;
  RETURN NULL;
END $fn$;

CREATE OR REPLACE FUNCTION projections.journal_lines_frozen() RETURNS trigger
LANGUAGE plpgsql AS $fn$
BEGIN
  RAISE EXCEPTION 'journal lines are never changed (%.%)', TG_TABLE_SCHEMA, TG_TABLE_NAME
    USING ERRCODE = 'check_violation';
END $fn$;

-- The books' tables (journal_entries, journal_lines, book_accounts,
-- book_checkpoints, fee_facts) are part of the views' layout, defined once
-- for this release in 0012.
