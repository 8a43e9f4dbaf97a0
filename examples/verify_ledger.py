"""An auditor's verifier for the ledger's proofs (R23) that does not trust the
ledger's code: Python's standard library and ``cryptography`` only.

It fetches over HTTP (finance token) the ledger's latest signed checkpoint,
checks its Ed25519 signature with the ledger's public key (pinned in a file at
the first audit), then optionally

* ``--position N``: that the event at position N is in the checkpoint's tree
  (RFC 9162 inclusion proof; the event's canonical bytes are shown);
* ``--saved FILE``: that a checkpoint saved earlier (e.g. last month's) is a
  prefix of the latest one (RFC 9162 consistency proof): nothing it covered
  was changed, removed or reordered since;
* ``--save FILE``: keeps the latest checkpoint for next time.

Exit status 0 when every check passed, 1 (with the reason) otherwise.
docs/audit.md has the month-end procedure.  Endpoints used::

    GET /v1/ledger/checkpoints/public-key  {"algorithm": "Ed25519", "key_id", "public_key": hex}
    GET /v1/ledger/checkpoints/latest      {"size", "root", "time", "key_id", "signature"}
    GET /v1/ledger/proofs/inclusion?position=&size=
                                           {"position", "leaf_index", "size", "leaf_hash", "encoding", "path"}
    GET /v1/ledger/proofs/consistency?from_size=&to_size=   {"from_size", "to_size", "path"}

    python examples/verify_ledger.py --url https://ledger.example.com --token-file finance.token \\
        --public-key audit/ledger-key.json --saved audit/2025-01.json --save audit/2025-02.json
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import struct
import sys
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey


class VerificationFailed(Exception):
    """A check did not pass; the message says which and why."""


def _sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def _node(left: bytes, right: bytes) -> bytes:
    return _sha256(b"\x01" + left + right)


def _hex(value: Any, size: int, what: str) -> bytes:
    try:
        raw = bytes.fromhex(value)
    except (TypeError, ValueError):
        raise VerificationFailed(f"{what} is not hex") from None
    if len(raw) != size:
        raise VerificationFailed(f"{what} is not {size} bytes")
    return raw


# --- checkpoints: "ledger-checkpoint-v1\n{size}\n{root hex}\n{time}\n", Ed25519 ---------------


def load_public_key(document: dict[str, Any]) -> bytes:
    """The raw key of a public-key document, after checking that its key_id
    is the first 8 bytes of SHA-256 of the key."""
    if document.get("algorithm") != "Ed25519":
        raise VerificationFailed("the public key is not an Ed25519 key")
    raw = _hex(document.get("public_key"), 32, "public_key")
    if document.get("key_id") != _sha256(raw)[:8].hex():
        raise VerificationFailed("the public key's key_id does not match the key")
    return raw


def check_signature(checkpoint: dict[str, Any], public_key: bytes) -> None:
    size, signed_time = checkpoint.get("size"), checkpoint.get("time")
    if not isinstance(size, int) or size < 0 or not isinstance(signed_time, str):
        raise VerificationFailed("the checkpoint has no valid size and time")
    root = _hex(checkpoint.get("root"), 32, "root")
    if checkpoint.get("key_id") != _sha256(public_key)[:8].hex():
        raise VerificationFailed(f"the checkpoint is signed by key {checkpoint.get('key_id')}, not the pinned key")
    message = f"ledger-checkpoint-v1\n{size}\n{root.hex()}\n{signed_time}\n".encode()
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(
            _hex(checkpoint.get("signature"), 64, "signature"), message)
    except InvalidSignature:
        raise VerificationFailed(f"the signature of the checkpoint of size {size} is not valid") from None


# --- RFC 9162 §2.1.3.2: inclusion -------------------------------------------------------------


def decode_event(encoding: bytes) -> dict[str, Any]:
    """The fields of the ledger's canonical event encoding (version "LEV1")."""
    if len(encoding) < 44 or encoding[:4] != b"LEV1":
        raise VerificationFailed("the event encoding is not LEV1")
    position, raw_id, version, topic_length = struct.unpack_from(">Q16sQI", encoding, 4)
    topic_end = 40 + topic_length
    (state_length,) = struct.unpack_from(">I", encoding, topic_end)
    state = encoding[topic_end + 4:]
    if len(state) != state_length:
        raise VerificationFailed("the event encoding's lengths do not add up")
    return {"position": position, "aggregate_id": str(uuid.UUID(bytes=raw_id)), "aggregate_version": version,
            "topic": encoding[40:topic_end].decode(), "state": state.decode(errors="replace")}


def check_inclusion(proof: dict[str, Any], checkpoint: dict[str, Any]) -> dict[str, Any]:
    """The proven event's fields; raises unless ``proof`` proves the event in
    the (already signature-checked) ``checkpoint``."""
    index, size = proof.get("leaf_index"), proof.get("size")
    if size != checkpoint["size"] or not isinstance(index, int) or not 0 <= index < size:
        raise VerificationFailed("the inclusion proof is not for the checkpoint's tree")
    event = {}
    leaf = _hex(proof.get("leaf_hash"), 32, "leaf_hash")
    if proof.get("encoding") is not None:
        encoding = base64.b64decode(proof["encoding"], validate=True)
        event = decode_event(encoding)
        if event["position"] != proof.get("position"):
            raise VerificationFailed("the proven event is not at the position asked for")
        if _sha256(b"\x00" + encoding) != leaf:
            raise VerificationFailed("the leaf hash is not the hash of the event's encoding")
    fn, sn, result = index, size - 1, leaf
    for value in proof.get("path", []):
        sibling = _hex(value, 32, "path entry")
        if sn == 0:
            raise VerificationFailed("the inclusion path is too long")
        if fn % 2 == 1 or fn == sn:
            result = _node(sibling, result)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            result = _node(result, sibling)
        fn, sn = fn // 2, sn // 2
    if sn != 0 or result != _hex(checkpoint["root"], 32, "root"):
        raise VerificationFailed(f"position {proof.get('position')} is NOT proven in the checkpoint's tree")
    return event


