"""R23 tamper tests on real PostgreSQL: events written through the service,
sealed, then edited as a superuser bypassing the append-only trigger.  Each
edit is found by ``verify_log`` at the right position, and a checkpoint saved
before the edit fails ``verify_checkpoint`` when the edit is inside it."""

from __future__ import annotations

import hashlib
import threading

import psycopg
import pytest

from ledger.container import Ledger
from ledger.proof import canonical, checkpoints, queries
from ledger.proof.checkpoints import Checkpoint, CheckpointSigner
from ledger.proof.sealer import Sealer
from ledger.proof.verify import verify_checkpoint, verify_log
from tests.integration.proof import tampering


def _checkpoint(ledger: Ledger, signer: CheckpointSigner) -> Checkpoint:
    with ledger.db.transaction() as conn:
        return checkpoints.produce(conn, signer)


def _verify(ledger: Ledger, signer: CheckpointSigner):  # type: ignore[no-untyped-def]
    return verify_log(ledger.database_url, trusted_keys=[signer.public_key], batch_size=5)


@pytest.fixture
def sealed_log(proof_ledger: Ledger, sealer: Sealer, signer: CheckpointSigner) -> tuple[list[int], Checkpoint]:
    """30 events with a gap in the positions, sealed; a checkpoint of all of them
    saved "outside" (the auditor's copy), as JSON."""
    positions = tampering.write_events(proof_ledger, 12)
    tampering.skip_a_position(proof_ledger)
    positions = tampering.write_events(proof_ledger, 18)
    assert len(positions) == 30 and positions[-1] == 31  # one position skipped
    assert sealer.catch_up() == 30
    saved = Checkpoint.from_json(_checkpoint(proof_ledger, signer).to_json())
    return positions, saved


def test_an_intact_log_verifies_and_its_hashes_are_the_chain(
    proof_ledger: Ledger, sealed_log: tuple[list[int], Checkpoint], signer: CheckpointSigner,
) -> None:
    positions, saved = sealed_log
    report = _verify(proof_ledger, signer)
    assert report.ok, report.problem
    assert (report.events, report.sealed, report.checkpoints) == (30, 30, 1)
    assert report.root == saved.root
    check = verify_checkpoint(proof_ledger.database_url, saved.to_json(), trusted_keys=[signer.public_key])
    assert check.ok, check.detail
    # the `hash` of log items: SHA-256(previous || SHA-256(encoding)), from 32 zero bytes
    with psycopg.connect(proof_ledger.database_url) as conn:
        rows = conn.execute("SELECT notification_id, originator_id, originator_version, topic, state "
                            "FROM ledger_events ORDER BY notification_id").fetchall()
        stored = queries.chain_hashes(conn, positions)
    chain = bytes(32)
    for position, originator, version, topic, state in rows:
        encoding = canonical.encode(position, originator, version, topic, bytes(state))
        chain = hashlib.sha256(chain + hashlib.sha256(encoding).digest()).digest()
        assert stored[position] == chain.hex()


def test_one_changed_byte_is_found_at_its_position(
    proof_ledger: Ledger, sealed_log: tuple[list[int], Checkpoint], signer: CheckpointSigner,
) -> None:
    positions, saved = sealed_log
    tampering.flip_a_byte(proof_ledger, positions[17])
    problem = _verify(proof_ledger, signer).problem
    assert problem is not None and (problem.kind, problem.position) == ("changed", positions[17])
    assert "ledger-verify-read" not in {t.name for t in threading.enumerate()}  # the reader ended with the pass
    check = verify_checkpoint(proof_ledger.database_url, saved, trusted_keys=[signer.public_key])
    assert not check.ok and "not extend" in check.detail
    assert check.problem is not None and check.problem.position == positions[17]


def test_a_deleted_event_is_found_at_its_position(
    proof_ledger: Ledger, sealed_log: tuple[list[int], Checkpoint], signer: CheckpointSigner,
) -> None:
    positions, saved = sealed_log
    tampering.delete_event(proof_ledger, positions[5])
    problem = _verify(proof_ledger, signer).problem
    assert problem is not None and (problem.kind, problem.position) == ("missing", positions[5])
    assert not verify_checkpoint(proof_ledger.database_url, saved, trusted_keys=[signer.public_key]).ok


def test_two_swapped_events_are_found_at_the_first(
    proof_ledger: Ledger, sealed_log: tuple[list[int], Checkpoint], signer: CheckpointSigner,
) -> None:
    positions, saved = sealed_log
    tampering.swap_events(proof_ledger, positions[8], positions[20])
    problem = _verify(proof_ledger, signer).problem
    assert problem is not None and (problem.kind, problem.position) == ("changed", positions[8])
    assert not verify_checkpoint(proof_ledger.database_url, saved, trusted_keys=[signer.public_key]).ok


