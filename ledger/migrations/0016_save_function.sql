-- The event store's save as one server-side function (ledger/application.py:
-- LedgerRecorder._insert_by_function): the callers' idempotency marks, the
-- e-mail claims, the new personal-data keys, then the events table's lock,
-- NOTIFY and the events' insert -- what the recorder sent as one simple query
-- of eight statements, each parsed and planned again on every save.  Called
-- as one prepared statement with array parameters (bound in binary), in the
-- implicit transaction of that one statement: it commits (durably) before
-- the reply, and any error -- a unique violation of a claimed address, of a
-- taken aggregate version -- rolls all of it back.  PL/pgSQL keeps each
-- statement's plan for the session.
--
-- The statements are those of the query it replaces, in the same order:
--  * marks: one per (credential, key), the recorder merges a key's entries
--    first (`||` of several entries on one key, as successive UPDATEs did);
--  * claims: the replaced claims dropped, then the new ones inserted (a
--    concurrent claim of an address violates the primary key);
--  * data keys: inserted unless the registration has one (R24);
--  * lock_timeout for this transaction, the EXCLUSIVE lock that keeps the
--    notification log in commit order (writers queue for it; readers do
--    not), NOTIFY to wake the log's followers at commit, the insert.  No
--    lock without events (a save of marks alone), as the library.
--
-- plan_cache_mode: given the array parameters' values, PostgreSQL's custom
-- plans of these statements look cheaper than their generic plans (it knows
-- the arrays' lengths), so it would plan each statement again on every call;
-- the generic plans (made once per session) are as good for a few rows.
CREATE OR REPLACE FUNCTION ledger_save_events(
  lock_timeout text,
  mark_credentials text[], mark_keys text[], mark_entries jsonb[],
  claim_event_ids uuid[], claim_digests bytea[], claim_registration_ids uuid[], claim_replaces uuid[],
  key_registration_ids uuid[], key_wrapped bytea[],
  event_ids uuid[], event_versions bigint[], event_topics text[], event_states bytea[]
) RETURNS SETOF bigint
LANGUAGE plpgsql
SET plan_cache_mode = force_generic_plan
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
    NOTIFY ledger_events;
    RETURN QUERY
      INSERT INTO public.ledger_events (originator_id, originator_version, topic, state)
        SELECT * FROM unnest(event_ids, event_versions, event_topics, event_states)
      RETURNING notification_id;
  END IF;
END;
$fn$;
