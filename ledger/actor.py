"""Who caused an event: recorded with every stored event for the auditors.

The entry point that accepts a command (an API request, a webhook, a worker)
says who is acting; the store's mapper writes it into each event it saves in
that context.  Kept in a context variable so that the domain never has to pass
it around, and so that each request thread has its own.

Actor strings: ``admin:<token id>``, ``organizer:<token id>``, ``public``
(a participant registering), ``provider:<name>:<connection id>`` (a verified
webhook), ``worker:<name>``, ``cli``, or ``system`` when nobody said.
A token id is the first 12 hex digits of the token's SHA-256, which the
``api_tokens`` table maps to its role, organizer and label.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

current_actor: ContextVar[str] = ContextVar("current_actor", default="system")


@contextmanager
def acting_as(actor: str) -> Iterator[None]:
    token = current_actor.set(actor)
    try:
        yield
    finally:
        current_actor.reset(token)
