"""Random bytes and random ids for the request path, drawn from the operating
system's CSPRNG a block at a time, and never the same bytes twice -- across
threads and across forked processes.

Why: every registration drew four small random values (its id, its data key,
the nonce that seals its personal data, the nonce that wraps the key), each one
``os.urandom`` call -- a ``getrandom`` system call for which CPython releases
the GIL.  Under gunicorn's threads each release can hand the GIL to another
request thread, and getting it back costs this thread a context switch.  Here
the bytes come from one ``os.urandom`` of :data:`BLOCK` bytes shared by the
process's threads (one system call per ~50 registrations); they are exactly
the kernel's random bytes, each handed out once.

Guarantees:

* **never twice in a process**: the block is consumed under a lock, and the
  bytes handed out are overwritten with zeros in the block (a later copy of
  the process's memory -- a fork, a core file -- does not hold them);
* **never twice across a fork**: gunicorn imports the app in its master and
  forks the workers, so a block filled before the fork would otherwise be
  drawn again by every child.  ``os.register_at_fork`` gives a child an empty
  block (and a fresh lock: one held by another thread at the fork would never
  be released in the child); the child's first draw reads the kernel again.
  A fork that bypasses ``os.fork`` (a C extension calling ``fork()`` and
  going on with Python in the child) would skip that hook: nothing in the
  ledger does;
* same strength as ``os.urandom`` (``secrets`` is ``os.urandom`` too): fit
  for AES keys and GCM nonces.
"""

from __future__ import annotations

import os
import threading
from uuid import UUID

BLOCK = 4096
"""Bytes read from the kernel at a time (a registration uses 72)."""


class _Block:
    """The current block of kernel randomness and how much of it is used."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data = bytearray()
        self.used = 0

    def take(self, count: int) -> bytes:
        if count < 0:
            raise ValueError("negative count")
        with self.lock:
            start, end = self.used, self.used + count
            if end > len(self.data):
                self.data = bytearray(os.urandom(max(BLOCK, count)))
                start, end = 0, count
            taken = bytes(self.data[start:end])
            self.data[start:end] = bytes(count)  # handed out once: not kept
            self.used = end
            return taken

    def forget(self) -> None:
        """In a forked child: the parent's block (and lock) are not the child's."""
        self.lock = threading.Lock()
        self.data = bytearray()
        self.used = 0


_block = _Block()
os.register_at_fork(after_in_child=_block.forget)


def random_bytes(count: int) -> bytes:
    """``count`` bytes from the operating system's CSPRNG (as ``os.urandom``)."""
    return _block.take(count)


def random_uuid() -> UUID:
    """A random (version 4) UUID, as ``uuid.uuid4()``."""
    return UUID(bytes=_block.take(16), version=4)
