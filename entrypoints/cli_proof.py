"""``ledger verify`` and ``ledger checkpoint``: the proof's commands (R23,
docs/audit.md), registered on the console script by ``entrypoints.cli``.

Exit codes as every ``ledger`` command (``entrypoints.cli.LedgerGroup``): 0 the
log is intact / the checkpoint was printed, 1 a check failed (the first bad
position is named) or the work could not be done, 2 a usage error (a wrong
option, an unreadable FILE, a wrong ``LEDGER_CHECKPOINT_KEY``).

The trusted key is the public key of the signing key this deployment uses
(``LEDGER_CHECKPOINT_KEY`` or ``<data dir>/checkpoint.key``): run ``ledger
verify`` with the same configuration as ``ledger run``.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from ledger.config import Settings


def _settings_and_url() -> tuple[Settings, str]:
    from entrypoints.bootstrap import database_url
    from ledger.config import Settings
    from ledger.migrations import SchemaNotReady, check

    settings = Settings.from_env()
    url = database_url(settings)
    try:
        check(url)
    except SchemaNotReady as exc:
        raise click.ClickException(str(exc)) from exc
    return settings, url


def _signing_key(settings: Settings) -> Ed25519PrivateKey:
    """The configured key; a malformed ``LEDGER_CHECKPOINT_KEY`` is a usage error (exit 2)."""
    from ledger.config import ConfigurationError
    from ledger.proof import checkpoints

    try:
        return checkpoints.load_signing_key(settings.data_dir)
    except ValueError as exc:
        raise ConfigurationError(f"invalid configuration:\n  {exc}") from None


@click.command("verify")
@click.option("--checkpoint", "checkpoint_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="a checkpoint JSON saved earlier: check that today's log extends it")
def verify_command(checkpoint_file: Path | None) -> None:
    """Recompute every event's hash, the chain and the Merkle tree from the
    stored events and compare them with the sealed hashes and every signed
    checkpoint.  Exit 0 when intact (one summary line), 1 naming the first bad
    position.  With --checkpoint FILE: FILE (e.g. an auditor's month-end copy)
    is validly signed and its tree is a prefix of today's log."""
    from ledger.proof import checkpoints
    from ledger.proof.verify import verify_checkpoint, verify_log

    settings, url = _settings_and_url()
    trusted = [checkpoints.raw_public_key(_signing_key(settings))]
    if checkpoint_file is not None:
        check = verify_checkpoint(url, checkpoint_file.read_text(), trusted_keys=trusted)
        if not check.ok:
            click.echo(f"FAIL {check}", err=True)
            sys.exit(1)
        click.echo(f"OK {check}")
        return
    report = verify_log(url, trusted_keys=trusted)
    if not report.ok:
        click.echo(str(report), err=True)
        sys.exit(1)
    click.echo(str(report))


@click.command("checkpoint")
def checkpoint_command() -> None:
    """Seal every stored event, then sign a checkpoint of the whole log (or
    return the one already signed for that size) and print its JSON alone on
    stdout: `ledger checkpoint > month-end.json`."""
    from entrypoints.bootstrap import bootstrap
    from ledger.proof import checkpoints
    from ledger.proof.sealer import Sealer

    settings, url = _settings_and_url()
    signer = checkpoints.CheckpointSigner(_signing_key(settings))
    ledger = bootstrap(settings, url=url, pool_size=1)
    try:
        signer.clock = ledger.clock
        Sealer(ledger.db, ledger.store.recorder, ledger.database_url).catch_up()
        with ledger.db.transaction() as conn:
            checkpoint = checkpoints.produce(conn, signer)
    finally:
        ledger.close()
    click.echo(checkpoint.to_json(), nl=False)
    click.echo(f"checkpoint of {checkpoint.size} events signed {checkpoint.time} by key {checkpoint.key_id}",
               err=True)


def register(main: click.Group) -> None:
    """Add ``verify`` and ``checkpoint`` to the ``ledger`` group (unless present)."""
    for command in (verify_command, checkpoint_command):
        if command.name not in main.commands:
            main.add_command(command)
