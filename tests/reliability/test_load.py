"""Load: concurrent clients against the served API on loopback, then no 5xx and no lost update.

Twice: the app (``create_app`` over one source, ``tests/support/api.py``) served by uvicorn in
this process, and ``revisor serve --workers 2`` as a process (two worker processes racing on the
same refs and database). Both on 127.0.0.1 only; N client threads, each with its own
``httpx.Client``, run for a bounded time a seeded mix of:

- **reads**: a tree and a file of the target branch (browse API), a file of a workspace;
- **saves on shared files**: read a workspace file with its ETag, append the client's own line,
  write it back with ``If-Match`` (a read-modify-write: two clients acting as the same user race
  on the same file, so some writes must be refused with 412 — or 409 — and none may be lost);
- **publishes** of the workspace into the candidate.

Then, with the load stopped: no answer was a 5xx (nor anything outside the statuses each call
documents); every save answered 2xx is in the final state — its line is in the workspace's file
exactly once — and no refused save's line is there (a lost update would drop a line; a refused
write that landed anyway would add one); every publish answered 2xx or 409; after one last
publish per user the candidate holds every accepted line too, and the workspace and candidate
refs in the mirror agree with what the API reports. p50/p99 latencies per kind of call are
printed and written to the test's report directory; nothing is asserted about time.

Short mode: 4 clients for 10 s each. ``REVISOR_LONG=1``: 8 clients for 60 s each.
"""

from __future__ import annotations

import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.test_candidates_support import BASE_FILES
from tests.integration.test_transactions_support import Upstream
from tests.reliability.common import long_mode, write_report
from tests.support.api import api_world

pytestmark = pytest.mark.timeout(900)

REVISOR = str(Path(sys.executable).with_name("revisor"))

SEED = 20_261_122
USERS = ("alice", "bob")
C = "/sources/proj/candidates"
#: What each kind of call may answer; anything else (any 5xx above all) fails the test.
ALLOWED = {
    "read-tree": {200},
    "read-blob": {200},
    "read-ws": {200},
    "save": {200, 201, 409, 412},
    "publish": {200, 409},
}


@dataclass
class Call:
    kind: str
    status: int
    seconds: float


@dataclass
class Save:
    client: int
    user: str
    line: str
    status: int


@dataclass
class Results:
    calls: list[Call] = field(default_factory=list)
    saves: list[Save] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, call: Call, save: Save | None = None) -> None:
        with self.lock:
            self.calls.append(call)
            if save is not None:
                self.saves.append(save)


def shared_path(user: str) -> str:
    """The file every client acting as ``user`` appends to (shared between those clients)."""
    return f"shared/{user}.txt"


def _timed(results: Results, kind: str, fn: object) -> httpx.Response:
    start = time.perf_counter()
    r: httpx.Response = fn()  # type: ignore[operator]
    results.add(Call(kind, r.status_code, time.perf_counter() - start))
    return r


def client_loop(api: str, cid: int, client: int, stop: threading.Event,
                results: Results) -> None:
    rng = random.Random(SEED + client)
    user = USERS[client % len(USERS)]
    ws = f"{api}{C}/{cid}/workspaces/{user}"
    path = shared_path(user)
    n = 0
    with httpx.Client(timeout=120) as http:
        while not stop.is_set():
            n += 1
            roll = rng.random()
            try:
                if roll < 0.2:
                    _timed(results, "read-tree", lambda: http.get(
                        f"{api}/sources/proj/tree", params={"rev": "main"}))
                elif roll < 0.35:
                    _timed(results, "read-blob", lambda: http.get(
                        f"{api}/sources/proj/blob", params={"rev": "main", "path": "a.txt"}))
                elif roll < 0.85:
                    r = _timed(results, "read-ws", lambda: http.get(f"{ws}/files/{path}"))
                    if r.status_code != 200:
                        continue
                    line = f"client {client} write {n}"
                    body = r.content + (line + "\n").encode()
                    etag = r.headers["etag"]
                    start = time.perf_counter()
                    w = http.put(f"{ws}/files/{path}", content=body, headers={"If-Match": etag})
                    results.add(Call("save", w.status_code, time.perf_counter() - start),
                                Save(client, user, line, w.status_code))
                else:
                    _timed(results, "publish", lambda: http.post(f"{ws}/publish"))
            except httpx.HTTPError as exc:  # a dropped connection is a failure too
                with results.lock:
                    results.errors.append(f"client {client}: {type(exc).__name__}: {exc}")


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def latencies(results: Results) -> dict[str, dict[str, float | int]]:
    by_kind: dict[str, list[float]] = defaultdict(list)
    for c in results.calls:
        by_kind[c.kind].append(c.seconds)
    return {
        kind: {"n": len(s), "p50_ms": round(percentile(s, 0.5) * 1000, 1),
               "p99_ms": round(percentile(s, 0.99) * 1000, 1),
               "max_ms": round(max(s) * 1000, 1)}
        for kind, s in sorted(by_kind.items())
    }


