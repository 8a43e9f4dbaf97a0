"""Checkpoint signing and verification (ledger/proof/checkpoints.py): the
signed message, key ids, the key file, the JSON shape and the schedule."""

from __future__ import annotations

import hashlib
import os
import stat
from datetime import UTC, datetime
from pathlib import Path

import pytest

from ledger.proof import checkpoints
from ledger.proof.checkpoints import Checkpoint, CheckpointSchedule, CheckpointSigner

SEED = "5a" * 32
ROOT = bytes(range(32))


def _signer(seed: str = SEED) -> CheckpointSigner:
    key = checkpoints.load_signing_key(Path("/nonexistent"), env={checkpoints.KEY_ENV: seed})
    return CheckpointSigner(key, clock=lambda: datetime(2025, 1, 31, 23, 59, 59, 900_000, tzinfo=UTC))


def test_a_checkpoint_signs_the_documented_message() -> None:
    signer = _signer()
    checkpoint = signer.sign(5000, ROOT)
    assert checkpoint.time == "2025-01-31T23:59:59Z"
    assert checkpoint.message() == f"ledger-checkpoint-v1\n5000\n{ROOT.hex()}\n2025-01-31T23:59:59Z\n".encode()
    assert checkpoint.key_id == hashlib.sha256(signer.public_key).digest()[:8].hex() and len(checkpoint.key_id) == 16
    assert checkpoints.verify_signature(checkpoint, signer.public_key)
    document = checkpoints.public_key_document(signer.private_key)
    assert document == {"algorithm": "Ed25519", "key_id": checkpoint.key_id, "public_key": signer.public_key.hex()}


def test_any_changed_field_or_another_key_fails() -> None:
    signer, other = _signer(), _signer("77" * 32)
    good = signer.sign(10, ROOT)
    changed = [
        Checkpoint(11, good.root, good.time, good.key_id, good.signature),
        Checkpoint(10, bytes(32), good.time, good.key_id, good.signature),
        Checkpoint(10, good.root, "2025-02-01T00:00:00Z", good.key_id, good.signature),
        Checkpoint(10, good.root, good.time, other.key_id, good.signature),
        Checkpoint(10, good.root, good.time, good.key_id, bytes(64)),
    ]
    assert not any(checkpoints.verify_signature(c, signer.public_key) for c in changed)
    assert not checkpoints.verify_signature(good, other.public_key)
    assert checkpoints.verify_signature(other.sign(10, ROOT), other.public_key)


def test_the_json_round_trips_and_bad_shapes_are_refused() -> None:
    good = _signer().sign(7, ROOT)
    assert Checkpoint.from_json(good.to_json()) == good
    assert set(good.as_dict()) == {"size", "root", "time", "key_id", "signature"}
    for broken in ({**good.as_dict(), "size": -1}, {**good.as_dict(), "size": True}, {**good.as_dict(), "root": "zz"},
                   {**good.as_dict(), "signature": "00"}, {**good.as_dict(), "extra": 1}, {"size": 1}):
        with pytest.raises(ValueError):
            Checkpoint.from_dict(broken)
    with pytest.raises(ValueError):
        Checkpoint.from_json("not json")


def test_the_key_is_generated_once_into_the_data_dir(tmp_path: Path) -> None:
    first = checkpoints.load_signing_key(tmp_path / "data", env={})
    path = tmp_path / "data" / checkpoints.KEY_FILE
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600 and len(path.read_text()) == 64
    again = checkpoints.load_signing_key(tmp_path / "data", env={})
    assert checkpoints.raw_public_key(first) == checkpoints.raw_public_key(again)
    configured = checkpoints.load_signing_key(tmp_path / "data", env={checkpoints.KEY_ENV: SEED})
    assert checkpoints.raw_public_key(configured) == _signer().public_key
    for bad in ("12", "zz" * 32):
        with pytest.raises(ValueError):
            checkpoints.load_signing_key(tmp_path, env={checkpoints.KEY_ENV: bad})


def test_the_schedule() -> None:
    schedule = CheckpointSchedule(every_events=100, every_seconds=60)
    assert schedule.due(0, now=0.0)  # the first call signs (or finds) the current size
    schedule.signed(0, now=0.0)
    assert not schedule.due(0, now=1_000.0)  # nothing new: never
    assert not schedule.due(99, now=59.0)
    assert schedule.due(100, now=1.0)  # enough events
    assert schedule.due(1, now=60.0)  # enough time, something new
    schedule.signed(100, now=60.0)
    assert not schedule.due(150, now=100.0) and schedule.due(150, now=120.0)
    with pytest.raises(ValueError):
        CheckpointSchedule(every_events=0)
