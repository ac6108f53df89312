"""Concurrency in candidates: two processes saving one file with the same ETag (exactly one wins,
the other gets PreconditionFailed with the winner's ETag — never a lost update), two processes
saving different files (both land), and users publishing at once from threads (every change
lands, each as one commit on the candidate)."""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revisor.vcs import Signature
from tests.integration.test_candidates_support import (
    ALICE,
    World,
    candidates,
    lines,
    race_child,
    world,
)


@pytest.fixture(params=["local", "git"])
def w(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    wo = world(request.param, tmp_path)
    try:
        yield wo
    finally:
        wo.close()


def _config(w: World) -> dict[str, Any]:
    return {"data_dir": str(w.data_dir), "sources": {"proj": w.source_config}}


def _race(w: World, cid: int, user: str, writes: list[tuple[str, str, bytes]]) -> list[Any]:
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=race_child,
                    args=(_config(w), cid, user, path, etag, content, ready, go, out))
        for path, etag, content in writes
    ]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=60)
        go.set()
        results = [out.get(timeout=60) for _ in procs]
    finally:
        for p in procs:
            p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    return results


def test_two_processes_saving_one_file_one_wins(w: World) -> None:
    c = candidates(w)
    cand = c.create("race-1", "Race", ALICE)
    ws = c.workspace(cand.id, "alice", identity=ALICE)
    _, etag = ws.read("a.txt")
    start = ws.head()
    first, second = lines("a", l1="first"), lines("a", l1="second")
    results = _race(w, cand.id, "alice", [("a.txt", etag, first), ("a.txt", etag, second)])
    outcomes = sorted(r[1] for r in results)
    assert outcomes == ["PreconditionFailed", "ok"], results
    [winner] = [r for r in results if r[1] == "ok"]
    [loser] = [r for r in results if r[1] != "ok"]
    assert loser[2] == winner[2]  # the loser is told the winner's ETag
    data, now = ws.read("a.txt")
    assert now == winner[2] and data in (first, second)
    # exactly one commit on the workspace: the winner's
    from tests.integration.test_transactions_support import Upstream

    repo = Upstream(w.mirror_path or w.upstream.path)
    assert repo.git("rev-list", f"{start}..{ws.head()}").split() == [ws.head()]


def test_two_processes_saving_different_files_both_land(tmp_path: Path) -> None:
    w = world("local", tmp_path)
    c = candidates(w)
    cand = c.create("race-2", "Race", ALICE)
    ws = c.workspace(cand.id, "alice", identity=ALICE)
    results = _race(w, cand.id, "alice", [
        ("a.txt", ws.etag("a.txt") or "", b"one\n"),
        ("b.txt", ws.etag("b.txt") or "", b"two\n"),
    ])
    assert sorted(r[1] for r in results) == ["ok", "ok"], results
    assert ws.read("a.txt")[0] == b"one\n" and ws.read("b.txt")[0] == b"two\n"
    w.close()


def test_users_publishing_at_once_all_land(tmp_path: Path) -> None:
    w = world("local", tmp_path)
    try:
        c = candidates(w)
        cand = c.create("crowd-1", "Crowd", ALICE)
        users = [f"user{i}" for i in range(6)]
        spaces = {}
        for i, u in enumerate(users):
            ws = c.workspace(cand.id, u, identity=Signature.now(u, f"{u}@example.com"))
            ws.write(f"files/{u}.txt", f"{u}\n".encode(), if_match=None)
            if i % 2 == 0:  # some also edit different lines of one shared file
                content = lines("a").replace(f"a line {i}\n".encode(), f"{u}\n".encode())
                ws.write("a.txt", content, if_match=ws.etag("a.txt"))
            spaces[u] = ws
        barrier = threading.Barrier(len(users))
        errors: list[BaseException] = []

        def publish(u: str) -> None:
            try:
                barrier.wait(30)
                ws = spaces[u]
                result = ws.publish()
                if not result.published:  # a colliding publish: take the others' and retry
                    assert ws.sync().up_to_date
                    assert ws.publish().published
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=publish, args=(u,)) for u in users]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == []
        head = c.get(cand.id).head_commit
        tree = w.upstream.ls_tree(head)
        assert {f"files/{u}.txt" for u in users} <= set(tree)
        shared = w.upstream.show(head, "a.txt")
        assert shared == lines("a", l0="user0", l2="user2", l4="user4")
        log = w.upstream.git("log", "--format=%an", f"{cand.base_commit}..{head}").split()
        assert sorted(log) == sorted(users)  # one commit per user
    finally:
        w.close()
