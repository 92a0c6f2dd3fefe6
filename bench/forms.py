"""Deal form latency through a real server, beside a bare Flask endpoint doing one INSERT.

    .venv/bin/python bench/forms.py [--requests 6000] [--clients 20] [--rounds 6] [--no-postgres]
                                    [--against REV]

For each database (SQLite file; PostgreSQL from a throwaway server when its binaries exist):
migrate, load the demo, start gunicorn (2 sync workers) on 127.0.0.1, sign 20 clients in as
demo reps (each client its own process, as browsers are), and time GET of the new-deal form
(render) and POST of a valid deal (submit, which must answer a redirect, so an error is never
timed as fast). The baseline is a bare Flask app under the same gunicorn settings, running
beside it: GET returns a small page, POST inserts one row. The two are loaded in turns,
deal, bare, bare, deal, ... so both draw the same minutes of this machine.

`--against REV` also serves the deal form as the git revision REV had it (a worktree of REV,
on a database of its own prepared by REV's code) and loads the three in rotating turns: a
change is judged against the code before it within one run, not against a figure measured
on another minute of this machine, whose drift between runs is larger than most changes.
"""

from __future__ import annotations

import argparse
import itertools
import multiprocessing
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
REPS = [
    "li.wei",
    "zhang.min",
    "liu.yang",
    "chen.jing",
    "yang.lei",
    "huang.li",
    "zhou.tao",
    "wu.xia",
    "xu.gang",
    "ma.jun",
    "hu.yan",
    "guo.peng",
    "he.na",
    "lin.feng",
    "luo.bin",
    "zheng.ying",
    "liang.chao",
    "song.jia",
]
GUNICORN = ["-w", "2", "-k", "sync", "--keep-alive", "30", "--log-level", "warning"]


# --- the baseline: one INSERT per request --------------------------------------------------


def bench_rows(url: str):  # type: ignore[no-untyped-def]
    """The bare app's table and an engine on `url`."""
    from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine

    url = url.replace("postgresql://", "postgresql+psycopg://")
    rows = Table(
        "bench_rows", MetaData(), Column("id", Integer, primary_key=True), Column("v", String(10))
    )
    return rows, create_engine(url)


def bare_app():  # type: ignore[no-untyped-def]
    """A Flask app with one page and one insert, on the same database (gunicorn factory).
    Its table is made before gunicorn starts: two workers creating it at once collide."""
    from flask import Flask

    rows, engine = bench_rows(os.environ["DATABASE_URL"])
    app = Flask("bare")

    @app.get("/form")
    def form() -> str:
        return "<form method=post><input name=v></form>"

    @app.post("/form")
    def insert() -> tuple[str, int, dict[str, str]]:
        with engine.begin() as conn:
            conn.execute(rows.insert().values(v="x"))
        return "", 303, {"Location": "/form"}

    return app


# --- clients -------------------------------------------------------------------------------


class Client:
    """A browser tab for the bench: cookies kept, one connection per request (gunicorn's sync
    worker closes each), HTTP/1.1 written and read by hand. http.client parsed every answer's
    headers through the email package and cost the load generator 0.44 ms of CPU a request,
    on the same two cores as the server; this costs half of that (0.23 ms; 0.12 against the
    bare app), so more of the machine measures the server."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cookies: dict[str, str] = {}
        self.resets = 0

    def request(
        self, method: str, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, str]:
        head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{self.port}"]
        if self.cookies:
            head.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        body = b""
        if form is not None:
            body = urlencode(form).encode()
            head.append("Content-Type: application/x-www-form-urlencoded")
            head.append(f"Content-Length: {len(body)}")
        sent = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        try:
            raw = self._exchange(sent)
        except (ConnectionResetError, BrokenPipeError, EOFError):
            # a connection the server reset (seen once in many runs, with gunicorn's sync
            # worker closing every connection): counted and printed, the request sent again
            self.resets += 1
            raw = self._exchange(sent)
        header, _, content = raw.partition(b"\r\n\r\n")
        lines = header.decode("latin-1").split("\r\n")
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.lower() == "set-cookie":
                key, _, rest = value.strip().partition("=")
                self.cookies[key] = rest.split(";", 1)[0]
        return int(lines[0].split(" ", 2)[1]), content.decode("utf-8", "replace")

    def _exchange(self, sent: bytes) -> bytes:
        """Send a request, read its answer up to the end of its body (Content-Length)."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as sock:
            sock.sendall(sent)
            raw, length = b"", None
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                raw += chunk
                if length is None and b"\r\n\r\n" in raw:
                    header = raw.split(b"\r\n\r\n", 1)[0].lower()
                    found = re.search(rb"\r\ncontent-length:\s*(\d+)", header)
                    length = len(header) + 4 + int(found.group(1)) if found else -1
                if length is not None and length >= 0 and len(raw) >= length:
                    break
        if not raw:
            raise EOFError("the server closed the connection without an answer")
        return raw


