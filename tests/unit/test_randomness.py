"""The request path's random bytes (``ledger.randomness``): drawn a block at a
time from the kernel, never the same bytes twice -- across threads, and across
forked processes (gunicorn forks its workers after importing the app)."""

from __future__ import annotations

import os
import signal
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from uuid import UUID

import pytest

from ledger import randomness
from ledger.randomness import random_bytes, random_uuid


def _drawn_in_child(count: int) -> bytes:
    """Fork; the child draws ``count`` bytes and sends them back."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: draw, send, leave without running the parent's clean-up
        try:
            os.close(read_end)
            os.write(write_end, random_bytes(count))
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + 10
    while (waited := os.waitpid(pid, os.WNOHANG))[0] == 0:  # a child stuck on a lock fails, not hangs
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read_end)
            pytest.fail("the forked child did not finish")
        time.sleep(0.005)
    assert os.waitstatus_to_exitcode(waited[1]) == 0
    with os.fdopen(read_end, "rb") as pipe:
        return pipe.read()


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="fork")
def test_forked_children_draw_different_bytes_from_each_other_and_the_parent() -> None:
    random_bytes(1)  # the parent's block is filled before the forks, as gunicorn's master's
    first, second = _drawn_in_child(64), _drawn_in_child(64)
    parent = random_bytes(64)
    assert len(first) == len(second) == 64
    assert len({first, second, parent}) == 3


@pytest.mark.skipif(not hasattr(os, "fork") or sys.platform != "linux", reason="fork")
def test_a_fork_while_another_thread_holds_the_lock_does_not_block_the_child() -> None:
    with randomness._block.lock:  # as if another thread were drawing at the fork
        drawn = _drawn_in_child(16)
    assert len(drawn) == 16


def test_threads_never_get_the_same_bytes() -> None:
    def draw(_: int) -> list[bytes]:
        return [random_bytes(16) for _ in range(2000)]

    with ThreadPoolExecutor(max_workers=8) as pool:
        drawn = [value for values in pool.map(draw, range(8)) for value in values]
    assert len(set(drawn)) == len(drawn) == 16000  # 128 random bits: a repeat means bytes handed out twice


def test_sizes_and_ids() -> None:
    assert random_bytes(0) == b""
    assert len(random_bytes(randomness.BLOCK + 1)) == randomness.BLOCK + 1  # more than a block at once
    with pytest.raises(ValueError):
        random_bytes(-1)
    ids = {random_uuid() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(isinstance(i, UUID) and i.version == 4 and i.variant == "specified in RFC 4122" for i in ids)


def test_handed_out_bytes_are_not_kept_in_the_block() -> None:
    taken = random_bytes(32)
    with randomness._block.lock:
        start, used = randomness._block.used - 32, randomness._block.used
        assert bytes(randomness._block.data[start:used]) == bytes(32) != taken