# --- RFC 9162 §2.1.4.2: consistency -----------------------------------------------------------


def check_consistency(proof: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> None:
    """Raises unless ``proof`` shows ``old``'s tree is a prefix of ``new``'s
    (both signature-checked already)."""
    first, second = old["size"], new["size"]
    first_hash, second_hash = _hex(old["root"], 32, "old root"), _hex(new["root"], 32, "new root")
    if proof.get("from_size") != first or proof.get("to_size") != second:
        raise VerificationFailed("the consistency proof is not for these two checkpoints")
    path = [_hex(value, 32, "path entry") for value in proof.get("path", [])]
    if first > second:
        raise VerificationFailed(f"the log shrank from {first} to {second} events")
    if first == second:
        if path or first_hash != second_hash:
            raise VerificationFailed("two checkpoints of the same size with different roots")
        return
    if first == 0:
        return
    if not path:
        raise VerificationFailed("the consistency proof is empty")
    if first & (first - 1) == 0:
        path.insert(0, first_hash)
    fn, sn = first - 1, second - 1
    while fn % 2 == 1:
        fn, sn = fn // 2, sn // 2
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise VerificationFailed("the consistency path is too long")
        if fn % 2 == 1 or fn == sn:
            fr, sr = _node(c, fr), _node(c, sr)
            while fn % 2 == 0 and fn != 0:
                fn, sn = fn // 2, sn // 2
        else:
            sr = _node(sr, c)
        fn, sn = fn // 2, sn // 2
    if sn != 0 or fr != first_hash or sr != second_hash:
        raise VerificationFailed(
            f"the checkpoint of {first} events signed at {old.get('time')} is NOT a prefix of today's log of "
            f"{second}: events it covered were changed, removed or reordered")


# --- HTTP and the command line ----------------------------------------------------------------


def fetch(base_url: str, path: str, token: str, **query: int) -> dict[str, Any]:
    url = base_url.rstrip("/") + path + ("?" + urllib.parse.urlencode(query) if query else "")
    if not url.startswith(("https://", "http://")):
        raise VerificationFailed(f"not an HTTP URL: {url}")
    headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - http(s) checked above
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - http(s) checked above
            return dict(json.load(response))
    except OSError as error:
        raise VerificationFailed(f"GET {url} failed: {error}") from error


def run(args: argparse.Namespace) -> list[str]:
    """Every check in order; returns the lines to print; raises at the first failure."""
    token = Path(args.token_file).read_text().strip() if args.token_file else args.token
    lines = []
    published = fetch(args.url, "/v1/ledger/checkpoints/public-key", token)
    key_file = Path(args.public_key)
    if key_file.exists():
        pinned = json.loads(key_file.read_text())
        if pinned != published:
            raise VerificationFailed(f"the ledger now publishes key {published.get('key_id')}, not the pinned "
                                     f"{pinned.get('key_id')}: ask the operator why before trusting it")
    else:
        pinned = published
        key_file.write_text(json.dumps(published, indent=2) + "\n")
        lines.append(f"NOTE first use: pinned public key {published.get('key_id')} in {key_file}")
    public_key = load_public_key(pinned)

    latest = fetch(args.url, "/v1/ledger/checkpoints/latest", token)
    check_signature(latest, public_key)
    lines.append(f"OK   signature: checkpoint of {latest['size']} events, root {latest['root']}, "
                 f"signed {latest['time']} by key {latest['key_id']}")
    if args.position is not None:
        proof = fetch(args.url, "/v1/ledger/proofs/inclusion", token, position=args.position, size=latest["size"])
        event = check_inclusion(proof, latest)
        lines.append(f"OK   inclusion: position {args.position} is leaf {proof['leaf_index']} of the checkpoint's "
                     f"tree: {event.get('topic')} of {event.get('aggregate_id')} v{event.get('aggregate_version')}")
    if args.saved:
        saved = json.loads(Path(args.saved).read_text())
        check_signature(saved, public_key)
        proof = fetch(args.url, "/v1/ledger/proofs/consistency", token,
                      from_size=saved["size"], to_size=latest["size"])
        check_consistency(proof, saved, latest)
        lines.append(f"OK   consistency: the checkpoint of {saved['size']} events signed {saved['time']} is a "
                     f"prefix of today's {latest['size']}")
    if args.save:
        Path(args.save).write_text(json.dumps(latest, indent=2) + "\n")
        lines.append(f"OK   saved the latest checkpoint to {args.save}")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", required=True, help="the ledger's base URL")
    parser.add_argument("--token", default="", help="a finance API token (or --token-file)")
    parser.add_argument("--token-file", help="a file holding the finance API token")
    parser.add_argument("--public-key", required=True,
                        help="pinned public-key JSON; written from the ledger on first use")
    parser.add_argument("--position", type=int, help="prove that the event at this position is in the log")
    parser.add_argument("--saved", help="a checkpoint JSON saved earlier: prove it is a prefix of today's log")
    parser.add_argument("--save", help="write the latest checkpoint JSON here")
    args = parser.parse_args(argv)
    try:
        lines = run(args)
    except (VerificationFailed, KeyError, ValueError, json.JSONDecodeError) as error:
        print(f"FAIL {error}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
