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

-- The views' new shape (who_paid.name/email nullable, who_paid.erased) is in
-- 0012, which defines the release's view layout once.
