-- Issue 16 (proof, R23): per-event hashes, the Merkle tree's perfect subtrees, the
-- sealer's position and signed checkpoints (ledger/proof/).  Edit freely until released, then never.

-- R23 proof tables (ledger/proof).  Written only by the sealer (ledger/proof/sealer.py)
-- and the checkpoint signer (ledger/proof/checkpoints.py); every statement is idempotent.
-- Hashes are raw 32-byte SHA-256 values; see ledger/proof/canonical.py for what they cover.

-- One row per sealed event.  leaf_index = number of events before it in log order
-- (positions may skip numbers; leaf indexes never do).  chain_hash is the event's
-- `hash` on GET /v1/ledger/events.
CREATE TABLE IF NOT EXISTS ledger_event_hashes (
  position    bigint PRIMARY KEY,
  leaf_index  bigint NOT NULL UNIQUE CHECK (leaf_index >= 0),
  entry_hash  bytea  NOT NULL CHECK (length(entry_hash) = 32),
  chain_hash  bytea  NOT NULL CHECK (length(chain_hash) = 32)
);

-- Perfect aligned Merkle subtrees (RFC 9162 hashing): node (level, idx) is the hash of
-- leaves [idx * 2^level, (idx + 1) * 2^level); level 0 holds the leaf hashes.  Written
-- once, when the subtree completes.  Any proof reads O(log n) rows by primary key.
CREATE TABLE IF NOT EXISTS ledger_merkle_nodes (
  level  smallint NOT NULL CHECK (level BETWEEN 0 AND 62),
  idx    bigint   NOT NULL CHECK (idx >= 0),
  hash   bytea    NOT NULL CHECK (length(hash) = 32),
  PRIMARY KEY (level, idx)
);

-- The sealer's tracking position, committed with each batch's rows: exactly once.
-- position = last sealed notification id, size = events sealed (= leaves),
-- chain_hash = chain hash of the last sealed event (32 zero bytes when none).
CREATE TABLE IF NOT EXISTS ledger_proof_seal (
  id          boolean PRIMARY KEY DEFAULT true CHECK (id),
  position    bigint NOT NULL CHECK (position >= 0),
  size        bigint NOT NULL CHECK (size >= 0),
  chain_hash  bytea  NOT NULL CHECK (length(chain_hash) = 32),
  updated_at  timestamptz NOT NULL DEFAULT now()
);
INSERT INTO ledger_proof_seal (id, position, size, chain_hash)
  VALUES (true, 0, 0, '\x0000000000000000000000000000000000000000000000000000000000000000'::bytea)
  ON CONFLICT DO NOTHING;

-- Signed checkpoints: Ed25519 over the message documented in ledger/proof/checkpoints.py.
-- signed_time is the RFC 3339 text exactly as signed.
CREATE TABLE IF NOT EXISTS ledger_checkpoints (
  size         bigint NOT NULL CHECK (size >= 0),
  key_id       text   NOT NULL,
  root         bytea  NOT NULL CHECK (length(root) = 32),
  signed_time  text   NOT NULL,
  signature    bytea  NOT NULL CHECK (length(signature) = 64),
  created_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (size, key_id)
);

-- Hashes, nodes and checkpoints are append-only, like the event store.
CREATE OR REPLACE FUNCTION ledger_proof_refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  RAISE EXCEPTION 'the proof tables are append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END $$;
DROP TRIGGER IF EXISTS ledger_event_hashes_append_only ON ledger_event_hashes;
CREATE TRIGGER ledger_event_hashes_append_only BEFORE UPDATE OR DELETE ON ledger_event_hashes
  FOR EACH ROW EXECUTE FUNCTION ledger_proof_refuse_change();
DROP TRIGGER IF EXISTS ledger_merkle_nodes_append_only ON ledger_merkle_nodes;
CREATE TRIGGER ledger_merkle_nodes_append_only BEFORE UPDATE OR DELETE ON ledger_merkle_nodes
  FOR EACH ROW EXECUTE FUNCTION ledger_proof_refuse_change();
DROP TRIGGER IF EXISTS ledger_checkpoints_append_only ON ledger_checkpoints;
CREATE TRIGGER ledger_checkpoints_append_only BEFORE UPDATE OR DELETE ON ledger_checkpoints
  FOR EACH ROW EXECUTE FUNCTION ledger_proof_refuse_change();
DROP TRIGGER IF EXISTS ledger_event_hashes_no_truncate ON ledger_event_hashes;
CREATE TRIGGER ledger_event_hashes_no_truncate BEFORE TRUNCATE ON ledger_event_hashes
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_proof_refuse_change();
DROP TRIGGER IF EXISTS ledger_merkle_nodes_no_truncate ON ledger_merkle_nodes;
CREATE TRIGGER ledger_merkle_nodes_no_truncate BEFORE TRUNCATE ON ledger_merkle_nodes
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_proof_refuse_change();
DROP TRIGGER IF EXISTS ledger_checkpoints_no_truncate ON ledger_checkpoints;
CREATE TRIGGER ledger_checkpoints_no_truncate BEFORE TRUNCATE ON ledger_checkpoints
  FOR EACH STATEMENT EXECUTE FUNCTION ledger_proof_refuse_change();
