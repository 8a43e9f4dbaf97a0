"""The sealer on real PostgreSQL: follows the log (woken by NOTIFY) and seals
within a second, signs checkpoints on schedule, seals every event exactly once
(concurrent sealers, restarts, stale batches), and serves proofs that verify."""

from __future__ import annotations

import threading
import time

import psycopg

from ledger.container import Ledger
from ledger.errors import LedgerError
from ledger.log_follower import read_batch
from ledger.proof import checkpoints, merkle, queries
from ledger.proof.checkpoints import CheckpointSchedule, CheckpointSigner
from ledger.proof.sealer import Sealer
from ledger.proof.verify import verify_log
from tests.integration.proof import tampering
from tests.support.waiting import wait_until


def _counts(ledger: Ledger) -> tuple[int, int, int]:
    with psycopg.connect(ledger.database_url) as conn:
        row = conn.execute(
            "SELECT (SELECT count(*) FROM ledger_event_hashes), (SELECT count(*) FROM ledger_merkle_nodes),"
            " (SELECT size FROM ledger_proof_seal)"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1]), int(row[2])


def _nodes_for(size: int) -> int:
    """Perfect subtrees stored for ``size`` leaves: 2·size − popcount(size)."""
    return 2 * size - bin(size).count("1")


def test_the_sealer_follows_the_log_and_signs_on_schedule(proof_ledger: Ledger, signer: CheckpointSigner) -> None:
    sealer = Sealer(proof_ledger.db, proof_ledger.store.recorder, proof_ledger.database_url, signer=signer,
                    schedule=CheckpointSchedule(every_events=10, every_seconds=0.5))
    stop = threading.Event()
    thread = threading.Thread(target=sealer.run, args=(stop,), daemon=True)
    thread.start()
    try:
        delays = []
        for _ in range(5):
            [position] = tampering.write_events(proof_ledger, 1)[-1:]
            written = time.monotonic()
            with psycopg.connect(proof_ledger.database_url, autocommit=True) as conn:

                def sealed(conn: psycopg.Connection = conn, position: int = position) -> dict[int, str]:
                    return queries.chain_hashes(conn, [position])

                wait_until(sealed, timeout=5, what="seal")
            delays.append(time.monotonic() - written)
        assert max(delays) < 1.0, delays
        tampering.write_events(proof_ledger, 23)
        with proof_ledger.db.transaction() as conn:
            wait_until(lambda: queries.seal_state(conn).size == 28, what="all sealed")
        # the last events are signed at most every_seconds after they were sealed (idle wake-ups)
        with psycopg.connect(proof_ledger.database_url, autocommit=True) as conn:
            latest = wait_until(lambda: (c := checkpoints.latest(conn)) and c.size == 28 and c, timeout=3,
                                what="checkpoint of everything")
        assert checkpoints.verify_signature(latest, signer.public_key)
        assert sealer.follower is not None and not sealer.follower.health.failing
    finally:
        stop.set()
        thread.join(timeout=2)
    assert not thread.is_alive()
    assert _counts(proof_ledger) == (28, _nodes_for(28), 28)
    report = verify_log(proof_ledger.database_url, trusted_keys=[signer.public_key])
    assert report.ok and report.checkpoints >= 2, report


def test_concurrent_sealers_seal_each_event_once(proof_ledger: Ledger, signer: CheckpointSigner) -> None:
    tampering.write_events(proof_ledger, 60)
    sealers = [Sealer(proof_ledger.db, proof_ledger.store.recorder, proof_ledger.database_url, batch_size=b)
               for b in (3, 5, 8)]
    errors: list[BaseException] = []

    def seal(sealer: Sealer) -> None:
        try:
            sealer.catch_up()
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=seal, args=(s,)) for s in sealers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert _counts(proof_ledger) == (60, _nodes_for(60), 60)
    assert verify_log(proof_ledger.database_url, trusted_keys=[signer.public_key]).ok


def test_a_restarted_sealer_continues_the_same_tree(proof_ledger: Ledger, signer: CheckpointSigner) -> None:
    tampering.write_events(proof_ledger, 13)
    first = Sealer(proof_ledger.db, proof_ledger.store.recorder, proof_ledger.database_url, batch_size=4)
    assert first.catch_up() == 13
    tampering.write_events(proof_ledger, 9)
    # a stale batch (read before another sealer moved on) writes nothing
    stale = read_batch(proof_ledger.store.recorder, 0, 4)
    second = Sealer(proof_ledger.db, proof_ledger.store.recorder, proof_ledger.database_url, batch_size=4)
    assert second.resume() == 13
    assert second.consume(stale) == 13
    assert second.catch_up() == 22
    assert _counts(proof_ledger) == (22, _nodes_for(22), 22)
    report = verify_log(proof_ledger.database_url, trusted_keys=[signer.public_key])
    assert report.ok
    with proof_ledger.db.transaction() as conn:
        assert queries.tree_root(conn, 22) == report.root


def test_proofs_from_the_tables_verify(proof_ledger: Ledger, sealer: Sealer, signer: CheckpointSigner) -> None:
    positions = tampering.write_events(proof_ledger, 8)
    tampering.skip_a_position(proof_ledger)
    positions = tampering.write_events(proof_ledger, 29)
    sealer.catch_up()
    with proof_ledger.db.transaction() as conn:
        old = checkpoints.produce(conn, signer)
    positions = tampering.write_events(proof_ledger, 40)
    sealer.catch_up()
    with proof_ledger.db.transaction() as conn:
        new = checkpoints.produce(conn, signer)
        assert checkpoints.produce(conn, signer) == new  # same size: the stored one
        assert checkpoints.latest(conn) == new
        for index, position in enumerate(positions):
            proof = queries.inclusion_proof(conn, position, new.size)
            assert proof["leaf_index"] == index and proof["size"] == new.size
            path = [bytes.fromhex(h) for h in proof["path"]]
            assert merkle.verify_inclusion(bytes.fromhex(proof["leaf_hash"]), index, new.size, path, new.root)
        consistency = queries.consistency_proof(conn, old.size, new.size)
        path = [bytes.fromhex(h) for h in consistency["path"]]
        assert merkle.verify_consistency(old.size, new.size, old.root, new.root, path)
        for bad in ((positions[-1], old.size), (positions[0], new.size + 1), (10_000, new.size)):
            try:
                queries.inclusion_proof(conn, *bad)
            except LedgerError as error:
                assert error.status in (404, 409)
            else:
                raise AssertionError(f"a proof for {bad}")
