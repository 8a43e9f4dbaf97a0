"""``ledger serve`` spreads connections evenly across its worker processes,
a second server refuses a port the first one listens on, and with
``--pin-workers`` each worker keeps a CPU of its own.

Why: behind a load balancer (or a benchmark) a few keep-alive connections
carry all the traffic.  With gunicorn's one shared listening socket, the
first worker awake accepted them: of 16 connections opened together, 16/0,
14/2 and 13/3 were seen, and the loaded worker's GIL then bounded the whole
server while the other idled.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
import requests

from tests.support.postgres import TestServer
from tests.support.waiting import wait_serving, wait_until
from workers.broker import free_port

ROOT = Path(__file__).resolve().parents[3]
CONNECTIONS = 16
ROUNDS = 4


def _serve(url: str, data_dir: Path, port: int, *options: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGER_")}
    env.update({
        "LEDGER_DATABASE_URL": url, "LEDGER_DATA_DIR": str(data_dir), "LEDGER_SECRET_KEY": "11" * 32,
        "LEDGER_HTTP_HOST": "127.0.0.1", "LEDGER_HTTP_PORT": str(port), "PYTHONPATH": str(ROOT),
    })
    return subprocess.Popen(
        [sys.executable, "-m", "entrypoints.cli", "serve", "--workers", "2", "--threads", "4", *options],
        cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )


@pytest.fixture
def server(pg_server: TestServer, tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int, str]]:
    url, port = pg_server.new_database(), free_port()
    process = _serve(url, tmp_path / "a", port)
    try:
        wait_serving(process, f"http://127.0.0.1:{port}")
        yield process, port, url
    finally:
        process.terminate()
        process.wait(20)


def _per_worker(process: subprocess.Popen[bytes], port: int) -> list[int]:
    """Established connections to ``port`` held by each worker process."""
    return sorted((sum(1 for c in worker.net_connections(kind="tcp")
                       if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port)
                   for worker in psutil.Process(process.pid).children()), reverse=True)


def _both_listening(process: subprocess.Popen[bytes], port: int) -> None:
    """Until each worker takes one of two connections: the server answers as
    soon as its first worker runs, and the other may still be starting."""
    def one_each() -> bool:
        clients = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(2)]
        try:
            time.sleep(0.1)
            return _per_worker(process, port) == [1, 1]
        finally:
            for client in clients:
                client.close()

    wait_until(one_each, timeout=30, what="both workers accepting")
    time.sleep(0.2)


def test_connections_opened_together_are_spread_across_the_workers(
    server: tuple[subprocess.Popen[bytes], int, str],
) -> None:
    process, port, _ = server
    _both_listening(process, port)
    splits: list[list[int]] = []
    for _ in range(ROUNDS):
        clients = []
        for _ in range(CONNECTIONS):  # opened at once, as a benchmark's or a balancer's pool opens them
            client = socket.socket()
            client.setblocking(False)
            try:
                client.connect(("127.0.0.1", port))
            except BlockingIOError:
                pass
            clients.append(client)
        try:
            time.sleep(0.3)
            for client in clients:  # each connection answered (and so accepted by a worker)
                client.setblocking(True)
                client.settimeout(10)
                client.sendall(b"GET /healthz HTTP/1.1\r\nHost: test\r\n\r\n")
                assert client.recv(4096).startswith(b"HTTP/1.1 200")
            split = _per_worker(process, port)
            assert sum(split) == CONNECTIONS and len(split) == 2
            splits.append(split)
        finally:
            for client in clients:
                client.close()
        time.sleep(0.2)
    # The first worker awake accepting gave 58/6 over the four rounds; a kernel
    # hash of the addresses (a socket per worker) about 38/26, with 12/4 in one
    # round of five.  The least loaded worker accepting: 8/8 or 9/7 each round.
    assert all(split[0] <= CONNECTIONS // 2 + 1 for split in splits), splits


def test_a_second_server_refuses_the_port_the_first_listens_on(
    server: tuple[subprocess.Popen[bytes], int, str], tmp_path: Path,
) -> None:
    process, port, url = server
    second = _serve(url, tmp_path / "b", port)
    try:
        _, err = second.communicate(timeout=60)
    finally:
        if second.poll() is None:
            second.kill()
    assert second.returncode != 0
    assert f"127.0.0.1:{port} is already in use" in err.decode()
    assert b"Traceback" not in err
    assert requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    assert process.poll() is None


def _cpus_per_worker(process: subprocess.Popen[bytes]) -> dict[int, set[frozenset[int]]]:
    """Each worker process's pid -> the CPU sets its threads may run on."""
    return {worker.pid: {frozenset(os.sched_getaffinity(thread.id)) for thread in worker.threads()}
            for worker in psutil.Process(process.pid).children()}


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_pinned_workers_each_keep_a_cpu_of_their_own_across_a_crash(
    server: tuple[subprocess.Popen[bytes], int, str], pg_server: TestServer, tmp_path: Path,
) -> None:
    """Every thread of a pinned worker runs on its worker's one CPU, a
    different CPU per worker; a worker killed mid-flight is replaced on the
    CPU it freed.  Without the option the scheduler places them (as before)."""
    unpinned, _, _ = server
    everywhere = frozenset(os.sched_getaffinity(0))
    assert all(sets == {everywhere} for sets in _cpus_per_worker(unpinned).values())

    url, port = pg_server.new_database(), free_port()
    process = _serve(url, tmp_path / "pinned", port, "--pin-workers")
    try:
        base = f"http://127.0.0.1:{port}"
        wait_serving(process, base)
        for _ in range(8):  # the request threads exist once requests came
            requests.get(f"{base}/healthz", timeout=5)
        before = _cpus_per_worker(process)
        assert len(before) == 2 and all(len(sets) == 1 and len(next(iter(sets))) == 1 for sets in before.values())
        assert len({next(iter(sets)) for sets in before.values()}) == 2, before

        victim, survivor = sorted(before)
        os.kill(victim, signal.SIGKILL)

        def replaced() -> dict[int, set[frozenset[int]]] | None:
            found = _cpus_per_worker(process)
            return found if len(found) == 2 and victim not in found else None

        after = wait_until(replaced, timeout=30, what="a worker in place of the killed one")
        [replacement] = set(after) - {survivor}
        assert after[survivor] == before[survivor]
        assert after[replacement] == before[victim]
        wait_serving(process, base)
    finally:
        process.terminate()
        process.wait(20)