def test_a_truncated_tail_with_a_forged_append_is_found(
    proof_ledger: Ledger, sealed_log: tuple[list[int], Checkpoint], signer: CheckpointSigner,
) -> None:
    """Cut the last 6 events, then append a forged one at the first cut position
    (it looks like the original there) and one through the normal write path."""
    positions, saved = sealed_log
    cut = positions[24]
    tampering.truncate_from(proof_ledger, cut)
    tampering.forge_at(proof_ledger, cut, like=positions[23])
    problem = _verify(proof_ledger, signer).problem
    assert problem is not None and (problem.kind, problem.position) == ("changed", cut)
    assert not verify_checkpoint(proof_ledger.database_url, saved, trusted_keys=[signer.public_key]).ok

    tampering.delete_event(proof_ledger, cut)
    tampering.write_events(proof_ledger, 1)  # a new, real-looking event at a fresh position
    problem = _verify(proof_ledger, signer).problem
    assert problem is not None and (problem.kind, problem.position) == ("missing", cut)
    check = verify_checkpoint(proof_ledger.database_url, saved, trusted_keys=[signer.public_key])
    assert not check.ok


def test_rewritten_proof_tables_are_caught_by_the_signed_checkpoints(
    proof_ledger: Ledger, sealer: Sealer, signer: CheckpointSigner,
) -> None:
    """The thorough attacker edits an event *and* re-seals the edited log (but
    cannot sign): the stored checkpoints disagree; the position named is the
    first event after the last checkpoint that still matches."""
    positions = tampering.write_events(proof_ledger, 10)
    sealer.catch_up()
    _checkpoint(proof_ledger, signer)  # size 10
    positions = tampering.write_events(proof_ledger, 10)
    sealer.catch_up()
    saved = _checkpoint(proof_ledger, signer)  # size 20
    tampering.flip_a_byte(proof_ledger, positions[14])
    tampering.rewrite_proof_tables(proof_ledger)
    assert Sealer(proof_ledger.db, proof_ledger.store.recorder, proof_ledger.database_url).catch_up() == 20
    problem = _verify(proof_ledger, signer).problem
    assert problem is not None and (problem.kind, problem.position) == ("checkpoint", positions[10])
    assert "size 10" in problem.detail
    check = verify_checkpoint(proof_ledger.database_url, saved, trusted_keys=[signer.public_key])
    assert not check.ok and check.problem == problem


def test_an_edit_after_a_saved_checkpoint_leaves_that_checkpoint_a_prefix(
    proof_ledger: Ledger, sealed_log: tuple[list[int], Checkpoint], sealer: Sealer, signer: CheckpointSigner,
) -> None:
    _, saved = sealed_log
    later = tampering.write_events(proof_ledger, 5)
    sealer.catch_up()
    tampering.flip_a_byte(proof_ledger, later[-2])
    assert verify_checkpoint(proof_ledger.database_url, saved, trusted_keys=[signer.public_key]).ok
    problem = _verify(proof_ledger, signer).problem
    assert problem is not None and (problem.kind, problem.position) == ("changed", later[-2])


def test_forged_and_foreign_checkpoints_are_refused(
    proof_ledger: Ledger, sealed_log: tuple[list[int], Checkpoint], signer: CheckpointSigner,
) -> None:
    _, saved = sealed_log
    forged = Checkpoint(saved.size, bytes(32), saved.time, saved.key_id, saved.signature)
    check = verify_checkpoint(proof_ledger.database_url, forged, trusted_keys=[signer.public_key])
    assert not check.ok and "signature" in check.detail
    problem = verify_log(proof_ledger.database_url, trusted_keys=[signer.public_key], extra=[forged]).problem
    assert problem is not None and problem.kind == "signature"
    other = CheckpointSigner(checkpoints.load_signing_key(proof_ledger.settings.data_dir, env={
        checkpoints.KEY_ENV: "42" * 32}))
    foreign = other.sign(saved.size, saved.root)
    assert not verify_checkpoint(proof_ledger.database_url, foreign, trusted_keys=[signer.public_key]).ok
    assert verify_checkpoint(proof_ledger.database_url, foreign, trusted_keys=[other.public_key]).ok
    bigger = other.sign(saved.size + 1, saved.root)
    check = verify_checkpoint(proof_ledger.database_url, bigger, trusted_keys=[other.public_key])
    assert not check.ok and "fewer" in check.detail
    assert not verify_checkpoint(proof_ledger.database_url, "{}", trusted_keys=[signer.public_key]).ok
