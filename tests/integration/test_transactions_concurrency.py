"""Isolation under concurrency: 20 transactions at once on one source, from threads of one process
and from 20 processes (``spawn``, each opening its own Revisor on the same data directory). Each
must land on its own branch, with exactly its own change, on its own base — cup committed
concurrent updates onto each other's branches — and SQLite must cope with all of them. The same
idempotency key from two processes at once runs once.
"""

from __future__ import annotations

import json
import multiprocessing
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from revisor.core.transaction import TransactionResult
from revisor.db.models import TxState
from tests.integration.test_transactions_support import (
    ALICE,
    World,
    concurrent_changes,
    make_world,
    run_in_child,
    same_key_child,
    served_world,
)

pytestmark = pytest.mark.timeout(180)

N = 20
SEED = {"README.md": "hello\n", "shared.txt": "shared\n"}


def _bases(world: World) -> dict[str, str]:
    """Two bases: main, and a branch ``other`` one commit away from it."""
    other = world.upstream.commit("refs/heads/other", {"other.txt": "other\n"},
                                  parent=world.upstream.ref("refs/heads/main"))
    main = world.upstream.ref("refs/heads/main")
    assert main is not None
    return {"main": main, "other": other}


def _check_isolation(world: World, results: dict[int, TransactionResult],
                     bases: dict[str, str]) -> None:
    assert sorted(results) == list(range(N))
    branches = {r.branch for r in results.values()}
    assert len(branches) == N
    remote = world.remote_refs()
    assert set(remote) == {"refs/heads/main", "refs/heads/other"} | {
        f"refs/heads/{b}" for b in branches}
    proposals = {p.source_branch: p for p in world.source.provider.list()}
    assert len(proposals) == N
    up = world.upstream
    for i, r in results.items():
        base_name = "main" if i % 2 == 0 else "other"
        assert r.commit is not None and r.branch is not None and r.proposal is not None
        assert remote[f"refs/heads/{r.branch}"] == r.commit
        assert r.base == bases[base_name]
        assert up.parents(r.commit) == [bases[base_name]]  # its own base, one commit
        assert up.changed(r.base, r.commit) == {f"tx/{i:02d}.txt": "A", "shared.txt": "M"}
        assert up.show(r.commit, "shared.txt") == f"shared by {i}\n".encode()
        p = proposals[r.branch]
        assert (p.number, p.source_commit, p.target_branch) == (
            r.proposal.number, r.commit, base_name)
    assert len({p.number for p in proposals.values()}) == N
    rows = world.journal_rows()
    assert len(rows) == N and {r.state for r in rows} == {TxState.DONE}
    world.assert_clean()


# -- threads -----------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", ["http", "local"])
def test_20_concurrent_transactions_from_threads(
    request: pytest.FixtureRequest, tmp_path: Path, kind: str
) -> None:
    if kind == "http":
        world = served_world(request.getfixturevalue("http_git"),
                             request.getfixturevalue("http_git_root"), tmp_path, SEED)
    else:
        world = make_world("local", tmp_path, SEED)
    try:
        bases = _bases(world)
        world.source.stored.refresh()
        go = threading.Barrier(N)

        def run(i: int) -> TransactionResult:
            go.wait(timeout=30)
            base = "main" if i % 2 == 0 else "other"
            return world.source.update(base, f"change {i}", ALICE, changes=concurrent_changes(i))

        with ThreadPoolExecutor(N) as pool:
            results = dict(enumerate(pool.map(run, range(N))))
        _check_isolation(world, results, bases)
    finally:
        world.close()


# -- processes ---------------------------------------------------------------------------------
def _config(world: World) -> dict[str, Any]:
    return {"data_dir": str(world.data_dir), "sources": {"proj": world.source_config}}


@pytest.fixture
def disk_world(tmp_path: Path) -> Iterator[World]:
    w = make_world("git", tmp_path, SEED)
    try:
        yield w
    finally:
        w.close()


def test_20_concurrent_transactions_from_processes(disk_world: World) -> None:
    world = disk_world
    bases = _bases(world)
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=run_in_child, args=(_config(world), i, ready, go, out))
             for i in range(N)]
    for p in procs:
        p.start()
    try:
        for _ in range(N):
            ready.get(timeout=90)
        go.set()
        outcomes = [out.get(timeout=90) for _ in range(N)]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    errors = [o for o in outcomes if o[1] != "ok"]
    assert errors == []  # DatabaseUnavailable included
    results = {i: TransactionResult.from_json(text) for i, _, text in outcomes}
    _check_isolation(world, results, bases)


def test_the_same_idempotency_key_from_two_processes_runs_once(disk_world: World) -> None:
    world = disk_world
    ctx = multiprocessing.get_context("spawn")
    ready, out, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [ctx.Process(target=same_key_child, args=(_config(world), ready, go, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    try:
        for _ in procs:
            ready.get(timeout=90)
        go.set()
        outcomes = [out.get(timeout=90) for _ in procs]
    finally:
        for p in procs:
            p.join(timeout=30)
            if p.is_alive():
                p.kill()
    kinds = sorted(kind for kind, _ in outcomes)
    assert "error" not in kinds, outcomes
    assert kinds in (["in-progress", "ok"], ["ok", "ok"])
    results = [TransactionResult.from_json(text) for kind, text in outcomes if kind == "ok"]
    assert len({(r.id, r.commit, r.branch) for r in results}) == 1  # one transaction
    (branch,) = world.upstream.revisor_branches()
    assert branch == results[0].branch
    assert len(world.source.provider.list()) == 1
    (row,) = world.journal_rows()
    assert row.idempotency_key == "same-key" and row.state is TxState.DONE

    # afterwards the key answers with the result, from anywhere
    again = world.reopen().source("proj").update("main", "once", ALICE,
                                                 idempotency_key="same-key")
    assert again.replayed and again.commit == results[0].commit
    assert json.loads(again.to_json())["branch"] == branch
