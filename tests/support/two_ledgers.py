"""Two ledgers on one database: what two API processes (or a process and a
worker) share, for the tests of what one must see of the other's writes."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from entrypoints.bootstrap import bootstrap
from ledger.container import Ledger
from tests.support.settings import make_settings


@contextmanager
def two_ledgers(url: str, tmp_path: Path, **options: Any) -> Iterator[tuple[Ledger, Ledger]]:
    """``(a, b)``, each with its own data directory under ``tmp_path`` and its
    own caches and pool (``options`` go to ``bootstrap``), both closed after."""
    a = bootstrap(make_settings(tmp_path / "a"), url=url, **options)
    try:
        b = bootstrap(make_settings(tmp_path / "b"), url=url, **options)
        try:
            yield a, b
        finally:
            b.close()
    finally:
        a.close()
