-- Issue 18 item 1: a provider checkout expires with its seat hold (R20).
-- expires_at: when the checkout stops taking money -- the time sent to the
-- provider (Stripe expires_at, PayU validityTime) and the end of the seat's
-- hold; the reconciler makes a checkout unpayable at the provider once it has
-- passed (Stripe expire, PayU DELETE, PayPal: never captured).  NULL for
-- checkouts opened before this migration (the provider's default validity).
ALTER TABLE provider_checkouts ADD COLUMN IF NOT EXISTS expires_at timestamptz;
CREATE INDEX IF NOT EXISTS provider_checkouts_lapsing
  ON provider_checkouts (expires_at) WHERE settled_at IS NULL AND expires_at IS NOT NULL;
