"""End to end over real HTTP: ``GET /jobs``, ``POST /jobs/{name}/run`` (in the request with
``?wait=true``, or in the background: 202 and a run to poll), ``GET /jobs/runs[/{id}]``. The
``sync`` job's effect (a candidate brought onto its moved target) is read back with git."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revisor.api.deps import encode_cursor
from tests.integration.test_candidates_support import BASE_FILES, lines
from tests.integration.test_transactions_support import Upstream
from tests.support.api import ApiWorld, api_world

C = "/sources/proj/candidates"


@pytest.fixture
def aw(tmp_path: Path) -> Iterator[ApiWorld]:
    with api_world(tmp_path, BASE_FILES) as w:
        yield w


def _finished(aw: ApiWorld, run_id: int) -> dict[str, Any]:
    """Poll the run until it is no longer running (a generous bound, not a timing check)."""
    deadline = time.monotonic() + 120
    while True:
        run: dict[str, Any] = aw.get(f"/jobs/runs/{run_id}").json()
        if run["outcome"] != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.05)


def test_jobs_run_list_and_show(aw: ApiWorld) -> None:
    names = {j["name"] for j in aw.get("/jobs").json()}
    assert {"refresh", "sync", "squash", "maintain"} <= names

    # a candidate whose target moves: the sync job brings it onto the target
    cid = aw.post(C, json={"name": "synced", "title": "t"}).json()["id"]
    ws = f"{C}/{cid}/workspaces/alice"
    assert aw.put(f"{ws}/files/a.txt", content=lines("a", l3="alice"),
                  headers={"If-Match": "*"}).status_code == 200
    assert aw.post(f"{ws}/publish").status_code == 200
    moved = aw.world.upstream.commit("refs/heads/main", {"b.txt": lines("b", l1="up")})
    aw.world.source.stored.refresh()

    r = aw.post("/jobs/sync/run", params={"wait": "true"},
                json={"source": "proj", "candidate": cid})
    assert r.status_code == 200, r.text
    run = r.json()
    assert run["job"] == "sync" and run["outcome"] == "succeeded"
    assert run["source"] == "proj" and run["candidate"] == cid and run["trigger"] == "manual"
    assert run["finished_at"] is not None and run["results"][0]["outcome"] == "succeeded"
    assert r.headers["location"].endswith(f"/api/v1/jobs/runs/{run['id']}")
    cand = aw.get(f"{C}/{cid}").json()
    assert cand["base_commit"] == moved
    mirror = Upstream(aw.world.mirror_path or aw.world.upstream.path)
    head = mirror.ref(f"refs/revisor/candidates/{cid}")
    assert head == cand["head_commit"]
    mirror.git("merge-base", "--is-ancestor", moved, str(head))  # fails unless it is
    assert mirror.show(str(head), "a.txt") == lines("a", l3="alice")
    assert mirror.show(str(head), "b.txt") == lines("b", l1="up")
    # alice's workspace followed
    assert aw.get(ws).json()["in_sync"] is True

    # in the background: 202 with the run, then poll it
    r = aw.post("/jobs/refresh/run", json={"source": "proj"})
    assert r.status_code == 202, r.text
    started = r.json()
    assert started["job"] == "refresh"
    done = _finished(aw, started["id"])
    assert done["outcome"] in ("succeeded", "partial") and done["finished_at"] is not None
    assert aw.client.get(r.headers["location"]).json()["id"] == started["id"]
    r = aw.post("/jobs/maintain/run", params={"wait": "true"})  # every source, no body
    assert r.status_code == 200 and r.json()["source"] is None

    # list: newest first, filters, pages
    runs = aw.get("/jobs/runs").json()["items"]
    assert [x["job"] for x in runs] == ["maintain", "refresh", "sync"]
    assert [x["id"] for x in aw.get("/jobs/runs", params={"job": "sync"}).json()["items"]] == [
        run["id"]]
    assert len(aw.get("/jobs/runs", params={"source": "proj"}).json()["items"]) == 2
    assert aw.get("/jobs/runs", params={"outcome": "failed"}).json()["items"] == []
    page = aw.get("/jobs/runs", params={"limit": 2}).json()
    rest = aw.get("/jobs/runs", params={"limit": 2, "cursor": page["next_cursor"]}).json()
    assert [x["id"] for x in page["items"] + rest["items"]] == [x["id"] for x in runs]
    assert rest["next_cursor"] is None
    assert aw.get("/jobs/runs", params={"cursor": "zzz"}).status_code == 400
    assert aw.get("/jobs/runs", params={"outcome": "exploded"}).status_code == 422


def test_job_errors(aw: ApiWorld) -> None:
    r = aw.post("/jobs/explode/run")
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"
    assert aw.post("/jobs/sync/run", json={"source": "nope"}).status_code == 404
    assert aw.post("/jobs/sync/run", json={"candidate": 1}).status_code == 422
    assert aw.post("/jobs/sync/run", json={"colour": "red"}).status_code == 422
    assert aw.get("/jobs/runs/12345").status_code == 404
    assert aw.get("/jobs/runs/0").status_code == 422
    assert aw.get("/jobs/runs").json() == {"items": [], "next_cursor": None}  # none recorded
    # forged cursors: another list's, or out of range
    for forged in (encode_cursor("audit", before=5), encode_cursor("runs", before=2**40),
                   encode_cursor("runs", before="x")):
        assert aw.get("/jobs/runs", params={"cursor": forged}).status_code == 400