def run_load(api: str, repo: Path, clients: int, seconds: float, report_dir: Path,
             name: str) -> None:
    """The load of the module docstring against the API at ``api`` (whose source ``proj`` keeps
    its refs in the repository ``repo``), then every check; figures go to ``report_dir``."""
    http = httpx.Client(timeout=120, base_url=api)
    r = http.post(C, json={"name": "load", "title": "Load"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    for user in USERS:  # each user's shared file exists before the race starts
        made = http.put(f"{C}/{cid}/workspaces/{user}/files/{shared_path(user)}",
                        content=b"", headers={"If-None-Match": "*"})
        assert made.status_code == 201, made.text

    results = Results()
    stop = threading.Event()
    threads = [threading.Thread(target=client_loop, args=(api, cid, k, stop, results),
                                name=f"load-client-{k}", daemon=True) for k in range(clients)]
    for t in threads:
        t.start()
    stop.wait(seconds)
    stop.set()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "a client never finished its last call"

    # -- no 5xx, nothing outside what each call documents --------------------------------
    assert results.errors == []
    unexpected = [(c.kind, c.status) for c in results.calls if c.status not in ALLOWED[c.kind]]
    assert unexpected == []
    accepted = [s for s in results.saves if 200 <= s.status < 300]
    refused = [s for s in results.saves if s.status in (409, 412)]
    assert accepted, "no save succeeded: the load proved nothing"

    # -- no lost update: every accepted line once, no refused line -----------------------
    git_repo = Upstream(repo)
    finals: dict[str, list[str]] = {}
    for user in USERS:
        got = http.get(f"{C}/{cid}/workspaces/{user}/files/{shared_path(user)}")
        assert got.status_code == 200
        lines = got.text.splitlines()
        finals[user] = lines
        mine = sorted(s.line for s in accepted if s.user == user)
        assert sorted(lines) == mine, f"{user}: lost or extra lines"
        assert not {s.line for s in refused if s.user == user} & set(lines)
        # the API and git agree: the workspace ref's file is exactly this
        head = http.get(f"{C}/{cid}/workspaces/{user}").json()["head_commit"]
        assert git_repo.refs()[f"refs/revisor/workspaces/{cid}/{user}"] == head
        assert git_repo.show(head, shared_path(user)) == got.content

    # -- a last publish per user brings every accepted line into the candidate ------------
    for user in USERS:
        p = http.post(f"{C}/{cid}/workspaces/{user}/publish")
        assert p.status_code == 200, p.text
    cand = http.get(f"{C}/{cid}").json()
    cand_ref = git_repo.refs()[f"refs/revisor/candidates/{cid}"]
    assert cand["head_commit"] == cand_ref
    for user in USERS:
        published = git_repo.show(cand_ref, shared_path(user)).decode().splitlines()
        assert sorted(published) == sorted(finals[user])
    git_repo.fsck()
    http.close()

    statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for c in results.calls:
        statuses[c.kind][c.status] += 1
    write_report(report_dir, name, {
        "clients": clients, "seconds": seconds, "calls": len(results.calls),
        "saves accepted": len(accepted), "saves refused (409/412)": len(refused),
        "statuses": {k: dict(v) for k, v in statuses.items()},
        "latency": latencies(results),
    })


def _budget() -> tuple[int, float]:
    return (8, 60.0) if long_mode() else (4, 10.0)


def test_concurrent_clients_lose_no_update_and_never_get_a_5xx(
    tmp_path: Path, report_dir: Path
) -> None:
    """The app in this process (uvicorn in a thread), over a mirror of a ``git`` source."""
    with api_world(tmp_path, BASE_FILES) as aw:
        repo = aw.world.mirror_path or aw.world.upstream.path
        run_load(aw.api, repo, *_budget(), report_dir, "load-in-process")


def test_revisor_serve_with_two_workers_loses_no_update(tmp_path: Path, report_dir: Path) -> None:
    """``revisor serve --workers 2`` as a process: two worker processes race on the same refs
    and the same SQLite database, so every compare-and-swap is tested across processes."""
    up = Upstream.init(tmp_path / "proj.git", BASE_FILES)
    with serve(tmp_path, "--source", str(up.path), "--workers", "2", "--no-scheduler") as url:
        run_load(url + "/api/v1", up.path, *_budget(), report_dir, "load-serve-2-workers")


@contextmanager
def serve(tmp: Path, *args: str) -> Iterator[str]:
    """``revisor serve`` on a free loopback port until it answers ``/healthz`` from both
    workers' side (a few answers in a row); SIGTERM afterwards, SIGKILL of its group if stuck."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = (tmp / "serve.log").open("wb")
    proc = subprocess.Popen(
        [REVISOR, "serve", "--port", str(port), "--data-dir", str(tmp / "data"), "--no-ui", *args],
        stdout=log, stderr=subprocess.STDOUT, cwd=tmp, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        healthy = 0
        while healthy < 5:
            assert proc.poll() is None, (tmp / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, (tmp / "serve.log").read_text()[-3000:]
            try:
                ok = httpx.get(url + "/api/v1/healthz", timeout=10).status_code == 200
            except httpx.HTTPError:
                ok = False
            healthy = healthy + 1 if ok else 0
            time.sleep(0.2)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(30)
        log.close()
    text = (tmp / "serve.log").read_text()
    assert "Traceback" not in text, text[-3000:]