def hidden(page: str, name: str) -> str:
    found = re.search(rf'name="{re.escape(name)}" value="([^"]*)"', page)
    if not found:
        raise RuntimeError(f"no {name} in the page")
    return found.group(1)


def sign_in(client: Client, username: str) -> None:
    _status, page = client.request("GET", "/login")
    status, _ = client.request(
        "POST",
        "/login",
        {
            "csrf_token": hidden(page, "csrf_token"),
            "username": username,
            "password": "quotaflow-demo",
            "next": "/",
        },
    )
    if status != 302:
        raise RuntimeError(f"sign-in of {username} answered {status}")


def deal_form(page: str, n: int) -> dict[str, str]:
    return {
        "csrf_token": hidden(page, "csrf_token"),
        "pack_version_id": hidden(page, "pack_version_id"),
        "f-customer": f"Bench customer {n}",
        "f-industry": "machinery",
        "f-product_line": "servo_motors",
        "f-potential": "350000",
        "f-amount": "120000",
        "f-discount": "5",
        "f-expected_close": "2026-12-20",
    }


class Clients:
    """Client processes kept for a whole measurement, each signed in to the deal form once and
    told, round after round, which server to load (`run`). Each client is its own process,
    like a browser: as threads of one process they queued behind one GIL to read their
    answers, and gunicorn's sync worker waits for the client to close the connection before
    it takes the next request, so the server idled on the load generator."""

    def __init__(self, ports: dict[str, int], clients: int) -> None:
        ctx = multiprocessing.get_context("fork")
        self.ready = ctx.Barrier(clients + 1)
        self.results = ctx.Queue()
        self.orders = [ctx.Queue() for _ in range(clients)]
        self.workers = [
            ctx.Process(target=_client, args=(i, ports, order, self.ready, self.results))
            for i, order in enumerate(self.orders)
        ]
        for worker in self.workers:
            worker.start()

    def run(self, target: str, per_client: int) -> dict[str, list[float]]:
        """Every client sends `per_client` renders and submits to `target`; the clock starts
        when all of them are ready to."""
        for order in self.orders:
            order.put((target, per_client))
        try:
            self.ready.wait(timeout=120)  # every client signed in and told
        except threading.BrokenBarrierError:
            pass  # a client failed: its error is in the results
        started = time.perf_counter()  # CLOCK_MONOTONIC: the same clock in every process
        timings: dict[str, list[float]] = {"render": [], "submit": [], "resets": [0]}
        errors, ended = [], started
        for _ in self.workers:
            renders, submits, error, end, resets = self.results.get(timeout=600)
            timings["resets"][0] += resets
            timings["render"] += renders
            timings["submit"] += submits
            ended = max(ended, end)
            if error:
                errors.append(error)
        if errors:
            raise RuntimeError("; ".join(errors[:3]))
        timings["wall"] = [ended - started]
        return timings

    def close(self) -> None:
        for order in self.orders:
            order.put(None)
        for worker in self.workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()


def _client(index: int, ports: dict[str, int], orders: Any, ready: Any, results: Any) -> None:
    clients = {name: Client(port) for name, port in ports.items()}
    signed_in: set[str] = set()
    while (order := orders.get()) is not None:
        target, per_client = order
        renders: list[float] = []
        submits: list[float] = []
        bare = target == "bare"
        client = clients[target]
        try:
            if not bare and target not in signed_in:
                sign_in(client, REPS[index % len(REPS)])
                signed_in.add(target)
            path = "/form" if bare else "/forms/b2b_manufacturer/deal/new"
            ready.wait(timeout=120)
            for n in range(per_client):
                start = time.perf_counter()
                status, page = client.request("GET", path)
                render = time.perf_counter() - start
                assert status == 200, f"render answered {status}"
                form = {"v": "x"} if bare else deal_form(page, n)
                start = time.perf_counter()
                status, body = client.request("POST", path, form)
                submit = time.perf_counter() - start
                if status not in (302, 303):
                    raise RuntimeError(f"submit answered {status}: {body[:300]}")
                renders.append(render)
                submits.append(submit)
        except Exception as exc:  # reported after the run: a failing request is not a fast one
            ready.abort()
            results.put(
                (renders, submits, f"client {index}: {exc}", time.perf_counter(), client.resets)
            )
            return
        results.put((renders, submits, None, time.perf_counter(), client.resets))
        client.resets = 0


