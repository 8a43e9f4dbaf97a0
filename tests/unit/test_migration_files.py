"""The schema has one home: the numbered files in ledger/migrations.

Since issue 11 nothing runs DDL on start-up; a table added to a component's
``*.sql`` file would never be created.  A schema change is a new migration
``ledger/migrations/NNNN_what.sql`` (see that package's docstring)."""

from __future__ import annotations

import hashlib
from pathlib import Path

from ledger import migrations

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("ledger", "projections", "api", "workers", "entrypoints")

#: Released migrations never change: a database records what it ran.
RELEASED = {
    1: "0001_first_release.sql",
}


def test_migrations_are_numbered_without_gaps() -> None:
    found = migrations.available()
    assert [m.version for m in found] == list(range(1, len(found) + 1))
    assert migrations.target_version() == len(found) >= len(RELEASED)
    for version, name in RELEASED.items():
        assert found[version - 1].name == name


def test_released_migrations_are_never_edited() -> None:
    folder = ROOT / "ledger" / "migrations"
    digests = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in RELEASED.values()}
    assert digests == {
        "0001_first_release.sql": "1f00241a84fb6c0ee8e80acebec960cffffd840ff8d511e6a7cdbf28901224fb",
    }, "a released migration changed: write a new migration instead"


def test_no_schema_file_outside_the_migrations() -> None:
    strays = sorted(
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.sql")
        if "migrations" not in path.parts
    )
    assert strays == [], "DDL outside ledger/migrations is never applied: make it ledger/migrations/NNNN_what.sql"
