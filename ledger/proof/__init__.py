"""Proof that no stored event was changed, removed or reordered (R23).

* ``canonical`` — the bytes of one stored event that every hash covers;
* ``merkle`` — RFC 9162 tree hashes, inclusion and consistency proofs (pure);
* ``sealer`` — the log follower that hashes, chains and tree-stores new events;
* ``checkpoints`` — Ed25519 signed statements of the tree's root;
* ``queries`` — the proof tables read: proofs, chain hashes, the sealed size;
* ``verify`` (with ``snapshot_reader``) — recomputes everything from the stored events.

The tables are in ``ledger/migrations/0008_proof.sql``; docs/audit.md is the auditor's side.
"""
