"""Query-side input rules shared by the read endpoints and the CLI: list limits,
opaque cursors and the refusals they raise.

Every bad input becomes a ``ledger.errors`` refusal with a stable code, so the
API answers a precise 4xx problem+json and never a 500.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from ledger.errors import LedgerError, ValidationFailed

DEFAULT_LIMIT = 100
MAX_LIMIT = 500


class InvalidCursor(ValidationFailed):
    """``?after=`` is not a cursor this API handed out."""

    code = "invalid_cursor"
    title = "The pagination cursor is not valid"

    def __init__(self, message: str = "is not a cursor returned by this list") -> None:
        super().__init__({"after": [message]})


class InvalidDateRange(ValidationFailed):
    """``from`` after ``to``: an empty range is almost certainly a mistake."""

    code = "invalid_date_range"
    title = "The date range is empty"

    def __init__(self, message: str) -> None:
        super().__init__({"from": [message]})


class RebuildInProgress(LedgerError):
    code = "rebuild_in_progress"
    status = 409
    title = "Another rebuild of the views is running"


@dataclass(frozen=True)
class Page:
    """One page of a list: ``next`` is the cursor of the following page, or
    ``None`` when this page is the last one (so far)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    next: str | None = None
    position: int | None = None  #: the log position a page of a view reflects (Ledger-Position)

    def as_dict(self) -> dict[str, Any]:
        return {"items": self.items, "next": self.next}


def parse_limit(value: str | int | None, *, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
    """``?limit=``: an integer in 1..maximum (API.md), ``default`` when absent."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ValidationFailed({"limit": [f"must be an integer between 1 and {maximum}"]})
    if isinstance(value, str):
        text = value.strip()
        if not is_ascii_number(text, 9):
            raise ValidationFailed({"limit": [f"must be an integer between 1 and {maximum}"]})
        value = int(text)
    if not 1 <= value <= maximum:
        raise ValidationFailed({"limit": [f"must be an integer between 1 and {maximum}"]})
    return value


def parse_position(value: str | int | None, *, name: str = "after") -> int:
    """A position in the global order (``?after=`` of the event log): an
    integer >= 0, 0 when absent."""
    if value is None or value == "":
        return 0
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and is_ascii_number(value.strip(), 18):
        number = int(value.strip())
    else:
        raise ValidationFailed({name: ["must be a non-negative integer position"]})
    if number < 0:
        raise ValidationFailed({name: ["must be a non-negative integer position"]})
    return number


def is_ascii_number(text: str, max_digits: int) -> bool:
    """1 to ``max_digits`` ASCII digits.  ``str.isdigit`` alone is not enough:
    it also takes "²" (which ``int`` refuses: a 500) and "٣" (which ``int``
    reads as 3: a cursor nobody handed out)."""
    return 0 < len(text) <= max_digits and text.isascii() and text.isdigit()


_CURSOR_PREFIX = "c1:"


def encode_cursor(*parts: int | str) -> str:
    """An opaque cursor: clients must not build or edit them, and the shape can
    change without breaking anyone (base64url of a versioned key)."""
    raw = _CURSOR_PREFIX + ":".join(str(p) for p in parts)
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(value: str | None, *, parts: int = 1) -> list[str] | None:
    """The key inside a cursor made by :func:`encode_cursor`; ``None`` when absent."""
    if value is None or value == "":
        return None
    if len(value) > 200:
        raise InvalidCursor()
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidCursor() from None
    if not raw.startswith(_CURSOR_PREFIX):
        raise InvalidCursor()
    found = raw[len(_CURSOR_PREFIX):].split(":")
    if len(found) != parts:
        raise InvalidCursor()
    return found


def decode_int_cursor(value: str | None) -> int | None:
    """A cursor holding one non-negative integer key (a list's sort position)."""
    found = decode_cursor(value)
    if found is None:
        return None
    key = found[0]
    if not is_ascii_number(key, 18):
        raise InvalidCursor()
    return int(key)
