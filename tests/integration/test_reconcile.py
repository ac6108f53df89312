"""Rows that lag their refs are brought to them: ``revisor.services.reconcile``.

A save, publish, sync, resolution or rebase moves a ref, then writes the row. Here the second
step is made to fail after the first: by SIGKILL at the ``workspace.after_ref`` checkpoint in a
child process (a real crash, then a real restart), or by the database write failing in-process.
Each time the row is seen lagging first (read straight from the database), then recovery —
``Revisor.start()`` or ``Source.recover()`` — brings it to the ref (read with ``git
for-each-ref``), with the fields the interrupted step would have written, and audits the repair.
Real repositories, real SQLite.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revisor.bootstrap import Revisor
from revisor.db import Database
from revisor.db.candidates import CandidateStore
from revisor.errors import DatabaseUnavailable
from revisor.services.reconcile import Reconciled, reconcile_workspace
from tests.integration.test_candidates_support import (
    ALICE,
    BOB,
    World,
    lines,
    move_target,
)
from tests.integration.test_candidates_support import (
    world as make_candidates_world,
)
from tests.integration.test_transactions_support import FAST, REVISOR
from tests.unit.test_db import db_url, postgres  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(120)

CHILD = textwrap.dedent(
    """
    import json, sys
    from revisor.bootstrap import Revisor
    from revisor.config import Config
    from tests.integration.test_transactions_support import FAST, REVISOR

    spec = json.loads(sys.argv[1])
    rv = Revisor(Config.model_validate(spec["config"]), policy=FAST, identity=REVISOR, env={})
    rv.start()
    ws = rv.source("proj").candidates.workspace(spec["candidate"], spec["user"])
    ws.write("killed.txt", b"saved, then killed\\n", if_match=None)
    print("the save returned")
    """
)


@pytest.fixture
def w(tmp_path: Path) -> Iterator[World]:
    world = make_candidates_world("git", tmp_path)
    try:
        yield world
    finally:
        world.close()


@pytest.fixture
def pw(tmp_path: Path, db_url: str) -> Iterator[World]:  # noqa: F811
    """The world over SQLite, and over a real PostgreSQL (the rows' compare-and-swap takes the
    row lock there)."""
    world = make_candidates_world("git", tmp_path)
    if db_url.startswith("postgresql"):
        world.rv.close()
        world.rv = Revisor(world.config, policy=FAST, identity=REVISOR, env={},
                           database=Database(db_url)).start()
    try:
        yield world
    finally:
        world.close()


def _refs(w: World) -> dict[str, str]:
    return w.mirror_refs("refs/revisor/")


def _store(w: World) -> CandidateStore:
    return CandidateStore(w.rv.db)


class _FailOnce:
    """Make one CandidateStore method fail once (the database "goes away" for one write)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
        self.real = getattr(CandidateStore, name)
        self.armed = True
        real = self.real

        def failing(store: CandidateStore, *args: Any, **kwargs: Any) -> Any:
            if self.armed and "head_commit" in kwargs:
                self.armed = False
                raise DatabaseUnavailable("the database went away", retry_after=1.0)
            return real(store, *args, **kwargs)

        monkeypatch.setattr(CandidateStore, name, failing)


def _reconcile_audits(w: World, action: str) -> list[Any]:
    return w.rv.audit.query(action=action)


