"""Proof fixtures: ``fresh_ledger`` (migrated, so with the proof tables of
migration 0008), a signer with a key of its own, and a sealer."""

from __future__ import annotations

import pytest

from ledger.container import Ledger
from ledger.proof import checkpoints
from ledger.proof.sealer import Sealer


@pytest.fixture
def proof_ledger(fresh_ledger: Ledger) -> Ledger:
    return fresh_ledger


@pytest.fixture
def signer(proof_ledger: Ledger) -> checkpoints.CheckpointSigner:
    key = checkpoints.load_signing_key(proof_ledger.settings.data_dir, env={})
    return checkpoints.CheckpointSigner(key)


@pytest.fixture
def sealer(proof_ledger: Ledger) -> Sealer:
    """Small batches (7 events), no periodic checkpoints (tests sign their own)."""
    return Sealer(proof_ledger.db, proof_ledger.store.recorder, proof_ledger.database_url, batch_size=7)
