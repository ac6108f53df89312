"""Load: concurrent clients against the served API on loopback, then no 5xx and no lost update.

The app (``create_app`` over one source, ``tests/support/api.py``) is served by uvicorn on
127.0.0.1; N client threads, each with its own ``httpx.Client``, run for a bounded time a seeded
mix of:

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

Short mode: 4 clients for 10 s. ``REVISOR_LONG=1``: 8 clients for 60 s.
"""

from __future__ import annotations

import math
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.integration.test_candidates_support import BASE_FILES
from tests.integration.test_transactions_support import Upstream
from tests.reliability.common import long_mode, write_report
from tests.support.api import ApiWorld, api_world

pytestmark = pytest.mark.timeout(900)

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


def client_loop(aw: ApiWorld, cid: int, client: int, stop: threading.Event,
                results: Results) -> None:
    rng = random.Random(SEED + client)
    user = USERS[client % len(USERS)]
    ws = f"{aw.api}{C}/{cid}/workspaces/{user}"
    path = shared_path(user)
    n = 0
    with httpx.Client(timeout=120) as http:
        while not stop.is_set():
            n += 1
            roll = rng.random()
            try:
                if roll < 0.2:
                    _timed(results, "read-tree", lambda: http.get(
                        f"{aw.api}/sources/proj/tree", params={"rev": "main"}))
                elif roll < 0.35:
                    _timed(results, "read-blob", lambda: http.get(
                        f"{aw.api}/sources/proj/blob", params={"rev": "main", "path": "a.txt"}))
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


@pytest.fixture
def aw(tmp_path: Path) -> Iterator[ApiWorld]:
    with api_world(tmp_path, BASE_FILES) as w:
        yield w


def test_concurrent_clients_lose_no_update_and_never_get_a_5xx(
    aw: ApiWorld, report_dir: Path
) -> None:
    clients, seconds = (8, 60.0) if long_mode() else (4, 10.0)
    r = aw.post(C, json={"name": "load", "title": "Load"})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    for user in USERS:  # each user's shared file exists before the race starts
        made = aw.put(f"{C}/{cid}/workspaces/{user}/files/{shared_path(user)}",
                      content=b"", headers={"If-None-Match": "*"})
        assert made.status_code == 201, made.text

    results = Results()
    stop = threading.Event()
    threads = [threading.Thread(target=client_loop, args=(aw, cid, k, stop, results),
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
    mirror = Upstream(aw.world.mirror_path or aw.world.upstream.path)
    finals: dict[str, list[str]] = {}
    for user in USERS:
        got = aw.get(f"{C}/{cid}/workspaces/{user}/files/{shared_path(user)}")
        assert got.status_code == 200
        lines = got.text.splitlines()
        finals[user] = lines
        mine = sorted(s.line for s in accepted if s.user == user)
        assert sorted(lines) == mine, f"{user}: lost or extra lines"
        assert not {s.line for s in refused if s.user == user} & set(lines)
        # the API and git agree: the workspace ref's file is exactly this
        head = aw.get(f"{C}/{cid}/workspaces/{user}").json()["head_commit"]
        assert mirror.refs()[f"refs/revisor/workspaces/{cid}/{user}"] == head
        assert mirror.show(head, shared_path(user)) == got.content

    # -- a last publish per user brings every accepted line into the candidate ------------
    for user in USERS:
        p = aw.post(f"{C}/{cid}/workspaces/{user}/publish")
        assert p.status_code == 200, p.text
    cand = aw.get(f"{C}/{cid}").json()
    cand_ref = mirror.refs()[f"refs/revisor/candidates/{cid}"]
    assert cand["head_commit"] == cand_ref
    for user in USERS:
        published = mirror.show(cand_ref, shared_path(user)).decode().splitlines()
        assert sorted(published) == sorted(finals[user])
    mirror.fsck()

    statuses: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for c in results.calls:
        statuses[c.kind][c.status] += 1
    write_report(report_dir, "load", {
        "clients": clients, "seconds": seconds, "calls": len(results.calls),
        "saves accepted": len(accepted), "saves refused (409/412)": len(refused),
        "statuses": {k: dict(v) for k, v in statuses.items()},
        "latency": latencies(results),
    })
