"""``examples/verify_ledger.py`` (the auditor's verifier that imports nothing
from the project) on proof JSON produced by ``ledger.proof`` from a real log:
its checks accept true proofs and refuse tampered ones, and the command run
against a stand-in HTTP server (the API endpoints are wired separately) exits
0, or 1 once the log was edited under a saved checkpoint."""

from __future__ import annotations

import ast
import copy
import importlib.util
import json
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from ledger.container import Ledger
from ledger.proof import checkpoints, queries
from ledger.proof.checkpoints import Checkpoint, CheckpointSigner
from ledger.proof.sealer import Sealer
from tests.integration.proof import tampering

SCRIPT = Path(__file__).resolve().parents[3] / "examples" / "verify_ledger.py"


@pytest.fixture(scope="module")
def script() -> ModuleType:
    spec = importlib.util.spec_from_file_location("verify_ledger", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["verify_ledger"] = module
    spec.loader.exec_module(module)
    return module


def test_the_script_imports_only_the_standard_library_and_cryptography() -> None:
    tree = ast.parse(SCRIPT.read_text())
    names = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    names |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    tops = {name.split(".")[0] for name in names}
    assert tops - sys.stdlib_module_names == {"cryptography"}


@pytest.fixture
def world(proof_ledger: Ledger, sealer: Sealer, signer: CheckpointSigner) -> dict[str, Any]:
    """A sealed log with a checkpoint at 21 events (last month's) and one at 50."""
    positions = tampering.write_events(proof_ledger, 21)
    sealer.catch_up()
    with proof_ledger.db.transaction() as conn:
        old = checkpoints.produce(conn, signer).as_dict()
    positions = tampering.write_events(proof_ledger, 29)
    sealer.catch_up()
    with proof_ledger.db.transaction() as conn:
        new = checkpoints.produce(conn, signer).as_dict()
    key = checkpoints.public_key_document(signer.private_key)
    return {"positions": positions, "old": old, "new": new, "key": key}


def test_true_proofs_pass_and_tampered_ones_fail(proof_ledger: Ledger, world: dict[str, Any],
                                                  script: ModuleType) -> None:
    failed = script.VerificationFailed
    raw_key = script.load_public_key(world["key"])
    old, new = world["old"], world["new"]
    script.check_signature(old, raw_key)
    script.check_signature(new, raw_key)
    with proof_ledger.db.transaction() as conn:
        inclusions = [queries.inclusion_proof(conn, p, new["size"]) for p in world["positions"]]
        consistency = queries.consistency_proof(conn, old["size"], new["size"])
    for proof in inclusions:
        event = script.check_inclusion(proof, new)
        assert event["position"] == proof["position"] and event["topic"].startswith("ledger.domain.organizer")
    script.check_consistency(consistency, old, new)

    def refused(check: Any, *args: Any) -> None:
        with pytest.raises(failed):
            check(*args)

    for field, value in (("size", new["size"] + 1), ("root", "00" * 32), ("time", "2000-01-01T00:00:00Z")):
        refused(script.check_signature, {**new, field: value}, raw_key)
    refused(script.load_public_key, {**world["key"], "key_id": "00" * 8})
    proof = inclusions[7]
    refused(script.check_inclusion, {**proof, "path": [*proof["path"][:-1], "00" * 32]}, new)
    refused(script.check_inclusion, {**proof, "leaf_index": proof["leaf_index"] + 1}, new)
    refused(script.check_inclusion, {**proof, "position": proof["position"] + 1}, new)
    refused(script.check_inclusion, proof, old)  # another tree
    forged = copy.deepcopy(proof)
    forged["encoding"] = forged["encoding"][:-4] + ("AAAA" if forged["encoding"][-4:] != "AAAA" else "BBBB")
    refused(script.check_inclusion, forged, new)
    refused(script.check_consistency, {**consistency, "path": consistency["path"][1:]}, old, new)
    refused(script.check_consistency, consistency, {**old, "root": new["root"]}, new)
    refused(script.check_consistency, consistency, old, {**new, "root": old["root"]})


class _Api(BaseHTTPRequestHandler):
    """Stands in for the four endpoints until they are wired into the API."""

    ledger: Ledger
    key: dict[str, Any]

    def do_GET(self) -> None:
        url = urlparse(self.path)
        query = {k: int(v[0]) for k, v in parse_qs(url.query).items()}
        assert self.headers["Authorization"] == "Bearer finance-token"
        with self.ledger.db.transaction() as conn:
            body = {
                "/v1/ledger/checkpoints/public-key": lambda: self.key,
                "/v1/ledger/checkpoints/latest": lambda: checkpoints.latest(conn).as_dict(),  # type: ignore[union-attr]
                "/v1/ledger/proofs/inclusion": lambda: queries.inclusion_proof(conn, **query),
                "/v1/ledger/proofs/consistency": lambda: queries.consistency_proof(conn, **query),
            }[url.path]()
        data = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def api(proof_ledger: Ledger, world: dict[str, Any]) -> Iterator[str]:
    handler = type("Api", (_Api,), {"ledger": proof_ledger, "key": world["key"]})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_the_month_end_run(
    proof_ledger: Ledger, world: dict[str, Any], api: str, script: ModuleType, tmp_path: Path,
    signer: CheckpointSigner, sealer: Sealer, capsys: pytest.CaptureFixture[str],
) -> None:
    saved = tmp_path / "2025-01.json"
    saved.write_text(json.dumps(world["old"]))
    key_file = tmp_path / "ledger-key.json"
    common = ["--url", api, "--token", "finance-token", "--public-key", str(key_file)]
    argv = [*common, "--saved", str(saved), "--position", str(world["positions"][3]),
            "--save", str(tmp_path / "2025-02.json")]
    assert script.main(argv) == 0
    out = capsys.readouterr().out
    assert "pinned public key" in out and "OK   inclusion" in out and "OK   consistency" in out
    assert Checkpoint.from_json((tmp_path / "2025-02.json").read_text()).size == world["new"]["size"]

    # someone edits an event covered by last month's checkpoint and re-seals the log
    tampering.flip_a_byte(proof_ledger, world["positions"][5])
    tampering.rewrite_proof_tables(proof_ledger)
    Sealer(proof_ledger.db, proof_ledger.store.recorder, proof_ledger.database_url).catch_up()
    tampering.write_events(proof_ledger, 1)
    sealer.catch_up()
    with proof_ledger.db.transaction() as conn:
        checkpoints.produce(conn, signer)  # a new, validly signed checkpoint of the edited log
    assert script.main([*common, "--saved", str(saved)]) == 1
    assert "is NOT a prefix" in capsys.readouterr().err
