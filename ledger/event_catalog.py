"""The prose of the event JSON Schemas for Kafka consumers (docs/schemas/).

Only what a class cannot say: each event's description and, per field, its
description and the JSON keywords that narrow its type (format, pattern,
minimum, enum …).  Which fields exist, their JSON types, nullability,
``required``, the ``provider`` enum and every ``*_minor`` maximum (R21) come
from the event classes and the code (:mod:`ledger.event_schemas`); a field
with no entry here fails the generator, so a new field cannot go undocumented.
"""

from __future__ import annotations

from typing import Any

FEE_POLICY: dict[str, Any] = {
    "enum": ["fee-v1", "fee-v2"],
    "description": "The policy that computed this event's fee figures (docs/money.md)",
}

EVENTS: dict[str, dict[str, Any]] = {
    "CheckoutStarted": {
        "description": "A provider checkout was opened for the registration.",
        "fields": {
            "provider": {},
            "url": {"description": "Where the participant pays"},
            "reference": {"description": "Provider's checkout/order reference"},
        },
    },
    "ConfirmationResendRequested": {
        "description": "The organizer asked to e-mail the confirmation again (R12).",
        "fields": {},
    },
    "EmailDeliveryFailed": {
        "description": "The notify worker could not deliver an e-mail to this participant "
        "(permanent 5xx, or deferred for days). Changes no status.",
        "fields": {
            "message_id": {"description": "Message-ID of the undelivered e-mail; one event per message"},
            "kind": {"description": "Which e-mail (confirmation, resend, rescheduled, cancelled, …)"},
            "smtp_code": {"description": "The SMTP reply code, when there was one"},
            "reason": {"description": "The mail server's reply text (it may quote the address): personal "
                       "data, stored sealed since version 2; null once the participant was erased"},
            "erased": {"description": "The participant's personal data was erased (R24): `reason` is null"},
        },
    },
    "EventCancelled": {
        "description": "The event was cancelled (R15); each open registration gets a RegistrationCancelled.",
        "fields": {"reason": {}},
    },
    "EventDetailsEdited": {
        "description": "Title or description changed (the price never does, R7).",
        "fields": {"title": {}, "description": {}},
    },
    "EventRescheduled": {
        "description": "One session moved (R13); participants are notified.",
        "fields": {
            "session_id": {},
            "starts_at": {"format": "date-time"},
            "previous_starts_at": {"format": "date-time"},
        },
    },
    "OrganizerRegistered": {
        "description": "An organizer account was created (R9 plan).",
        "fields": {
            "name": {"description": "Organizer's display (business) name; always included."},
            "country": {"pattern": "^[A-Z]{2}$", "description": "ISO 3166-1 alpha-2 country"},
            "plan_size": {"minimum": 1, "description": "Participant limit per event (R9)"},
        },
    },
    "PaidEventCreated": {
        "description": "A paid webinar was created with its one immutable price (R5, R7).",
        "fields": {
            "organizer_id": {"format": "uuid"},
            "title": {},
            "description": {},
            "timezone": {"description": "IANA time zone for display"},
            "permanent": {"description": "A permanent (on-demand) event"},
            "sessions": {
                "minItems": 1,
                "items": {
                    "type": "object",
                    "required": ["id", "starts_at"],
                    "properties": {"id": {"type": "string"}, "starts_at": {"type": "string", "format": "date-time"}},
                    "additionalProperties": {"type": "string"},
                },
                "description": "Sessions with their UTC start",
            },
            "price_minor": {
                "minimum": 1,
                "maximum": 70000000,
                "description": "Price in minor units of currency. At most the "
                "currency's maximum ticket price (R6): never "
                "above 70000000.",
            },
            "currency": {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
            "provider": {},
            "connection_id": {"description": "The provider connection used for checkouts"},
        },
    },
    "ParticipantConfirmed": {"description": "The organizer confirmed the participant (R14).", "fields": {}},
    "ParticipantRegistered": {
        "description": "A participant registered; status awaiting_payment. Version 2 added `language`; "
        "version 3 stores `name`, `email` and `fields` sealed under the registration's data key (R24): "
        "they read as null, with `erased` true, once the participant was erased.",
        "fields": {
            "event_id": {"format": "uuid"},
            "organizer_id": {"format": "uuid"},
            "name": {"description": "Personal data: only with LEDGER_KAFKA_INCLUDE_PII=1; null once erased"},
            "email": {"description": "Personal data: only with LEDGER_KAFKA_INCLUDE_PII=1; null once erased"},
            "fields": {
                "additionalProperties": {"type": "string"},
                "description": "Extra form fields. Personal data: only with LEDGER_KAFKA_INCLUDE_PII=1; "
                "null once erased",
            },
            "erased": {"description": "The participant's personal data was erased (R24): `name`, `email` "
                       "and `fields` are null"},
            "language": {"description": "E-mail language; null = organizer's country decides"},
            "price_minor": {
                "minimum": 0,
                "maximum": 70000000,
                "description": "Price owed, minor units. At most the "
                "currency's maximum ticket price (R6): never "
                "above 70000000.",
            },
            "currency": {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
            "provider": {},
        },
    },
    "ParticipantRejected": {
        "description": "The organizer rejected the participant; money received becomes "
        "refund_due (R15, R17). A ticket lost after payment gives its whole fee "
        "back with this fact (R18). Version 2 added `fee_reversed_minor` and "
        "`fee_policy` (version 1: no fee given back).",
        "fields": {
            "reason": {},
            "fee_reversed_minor": {"minimum": 0, "description": "Platform fee given back with this fact, minor units"},
            "fee_policy": {
                "enum": ["fee-v1", "fee-v2"],
                "description": "The policy that computed this event's fee "
                "figures (fee-v1: the first release's stored "
                "events; fee-v2: R18)",
            },
        },
    },
    "PersonalDataErased": {
        "description": "The participant's personal data was erased on request (R24): its data key is "
        "destroyed, so every earlier event of this registration now reads `name`, `email`, `fields` "
        "(and e-mail failure reasons) as null with `erased` true. Consumers must erase their own copies "
        "of this registration's personal data. Holds no personal data; amounts, statuses and fees are "
        "unchanged.",
        "fields": {
            "erasure_id": {"format": "uuid", "description": "The erasure request (its receipt id)"},
            "erased_fields": {
                "items": {"type": "string"},
                "description": "What was erased: `name`, `email`, `fields`, `email_failures.reason`",
            },
        },
    },
    "PaymentFailed": {"description": "A checkout failed or expired.", "fields": {"reason": {}, "reference": {}}},
    "PaymentMismatched": {
        "description": "A provider reported money that is not the price (amount or currency); kept "
        "apart for the organizer to resolve, changes neither status nor amounts.",
        "fields": {
            "amount_minor": {"minimum": -700000000, "description": "Amount the provider reported, minor units"},
            "currency": {"description": "Currency the provider reported"},
            "provider": {},
            "reference": {"description": "Provider's payment reference"},
        },
    },
    "PaymentRecorded": {
        "description": "Money received (webhook, reconciliation or recorded by hand); any real "
        "payment is recorded (R17). `seat_granted` false: no seat was left (R9). "
        "Money that pays for no ticket held (a second payment, a payment after the "
        "cancel, with no seat) is owed back and, since fee-v2, carries no fee (R18). "
        "Version 2 added `method`.",
        "fields": {
            "amount_minor": {"minimum": 1, "description": "Amount in minor units"},
            "currency": {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
            "provider": {},
            "method": {
                "description": "How the money came when recorded by hand (free text, "
                'e.g. "bank transfer"); null from provider '
                "notifications"
            },
            "reference": {"description": "Provider's payment reference; unique per provider for a registration"},
            "fee_minor": {
                "minimum": 0,
                "description": "Platform fee this payment charged, minor units "
                "(fee-v2: on the ticket money it completes; 0 for "
                "money owed back)",
            },
            "fee_policy": {
                "enum": ["fee-v1", "fee-v2"],
                "description": "The policy that computed this event's fee figures "
                "(fee-v1: the first release's stored events; "
                "fee-v2: R18)",
            },
            "seat_granted": {},
        },
    },
    "OrganizerContactChanged": {
        "description": "The organizer's contact e-mail was set, changed or removed (issue 18): disputes, "
        "reversals and failed refunds are e-mailed there. Business contact data, published as is.",
        "fields": {
            "contact_email": {"format": "email", "maxLength": 254,
                      "description": "The contact address; null: the organizer has none (no such e-mails)"},
        },
    },
    "PlanChanged": {
        "description": "The organizer's plan size changed; limits future sales only (R9).",
        "fields": {
            "plan_size": {"minimum": 1, "description": "New participant limit"},
            "previous_plan_size": {"minimum": 1, "description": "Limit before the change"},
        },
    },
    "ProviderConnected": {
        "description": "A payment provider connection was added (R1–R4). Credentials are never in the event.",
        "fields": {
            "connection_id": {"minLength": 1, "description": "Connection id, referenced by PaidEventCreated"},
            "provider": {},
            "masked": {
                "additionalProperties": {"type": "string"},
                "description": "Which credentials were given, masked (e.g. last four characters); never a secret",
            },
        },
    },
    "PaymentDisputed": {
        "description": "The payer disputed a payment with their bank or the provider (Stripe "
        "charge.dispute.created, PayPal CUSTOMER.DISPUTE.CREATED); issue 18. Moves no money by itself; "
        "the registration is shown as disputed. One per dispute id.",
        "fields": {
            "dispute_id": {"description": "The provider's dispute id (Stripe dp_…, PayPal PP-D-…)"},
            "provider": {},
            "reference": {"description": "The disputed checkout's reference (session or order id)"},
            "amount_minor": {"minimum": 1, "description": "Amount disputed, minor units"},
            "currency": {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
            "reason": {"description": "The provider's reason (e.g. fraudulent), when given"},
        },
    },
    "DisputeFundsWithdrawn": {
        "description": "The provider took the disputed money out of the organizer's balance (Stripe "
        "charge.dispute.funds_withdrawn); issue 18. Not revenue any more: taken like a refund (owed back "
        "first, then the ticket); the fee on the ticket money taken is given back (R18). Access stays until "
        "the dispute is lost.",
        "fields": {
            "dispute_id": {"description": "The provider's dispute id"},
            "amount_minor": {"minimum": 1, "description": "Amount withdrawn, minor units"},
            "currency": {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
            "fee_reversed_minor": {"minimum": 0, "description": "Platform fee given back, minor units"},
            "fee_policy": FEE_POLICY,
            "disputed": {"description": "The registration's `disputed` marker after this fact (a withdrawal "
                         "for a dispute not yet recorded opens it); v1 events read as true"},
        },
    },
    "DisputeFundsReinstated": {
        "description": "The provider gave withdrawn money back (Stripe charge.dispute.funds_reinstated); "
        "issue 18. While the registration holds its ticket, it gives the ticket back what the withdrawal "
        "took from it, with that money's fee charged again; the rest is owed back, as it was before the "
        "dispute.",
        "fields": {
            "dispute_id": {"description": "The provider's dispute id"},
            "amount_minor": {"minimum": 1, "description": "Amount reinstated, minor units"},
            "currency": {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
            "fee_minor": {"minimum": 0, "description": "Platform fee charged again, minor units"},
            "fee_policy": FEE_POLICY,
            "ticket_minor": {"minimum": 0, "description": "The registration's ticket money after this fact, "
                             "minor units (v2); null in v1 events, whose ticket money was the money held up "
                             "to the price"},
        },
    },
    "DisputeResolved": {
        "description": "A dispute closed (Stripe charge.dispute.closed, PayPal CUSTOMER.DISPUTE.RESOLVED); "
        "issue 18. `lost`: the ticket, its seat and its access end (join tokens stop working) and the fee "
        "still charged is given back; `won`: nothing changes but the marker.",
        "fields": {
            "dispute_id": {"description": "The provider's dispute id"},
            "outcome": {"enum": ["won", "lost"], "description": "Who kept the money: the organizer (won)"},
            "fee_reversed_minor": {"minimum": 0, "description": "Platform fee given back, minor units"},
            "fee_policy": FEE_POLICY,
            "disputed": {"description": "The registration's `disputed` marker after this fact (false only when "
                         "no other dispute is open or lost); v1 events read as outcome = lost"},
        },
    },
    "PaymentReversed": {
        "description": "The provider reversed a payment (PayPal PAYMENT.CAPTURE.REVERSED); issue 18. The "
        "money leaves the organizer's balance, the ticket, its seat and access end, the fee still charged "
        "is given back.",
        "fields": {
            "reversal_id": {"description": "The provider's id of the reversal (or of the reversed capture)"},
            "reference": {"description": "The checkout's reference (order id)"},
            "amount_minor": {"minimum": 1, "description": "Amount taken back, minor units"},
            "currency": {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
            "fee_reversed_minor": {"minimum": 0, "description": "Platform fee given back, minor units"},
            "fee_policy": FEE_POLICY,
        },
    },
    "RefundFailed": {
        "description": "A refund recorded earlier failed at the provider (Stripe refund.failed, PayU refund "
        "CANCELED); issue 18. The money was never returned: the refund no longer counts and its amount is "
        "owed back again (R17). Ticket and fee stay as they were.",
        "fields": {
            "reference": {"description": "The failed refund's reference (as on its RefundRecorded)"},
            "amount_minor": {"minimum": 1, "description": "Amount of the failed refund, minor units"},
            "currency": {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
        },
    },
    "PaymentAuthorized": {
        "description": "The provider holds the payer's money until the shop confirms it (PayU "
        "WAITING_FOR_CONFIRMATION); issue 18. Nothing is booked: the ledger confirms it while the seat is "
        "held (a PaymentRecorded follows) or releases it at the provider (a PaymentFailed follows; the "
        "provider returns the money to the payer). One per provider reference.",
        "fields": {
            "amount_minor": {"minimum": 1, "description": "Amount held, minor units"},
            "currency": {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
            "provider": {},
            "reference": {"description": "The provider's order id"},
        },
    },
    "RefundRecorded": {
        "description": "A refund made at the provider was recorded (R15). It is taken from the money "
        "owed back first, then from the ticket (R17). `ends_access`: the participant "
        "lost the ticket with it (R19); version 1 refunds always did. Version 2 added "
        "`ends_access` and `fee_policy`.",
        "fields": {
            "amount_minor": {"minimum": 1, "description": "Refunded amount, minor units"},
            "currency": {"pattern": "^[A-Z]{3}$", "description": "ISO 4217 code"},
            "reference": {"description": "Provider's refund reference"},
            "ends_access": {
                "description": "The registration closed with this refund: ticket given back, access ended (R19)"
            },
            "fee_reversed_minor": {
                "minimum": 0,
                "description": "Platform fee given back, minor units (fee-v2: down to 5% of the ticket money left)",
            },
            "fee_policy": {
                "enum": ["fee-v1", "fee-v2"],
                "description": "The policy that computed this event's fee figures "
                "(fee-v1: the first release's stored events; fee-v2: "
                "R18)",
            },
        },
    },
    "RegistrationCancelled": {
        "description": "The registration closed because its event was cancelled (R15); money "
        "received becomes refund_due (R17). A ticket lost after payment gives "
        "its whole fee back with this fact (R18). Version 2 added "
        "`fee_reversed_minor` and `fee_policy` (version 1: no fee given back).",
        "fields": {
            "reason": {},
            "fee_reversed_minor": {"minimum": 0, "description": "Platform fee given back with this fact, minor units"},
            "fee_policy": {
                "enum": ["fee-v1", "fee-v2"],
                "description": "The policy that computed this event's fee "
                "figures (fee-v1: the first release's stored "
                "events; fee-v2: R18)",
            },
        },
    },
    "SeatHeld": {
        "description": "A seat is reserved for a registration while its checkout is open (R9).",
        "fields": {
            "registration_id": {"format": "uuid"},
            "expires_at": {"format": "date-time", "description": "When the hold lapses if unpaid"},
        },
    },
    "SeatReleased": {
        "description": "A seat went back (payment failed, checkout expired or not started, rejected, refunded, "
                       "or a payment found no seat: reason capacity_exhausted).",
        "fields": {"registration_id": {"format": "uuid"}, "reason": {}},
    },
    "SeatSold": {
        "description": "A registration's seat is sold (payment or manual confirmation).",
        "fields": {"registration_id": {"format": "uuid"}},
    },
}