# --- servers -------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_gunicorn(
    target: str, env: dict[str, str], port: int, chdir: Path, log: Path
) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [
            str(VENV_BIN / "gunicorn"),
            *GUNICORN,
            "-b",
            f"127.0.0.1:{port}",
            "--chdir",
            str(chdir),
            target,
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log.open("wb"),
    )
    for _ in range(200):
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(log.read_text()[-2000:]) from None
            time.sleep(0.1)
    raise RuntimeError("gunicorn did not start")


def stop(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()


def prepare(url: str, instance: Path, code: Path | None = None) -> dict[str, str]:
    """Migrate and load the demo on `url` with this tree's code, or with the code in `code`
    (another revision's platform/ first on the path)."""
    env = {**os.environ, "DATABASE_URL": url, "QUOTAFLOW_INSTANCE_PATH": str(instance)}
    if code is not None:
        env["PYTHONPATH"] = str(code / "platform")
    quotaflow = str(VENV_BIN / "quotaflow")
    subprocess.run([quotaflow, "db", "upgrade"], env=env, check=True, capture_output=True)
    subprocess.run(
        [quotaflow, "demo", "--today", "2026-11-24"], env=env, check=True, capture_output=True
    )
    rows, engine = bench_rows(url)
    rows.metadata.create_all(engine)
    engine.dispose()
    return env


@dataclass(frozen=True)
class Against:
    """Another revision to serve beside this tree: its worktree and its own database."""

    name: str  # the revision as given, with its short hash
    short: str  # the short hash
    code: Path
    url: str


def turns(sides: list[str], rounds: int) -> list[str]:
    """The order sides are loaded in: two as A B B A ..., three through all six orders in
    turn, so each side comes first, between and last as often as the others."""
    if len(sides) == 2:
        a, b = sides
        return [s for turn in range(rounds) for s in ((a, b) if turn % 2 == 0 else (b, a))]
    orders = list(itertools.permutations(sides))
    return [s for turn in range(rounds) for s in orders[turn % len(orders)]]


def measure(
    label: str,
    url: str,
    workdir: Path,
    clients: int,
    requests: int,
    rounds: int,
    against: Against | None = None,
) -> list[str]:
    """The servers run side by side and are loaded in turn, `rounds` times each (`turns`):
    this machine's speed drifts by 15 % from one minute to the next, and measured one after
    the other the sides drew different minutes, so the ratio between them moved more than
    the code did. Each side's figures pool its rounds."""
    env = prepare(url, workdir / f"instance-{label}")
    sides = {
        "app": ("deal form", "quotaflow:create_app()", REPO, env),
        "bare": ("bare Flask + INSERT", "forms:bare_app()", REPO / "bench", env),
    }
    if against is not None:
        theirs = prepare(against.url, workdir / f"instance-{label}-against", against.code)
        sides["against"] = (
            f"deal form @ {against.name}"[:22],
            "quotaflow:create_app()",
            against.code,
            theirs,
        )
    servers, ports, logs = {}, {}, {}
    pool = None
    try:
        for side, (_name, target, chdir, side_env) in sides.items():
            ports[side] = free_port()
            logs[side] = workdir / f"gunicorn-{label}-{side}.log"
            servers[side] = start_gunicorn(target, side_env, ports[side], chdir, logs[side])
        pool = Clients(ports, clients)
        per_client = max(requests // clients // rounds, 1)
        pooled: dict[str, dict[str, list[float]]] = {
            side: {"render": [], "submit": [], "wall": [0.0], "resets": [0]} for side in sides
        }
        for side in sides:
            pool.run(side, 2)  # warm both workers and the caches
        for side in turns(list(sides), rounds):
            timings = pool.run(side, per_client)
            for key in ("render", "submit"):
                pooled[side][key] += timings[key]
            pooled[side]["wall"][0] += timings["wall"][0]
            pooled[side]["resets"][0] += timings["resets"][0]
    except RuntimeError:
        for log in logs.values():
            print(log.read_text()[-3000:], file=sys.stderr)
        raise
    finally:
        if pool is not None:
            pool.close()
        for server in servers.values():
            stop(server)
    rows = [(sides[side][0], pooled[side]) for side in sides]
    done = len(pooled["app"]["render"])
    order = "deal, bare, bare, deal, ..." if len(sides) == 2 else "the three in rotating orders"
    lines = [
        f"{label}: {clients} clients, {done} renders + {done} submits a side in all,"
        f" in {rounds} turns a side ({order})"
    ]
    lines.append(
        f"  {'endpoint':<22}{'render p50':>11}{'p95':>8}{'submit p50':>12}{'p95':>8}{'req/s':>8}"
    )
    stats = {}
    for name, t in rows:
        render, submit = sorted(t["render"]), sorted(t["submit"])
        p = {
            "r50": statistics.median(render) * 1000,
            "r95": render[int(len(render) * 0.95) - 1] * 1000,
            "s50": statistics.median(submit) * 1000,
            "s95": submit[int(len(submit) * 0.95) - 1] * 1000,
            "rps": (len(render) + len(submit)) / t["wall"][0],
        }
        stats[name] = p
        resets = int(t.get("resets", [0])[0])
        lines.append(
            f"  {name:<22}{p['r50']:>9.1f}ms{p['r95']:>6.1f}ms{p['s50']:>10.1f}ms"
            f"{p['s95']:>6.1f}ms{p['rps']:>8.0f}"
            + (f"  ({resets} connection resets, sent again)" if resets else "")
        )
    deal, bare = stats["deal form"], stats["bare Flask + INSERT"]
    lines.append(
        f"  goals: render p95 {deal['r95']:.1f} ms (<= 30), submit p95 {deal['s95']:.1f} ms"
        f" (<= 50); vs bare: render {deal['r95'] / bare['r95']:.2f}x,"
        f" submit {deal['s95'] / bare['s95']:.2f}x (<= 3x)"
    )
    if against is not None:
        then = stats[sides["against"][0]]
        lines.append(
            f"  this tree vs {against.name}: render p95 {_change(deal['r95'], then['r95'])},"
            f" submit p95 {_change(deal['s95'], then['s95'])}, req/s"
            f" {_change(deal['rps'], then['rps'])}; {against.name} vs bare: render"
            f" {then['r95'] / bare['r95']:.2f}x, submit {then['s95'] / bare['s95']:.2f}x"
        )
    return lines


def _change(now: float, then: float) -> str:
    return f"{100 * (now - then) / then:+.1f} %"


@contextmanager
def worktree(revision: str, workdir: Path) -> Iterator[tuple[str, str, Path]]:
    """A checkout of `revision` (its name with its short hash, the hash, and its folder),
    removed after."""
    short = subprocess.run(
        ["git", "-C", str(REPO), "rev-parse", "--short", f"{revision}^{{commit}}"],
        check=True, capture_output=True, text=True,
    ).stdout.strip()  # fmt: skip
    folder = workdir / f"against-{short}"
    subprocess.run(
        ["git", "-C", str(REPO), "worktree", "add", "--detach", str(folder), short],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield (revision if revision.startswith(short) else f"{revision} ({short})"), short, folder
    finally:
        subprocess.run(
            ["git", "-C", str(REPO), "worktree", "remove", "--force", str(folder)],
            check=False, capture_output=True,
        )  # fmt: skip


def create_database(url: str, name: str) -> str:
    """A new database beside the one at `url` (PostgreSQL); its URL."""
    import psycopg

    base = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(base, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + "/" + name


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=6000, help="renders (and submits) a side")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument(
        "--rounds", type=int, default=6, help="turns a side, the sides loaded in ABBA order"
    )
    parser.add_argument("--no-postgres", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument(
        "--against", metavar="REV", help="also serve the deal form as git revision REV had it"
    )
    args = parser.parse_args()
    print(f"Python {sys.version.split()[0]}; gunicorn {' '.join(GUNICORN)}")
    with tempfile.TemporaryDirectory() as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        theirs = stack.enter_context(worktree(args.against, workdir)) if args.against else None
        databases: list[tuple[str, str, str | None]] = []  # label, URL, REV's database URL
        if not args.no_sqlite:
            databases.append(
                ("SQLite", f"sqlite:///{workdir / 'bench.db'}", f"sqlite:///{workdir / 'rev.db'}")
            )
        if not args.no_postgres:
            sys.path.insert(0, str(REPO))
            from tests.pgserver import PostgresUnavailable, start_server  # the tests' server

            try:
                server = start_server()
            except PostgresUnavailable as exc:
                print(f"PostgreSQL: not measured ({exc})")
            else:
                stack.callback(server.stop)
                url = server.url("postgres")
                rev_url = create_database(url, "against") if theirs is not None else None
                databases.append(("PostgreSQL", url, rev_url))
        for label, url, rev_url in databases:
            against = Against(*theirs, rev_url) if theirs is not None and rev_url else None
            for line in measure(
                label, url, workdir, args.clients, args.requests, args.rounds, against
            ):
                print(line, flush=True)


if __name__ == "__main__":
    main()
