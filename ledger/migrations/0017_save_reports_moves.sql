-- The save function again (ledger/application.py: LedgerRecorder._insert_by_function),
-- with what lets a sale decide on its process's cached event without first
-- asking the database whether it moved (ledger/aggregate_cache.py: "Trusted
-- reads"):
--
--  * read checks: (aggregate id, version) pairs the save was decided on
--    without writing to them -- a sale reads its organizer's plan size (R9).
--    Checked after the table's EXCLUSIVE lock, so every commit that could
--    have moved them is visible: if any has a newer event, nothing is written
--    and the call fails as a conflict (unique_violation, like a taken
--    version), and the caller decides again on a fresh read.  The aggregates
--    the save writes need no check: their next version's unique key already
--    refuses a save decided on an old one.
--  * what moved since: given the highest notification id the calling
--    process has seen covered (seen_after), the events committed after it
--    -- read under the lock, so nothing committed before this save is
--    missing -- at most 1,001 of them (the caller treats 1,001 as "too many
--    to list": anything may have moved).  The process applies them to the
--    aggregates it has cached (another process's sales on an event it also
--    sells), so its next sale needs no read.  NULL seen_after: none.
--
-- Rows: one per inserted event (notification_id, NULLs) and one per moved
-- event (NULL, originator_id, originator_version, topic, state).
--
-- enable_seqscan off: the plans are generic (made once per session, see
-- migration 16), and a generic plan of "notification_id > $1" assumes a
-- third of the table matches -- a scan of the whole table and a sort on
-- every save (measured: +190 us of PostgreSQL's CPU per registration on a
-- table of 3,600 events).  Every statement here is a probe of a unique
-- index or an insert, so an index is always the plan wanted.
--
-- The functions of migration 0016 stay, unchanged, for processes of the
-- previous release during a rollout (this one is an overload: three more
-- parameters).
CREATE OR REPLACE FUNCTION ledger_save_events(
  lock_timeout text,
  mark_credentials text[], mark_keys text[], mark_entries jsonb[],
  claim_event_ids uuid[], claim_digests bytea[], claim_registration_ids uuid[], claim_replaces uuid[],
  key_registration_ids uuid[], key_wrapped bytea[],
  event_ids uuid[], event_versions bigint[], event_topics text[], event_states bytea[],
  read_ids uuid[], read_versions bigint[], seen_after bigint
) RETURNS TABLE (notification_id bigint, moved_id uuid, moved_version bigint, moved_topic text, moved_state bytea)
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
AS $fn$
BEGIN
  IF cardinality(mark_keys) > 0 THEN
    UPDATE idempotency_keys AS k SET committed = coalesce(k.committed, '{}'::jsonb) || m.entry
      FROM unnest(mark_credentials, mark_keys, mark_entries) AS m(credential, key, entry)
     WHERE k.credential = m.credential AND k.key = m.key AND k.state = 'in_progress';
  END IF;
  IF cardinality(claim_replaces) > 0 THEN  -- empty when no claim replaces one (unnest pads it with NULLs)
    DELETE FROM registration_emails AS r
     USING unnest(claim_event_ids, claim_digests, claim_replaces) AS c(event_id, email_digest, replaces)
     WHERE c.replaces IS NOT NULL AND r.event_id = c.event_id AND r.email_digest = c.email_digest
       AND r.registration_id = c.replaces;
  END IF;
  IF cardinality(claim_event_ids) > 0 THEN
    INSERT INTO registration_emails (event_id, email_digest, registration_id)
      SELECT * FROM unnest(claim_event_ids, claim_digests, claim_registration_ids);
  END IF;
  IF cardinality(key_registration_ids) > 0 THEN
    INSERT INTO personal_data_keys (registration_id, wrapped_key)
      SELECT * FROM unnest(key_registration_ids, key_wrapped)
      ON CONFLICT (registration_id) DO NOTHING;
  END IF;
  IF cardinality(event_ids) > 0 THEN
    PERFORM set_config('lock_timeout', lock_timeout, true);
    LOCK TABLE public.ledger_events IN EXCLUSIVE MODE;
    -- One probe of the primary key per read (a join with the unnested arrays
    -- could be planned, generically, as a scan of the whole table).
    FOR i IN 1 .. coalesce(cardinality(read_ids), 0) LOOP
      IF EXISTS (SELECT 1 FROM public.ledger_events AS e
                  WHERE e.originator_id = read_ids[i] AND e.originator_version > read_versions[i]) THEN
        RAISE EXCEPTION USING ERRCODE = 'unique_violation',
          MESSAGE = 'an aggregate this save was decided on has changed since it was read';
      END IF;
    END LOOP;
    IF seen_after IS NOT NULL THEN
      RETURN QUERY
        SELECT NULL::bigint, e.originator_id, e.originator_version, e.topic, e.state FROM public.ledger_events AS e
         WHERE e.notification_id > seen_after ORDER BY e.notification_id LIMIT 1001;
    END IF;
    NOTIFY ledger_events;
    RETURN QUERY
      INSERT INTO public.ledger_events (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(event_ids, event_versions, event_topics, event_states)
      RETURNING public.ledger_events.notification_id, NULL::uuid, NULL::bigint, NULL::text, NULL::bytea;
  END IF;
END;
$fn$;