def test_a_save_killed_after_its_ref_moved_is_reconciled_at_restart(w: World) -> None:
    cands = w.source.candidates
    cand = cands.create("crash", "Crash", ALICE)
    ws = cands.workspace(cand.id, "alice", identity=ALICE)
    ws.write("first.txt", b"first\n", if_match=None)
    before = _store(w).get_workspace(cand.id, "alice")
    spec = {"config": {"data_dir": str(w.data_dir), "sources": {"proj": w.source_config}},
            "candidate": cand.id, "user": "alice"}
    env = {**os.environ, "REVISOR_FAULT": "workspace.after_ref=kill",
           "PYTHONPATH": str(Path.cwd())}
    proc = subprocess.run([sys.executable, "-c", CHILD, json.dumps(spec)], env=env,
                          capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert "the save returned" not in proc.stdout

    # the ref moved, the row did not: exactly the gap
    ref = _refs(w)[ws.ref]
    lagging = _store(w).get_workspace(cand.id, "alice")
    assert lagging.head_commit == before.head_commit != ref
    assert w.upstream.__class__(w.mirror_path or w.upstream.path).parents(ref) == [
        before.head_commit]

    rv = w.reopen()  # start() recovers, and reconciles
    after = CandidateStore(rv.db).get_workspace(cand.id, "alice")
    assert after.head_commit == ref == _refs(w)[ws.ref]
    # a save changes nothing but the head
    assert (after.base_commit, after.changes_base, after.conflicts) == (
        before.base_commit, before.changes_base, before.conflicts)
    (audit,) = _reconcile_audits(w, "workspace.reconcile")
    assert (audit.before, audit.after, audit.actor) == (before.head_commit, ref, "revisor")
    assert audit.details == {"candidate": cand.id, "user": "alice", "synced_to": None}
    ws2 = rv.source("proj").candidates.workspace(cand.id, "alice")
    assert ws2.read("killed.txt")[0] == b"saved, then killed\n"
    assert sorted(ws2.unpublished()) == ["first.txt", "killed.txt"]
    assert rv.source("proj").reconcile() == []  # nothing left


def test_a_publish_whose_workspace_row_was_not_written_is_reconciled(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cands = w.source.candidates
    cand = cands.create("pub", "Publish", ALICE)
    ws = cands.workspace(cand.id, "alice", identity=ALICE)
    ws.write("a.txt", lines("a", l1="alice"), if_match="*")
    before = _store(w).get_workspace(cand.id, "alice")
    _FailOnce(monkeypatch, "update_workspace")  # the follow's row write fails (logged)
    published = ws.publish()
    assert published.published and published.commit is not None
    ref = _refs(w)[ws.ref]
    assert ref == published.commit == _refs(w)[cand.ref]  # the workspace followed
    assert _store(w).get_workspace(cand.id, "alice").head_commit == before.head_commit
    monkeypatch.undo()

    assert w.source.reconcile() == [Reconciled(cand.id, "alice", before.head_commit, ref, ref)]
    rec = _store(w).get_workspace(cand.id, "alice")
    # what the publish's follow would have written
    assert (rec.head_commit, rec.base_commit, rec.changes_base, rec.conflicts,
            dict(rec.resolutions)) == (ref, published.commit, None, (), {})
    assert ws.unpublished() == []
    assert ws.publish().published is False  # nothing left to publish


def test_a_publish_whose_candidate_row_was_not_written_is_reconciled(
    pw: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = pw
    cands = w.source.candidates
    cand = cands.create("pubc", "Publish", ALICE)
    ws = cands.workspace(cand.id, "alice", identity=ALICE)
    ws.write("a.txt", lines("a", l1="alice"), if_match="*")
    _FailOnce(monkeypatch, "update")
    with pytest.raises(DatabaseUnavailable):
        ws.publish()
    monkeypatch.undo()
    ref = _refs(w)[cand.ref]
    row = _store(w).get("proj", cand.id)
    assert row.head_commit == cand.head_commit != ref

    w.source.recover()
    row = _store(w).get("proj", cand.id)
    assert row.head_commit == ref and row.base_commit == cand.base_commit
    (audit,) = _reconcile_audits(w, "candidate.reconcile")
    assert (audit.before, audit.after) == (cand.head_commit, ref)
    # the workspace never followed; the next publish finds its changes in and repairs it
    assert ws.publish().published is False
    rec = _store(w).get_workspace(cand.id, "alice")
    assert rec.base_commit == ref and rec.head_commit == _refs(w)[ws.ref] == ref


def test_a_sync_merge_whose_row_was_not_written_is_reconciled(
    pw: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = pw
    cands = w.source.candidates
    cand = cands.create("sync", "Sync", ALICE)
    alice = cands.workspace(cand.id, "alice", identity=ALICE)
    bob = cands.workspace(cand.id, "bob", identity=BOB)
    alice.write("a.txt", lines("a", l1="alice"), if_match="*")
    bob.write("b.txt", lines("b", l2="bob"), if_match="*")
    bob_commit = bob.publish().commit
    assert bob_commit is not None
    _FailOnce(monkeypatch, "update_workspace")
    with pytest.raises(DatabaseUnavailable):
        alice.sync()
    monkeypatch.undo()
    ref = _refs(w)[alice.ref]
    mirror = w.upstream.__class__(w.mirror_path or w.upstream.path)
    old = _store(w).get_workspace(cand.id, "alice")
    assert mirror.parents(ref) == [old.head_commit, bob_commit]  # the sync's merge

    (done,) = w.source.reconcile()
    assert done == Reconciled(cand.id, "alice", old.head_commit, ref, bob_commit)
    rec = _store(w).get_workspace(cand.id, "alice")
    assert (rec.head_commit, rec.base_commit, rec.changes_base, rec.conflicts) == (
        ref, bob_commit, None, ())
    assert alice.unpublished() == ["a.txt"]  # only alice's own change is unpublished
    assert alice.sync().moved is False  # in sync already


def test_a_rebase_whose_row_was_not_written_is_reconciled(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    cands = w.source.candidates
    cand = cands.create("reb", "Rebase", ALICE, strategy="merge")
    ws = cands.workspace(cand.id, "alice", identity=ALICE)
    ws.write("a.txt", lines("a", l1="alice"), if_match="*")
    ws.publish()
    target = move_target(w, {"c.txt": lines("c", l5="upstream").decode()})
    _FailOnce(monkeypatch, "update")
    with pytest.raises(DatabaseUnavailable):
        cands.rebase(cand.id)
    monkeypatch.undo()
    ref = _refs(w)[cand.ref]
    stale = _store(w).get("proj", cand.id)
    assert stale.head_commit != ref and stale.base_commit == cand.base_commit

    (done,) = w.source.reconcile()
    assert done == Reconciled(cand.id, None, stale.head_commit, ref, target)
    row = _store(w).get("proj", cand.id)
    assert (row.head_commit, row.base_commit, row.target_checked, row.has_conflicts) == (
        ref, target, target, False)
    assert cands.rebase(cand.id).moved is False  # up to date


def test_a_busy_workspace_is_left_to_its_holder(w: World, monkeypatch: pytest.MonkeyPatch) -> None:
    cands = w.source.candidates
    cand = cands.create("busy", "Busy", ALICE)
    ws = cands.workspace(cand.id, "alice", identity=ALICE)
    before = _store(w).get_workspace(cand.id, "alice").head_commit
    _FailOnce(monkeypatch, "update_workspace")
    ws.write("x.txt", b"x\n", if_match=None)  # the row write fails: logged, the save stands
    monkeypatch.undo()
    ref = _refs(w)[ws.ref]
    assert ref != before == _store(w).get_workspace(cand.id, "alice").head_commit
    ctx = cands.ctx
    with ctx.locks.workspace(cand.id, "alice"):  # a publish or sync under way
        assert w.source.reconcile() == []
        assert _store(w).get_workspace(cand.id, "alice").head_commit == before
    assert reconcile_workspace(ctx, cand.id, "alice") == Reconciled(
        cand.id, "alice", before, ref, None)
    assert _store(w).get_workspace(cand.id, "alice").head_commit == ref
    assert reconcile_workspace(ctx, cand.id, "alice") is None


def test_a_replaying_rebase_whose_row_was_not_written_finds_its_rewrites_again(
    w: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The candidate's commits were replaced: the workspaces' bases must map to the new ones,
    as the rebase would have recorded — checked against an uninterrupted twin candidate."""
    cands = w.source.candidates
    made = {}
    for name in ("twin", "cut"):  # the same edits, in two candidates
        cand = cands.create(name, name, ALICE)  # the default strategy: rebase (replay)
        alice = cands.workspace(cand.id, "alice", identity=ALICE)
        alice.write("a.txt", lines("a", l1="alice"), if_match="*")
        alice.publish()
        bob = cands.workspace(cand.id, "bob", identity=BOB)
        bob.write("b.txt", lines("b", l2="bob"), if_match="*")
        bob.publish()
        alice.write("a2.txt", b"unpublished\n", if_match=None)
        made[name] = (cand.id, alice, bob)
    target = move_target(w, {"c.txt": lines("c", l5="upstream").decode()})
    twin_id, twin_alice, _ = made["twin"]
    assert cands.rebase(twin_id).moved
    cut_id, cut_alice, cut_bob = made["cut"]
    before = _store(w).get("proj", cut_id)
    _FailOnce(monkeypatch, "update")
    with pytest.raises(DatabaseUnavailable):
        cands.rebase(cut_id)
    monkeypatch.undo()
    ref = _refs(w)[before.ref]
    assert _store(w).get("proj", cut_id).rewrites == before.rewrites == {}

    (done,) = w.source.reconcile()
    assert done == Reconciled(cut_id, None, before.head_commit, ref, target)
    twin, cut = _store(w).get("proj", twin_id), _store(w).get("proj", cut_id)
    mirror = w.upstream.__class__(w.mirror_path or w.upstream.path)

    def shape(rewrites: Any) -> list[tuple[str, str]]:
        """old → new as (subject of the old, subject of the new) pairs (ids differ)."""
        subject = lambda c: mirror.git("log", "-1", "--format=%s", c).strip()  # noqa: E731
        return sorted((subject(k), subject(v)) for k, v in rewrites.items())

    assert len(cut.rewrites) == len(twin.rewrites) >= 2
    assert shape(cut.rewrites) == shape(twin.rewrites)
    assert _store(w).get_workspace(cut_id, "alice").base_commit in cut.rewrites
    # the workspaces then sync as the twin's do: bob to the candidate's head, alice keeping
    # her unpublished file on top of it
    twin_alice.sync()
    for ws in (cut_alice, cut_bob):
        assert ws.sync().conflicts == ()
    assert mirror.ls_tree(_refs(w)[cut_bob.ref]) == mirror.ls_tree(ref)
    assert mirror.ls_tree(_refs(w)[cut_alice.ref]) == mirror.ls_tree(_refs(w)[twin_alice.ref])
    assert cut_alice.unpublished() == ["a2.txt"]
