"""Server-rendered web pages for organizers and finance, under ``/app/``.

``api.app.create_app`` calls :func:`register` when this package exists.  The
pages are a second door to the *same* command path as the API: every action
calls the same ``LedgerService`` method with the same scope and rules, and
refusals are the same ``LedgerError``s, shown next to the field they concern.
Jinja2 templates and one CSS file; no JavaScript and no front-end build.
"""

from __future__ import annotations

from flask import Flask


def register(app: Flask) -> None:
    """Wire the pages into ``app``: session cookie and its signing key (derived
    from ``LEDGER_SECRET_KEY``), template filters, the ``/app`` blueprint."""
    # The view modules attach their routes to the blueprint when imported.
    from api.pages import (  # noqa: F401
        views_auth,
        views_books,
        views_event_create,
        views_events,
        views_finance,
        views_participants,
        views_providers,
    )
    from api.pages.blueprint import bp
    from api.pages.formatting import FILTERS
    from api.pages.i18n import configure as configure_languages
    from api.pages.join_page import join_bp
    from api.pages.session_auth import configure

    configure(app, app.extensions["ledger"].settings)
    configure_languages(app)
    app.jinja_env.filters.update(FILTERS)
    app.register_blueprint(bp)
    app.register_blueprint(join_bp)
