-- Issue 18 item 2: the organizer is told by e-mail about disputes, reversals
-- and failed refunds (workers/notify_planner.py, docs/emails.md).
--
-- An organizer's e-mail is a notify_outbox row like a participant's, with
-- `organizer_id` set: it goes to the organizer's contact address
-- (OrganizerContactChanged), `registration_id` still names the registration
-- the fact is about.  Such rows are ordered per organizer (not behind the
-- participant's own mail), are not dropped when the participant is erased
-- (R24: the participant's name is removed from them instead), and a
-- permanent failure is not recorded on the participant's registration.
ALTER TABLE notify_outbox ADD COLUMN IF NOT EXISTS organizer_id text;

ALTER TABLE notify_outbox DROP CONSTRAINT IF EXISTS notify_outbox_kind_check;
ALTER TABLE notify_outbox ADD CONSTRAINT notify_outbox_kind_check
  CHECK (kind IN ('confirmation', 'resend', 'reschedule', 'cancellation', 'rejection', 'owed_back', 'refund',
                  'organizer_dispute_opened', 'organizer_funds_withdrawn', 'organizer_dispute_won',
                  'organizer_dispute_lost', 'organizer_payment_reversed', 'organizer_refund_failed'));
ALTER TABLE notify_outbox DROP CONSTRAINT IF EXISTS notify_outbox_organizer_kind;
ALTER TABLE notify_outbox ADD CONSTRAINT notify_outbox_organizer_kind
  CHECK ((organizer_id IS NOT NULL) = (kind LIKE 'organizer\_%'));

CREATE INDEX IF NOT EXISTS notify_outbox_pending_by_organizer
  ON notify_outbox (organizer_id, seq) WHERE state = 'pending' AND organizer_id IS NOT NULL;
