"""Keys generated once into the data dir (``secret.key``, ``checkpoint.key``).

Every process of a ledger must agree on the same key, and several may start at
the same moment: the file is created with O_EXCL (one writer wins) and mode
0600, and a process that lost the race reads it back, waiting a bounded time
(50 × 10 ms) for the winner to finish writing.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path

#: Attempts × pause while another process is still writing the file.
READ_ATTEMPTS = 50
READ_PAUSE = 0.01


def generated_key(path: Path, *, size: int = 32) -> bytes:
    """``size`` random bytes kept hex-encoded in ``path``, created on first use."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(size))
    for _ in range(READ_ATTEMPTS):
        text = path.read_text().strip()
        if len(text) == 2 * size:
            return bytes.fromhex(text)
        time.sleep(READ_PAUSE)
    raise RuntimeError(f"{path} is not a {2 * size}-hex-character key")
