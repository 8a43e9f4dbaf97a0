"""The provider descriptions' texts as the pages show them, marked for the
translation catalog.

The English source of each text is the provider's class
(``ledger/providers/*``: ``label``, ``hint`` without its rule id, credential
field labels, ``countries_label``); the pages translate it at render time with
``gettext(text)``.  ``pybabel extract`` only finds literal strings, so they are
repeated here; ``tests/unit/test_page_translations.py`` fails when a provider's
text changes and this list (and so the Polish catalog) no longer covers it.
"""

from __future__ import annotations

from api.pages.i18n import lazy_gettext

TEXTS = (
    lazy_gettext("Stripe"),
    lazy_gettext("A restricted key must allow Checkout Sessions, Products and Prices (write)."),
    lazy_gettext("Secret or restricted key"),
    lazy_gettext("Webhook signing secret"),
    lazy_gettext("PayU"),
    lazy_gettext("Polish registered businesses only, PLN only; bookings start once PayU verifies the shop."),
    lazy_gettext("Shop id (PublicShopID)"),
    lazy_gettext("POS id (posId)"),
    lazy_gettext("Client id"),
    lazy_gettext("Client secret"),
    lazy_gettext("Second key (MD5)"),
    lazy_gettext("Poland"),
    lazy_gettext("PayPal"),
    lazy_gettext("Authorises the platform's API user on your PayPal account (Express Checkout)."),
    lazy_gettext("Webhook id"),
    lazy_gettext("Manual (offline)"),
    lazy_gettext("Payments you receive yourself (bank transfer, cash) and record by hand. Not for HUF, BGN or RON."),
    # Stripe with a restricted key, PayPal through the platform (issue 13)
    lazy_gettext("Paste a secret key, or a restricted key allowing Checkout Sessions, Products and Prices (write)."
                 " A webhook signing secret is optional: it only makes payment confirmation faster."),
    lazy_gettext("Webhook signing secret (optional)"),
    lazy_gettext("Enter your PayPal merchant id or the e-mail of your PayPal account: the platform creates the"
                 " orders and you are paid directly. Or connect your own REST app (client id, secret, webhook id)."),
    lazy_gettext("PayPal merchant id"),
    lazy_gettext("PayPal account e-mail"),
    lazy_gettext("Client id (own REST app)"),
    lazy_gettext("Client secret (own REST app)"),
    lazy_gettext("Webhook id (own REST app)"),
)
