"""Syncing every workspace of a candidate at once (``Candidates.sync_workspaces``) gives, for each
workspace, exactly what its own ``Workspace.sync()`` gives — for 50 workspaces of which some
fast-forward, some merge cleanly, some conflict, some are already in sync — while moving every ref
in one compare-and-swap transaction; a save racing the pass, and a workspace whose lock is held,
are synced on their own. The bulk row and audit writes are checked on SQLite and PostgreSQL.

Two candidates are built identically (same saves, same publishes, in the same order): one is
synced in bulk, the other workspace by workspace. Their commit ids differ (dates, messages), so
results are compared after naming every candidate commit by its place in the candidate's history
and every workspace commit by its tree and its parents'.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from revisor.db import Database
from revisor.db.candidates import (
    AuditRecord,
    CandidateStore,
    CandidateStrategy,
    Resolution,
    WorkspaceConflict,
)
from revisor.errors import InvalidState
from revisor.services.candidate_types import SyncResult
from revisor.services.candidates import Candidates
from revisor.services.workspaces import Workspace
from revisor.vcs import ObjectId, Repository, Signature
from tests.integration.test_candidates_support import (
    ALICE,
    BOB,
    World,
    candidates,
    lines,
    world,
)
from tests.unit.test_db import _pg_database, postgres  # noqa: F401 - the session's server

USERS = 50


@pytest.fixture
def local(tmp_path: Path) -> Iterator[World]:
    wo = world("local", tmp_path)
    try:
        yield wo
    finally:
        wo.close()


def _edit(ws: Workspace, path: str, content: bytes) -> None:
    _, etag = ws.read(path)
    ws.write(path, content, if_match=etag)


def _kind(i: int) -> str:
    """What user ``i`` does: nothing (a fast-forward), an edit that merges cleanly, or one that
    collides with the candidate's second commit."""
    return ("none", "none", "clean", "clean", "conflict")[i % 5]


class Scenario:
    """One candidate with :data:`USERS` workspaces, moved twice; each step identical for every
    candidate built with it, so two of them can be compared."""

    def __init__(self, c: Candidates, name: str) -> None:
        self.c = c
        self.cand = c.create(name, "Bulk", ALICE)
        self.users = [f"user-{i:02d}" for i in range(USERS)]
        self.ws = {u: c.workspace(self.cand.id, u) for u in self.users}
        self.publisher = c.workspace(self.cand.id, "publisher", identity=BOB)

    def publish(self, path: str, content: bytes) -> None:
        _edit(self.publisher, path, content)
        assert self.publisher.publish().published

    def round_one(self) -> None:
        """Clean edits of some users (one of them in two saves), then the candidate moves once."""
        for i, u in enumerate(self.users):
            if _kind(i) != "none":
                _edit(self.ws[u], "a.txt", lines("a", **{f"l{i % 20}": f"user {i}"}))
            if i == 7:
                self.ws[u].write(f"own/{i}.txt", b"a second save\n", if_match=None)
        self.publish("docs/guide.md", b"guide, first move\n")

    def round_two(self) -> None:
        """More edits (some colliding with the candidate's next commits), then three commits."""
        for i, u in enumerate(self.users):
            if _kind(i) == "clean":
                self.ws[u].write(f"notes/{i}.txt", f"notes of user {i}\n".encode(),
                                 if_match=None)
            elif _kind(i) == "conflict":
                _edit(self.ws[u], "b.txt", lines("b", l10=f"user {i} on line ten"))
        self.publish("c.txt", lines("c", l0="candidate, second move"))
        self.publish("b.txt", lines("b", l10="the candidate's line ten"))
        self.publish("c.txt", lines("c", l0="candidate, second move", l19="and again"))
        # a workspace made after the candidate moved is in sync already
        self.ws["late"] = self.c.workspace(self.cand.id, "late")
        self.users.append("late")


class Names:
    """Commit ids → names that two identically built candidates share."""

    def __init__(self, repo: Repository, cand_head: ObjectId, base: ObjectId) -> None:
        self.repo = repo
        self.position: dict[str, int] = {base: 0}
        current = cand_head
        found: list[ObjectId] = []
        while current != base:
            found.append(current)
            current = repo.changeset(current).parents[0]
        for n, commit in enumerate(reversed(found), start=1):
            self.position[commit] = n

    def __call__(self, commit: str) -> object:
        if commit in self.position:
            return ("candidate", self.position[commit])
        cs = self.repo.changeset(commit)
        return ("commit", cs.tree, tuple(self(p) for p in cs.parents))


def _normal(names: Names, r: SyncResult) -> tuple[object, ...]:
    return (
        r.user, names(r.head), names(r.synced_to), r.up_to_date, r.moved,
        tuple((x.path, tuple(names(c) for c in x.candidate_commits), x.users)
              for x in r.conflicts),
        tuple(names(p) for p in r.pending),
    )


def _rows(c: Candidates, names: Names, cand_id: int) -> list[tuple[object, ...]]:
    return [
        (w.user, names(w.head_commit), names(w.base_commit), w.changes_base,
         tuple((x.path, tuple(names(k) for k in x.candidate_commits), x.users)
               for x in w.conflicts),
         dict(w.resolutions))
        for w in c.ctx.store.list_workspaces(cand_id)
    ]


def _compare(c: Candidates, bulk: Scenario, single: Scenario,
             got: Sequence[SyncResult], want: Sequence[SyncResult]) -> None:
    repo = c.ctx.repo
    a = Names(repo, c.get(bulk.cand.id).head_commit, bulk.cand.base_commit)
    b = Names(repo, c.get(single.cand.id).head_commit, single.cand.base_commit)
    assert [_normal(a, r) for r in got] == [_normal(b, r) for r in want]
    assert _rows(c, a, bulk.cand.id) == _rows(c, b, single.cand.id)
    heads = repo.refs("refs/revisor/workspaces/")
    for rec in c.workspaces(bulk.cand.id):  # each row mirrors its ref
        assert heads[rec.ref] == c.ctx.store.get_workspace(bulk.cand.id, rec.user).head_commit


def _one_by_one(c: Candidates, s: Scenario) -> list[SyncResult]:
    return [c.workspace(s.cand.id, rec.user, create=False).sync()
            for rec in c.workspaces(s.cand.id)]


def _counting(monkeypatch: pytest.MonkeyPatch, name: str) -> list[int]:
    calls: list[int] = []
    original: Callable[..., Any] = getattr(Repository, name)

    def wrapper(self: Repository, *args: Any, **kwargs: Any) -> Any:
        calls.append(len(args[0]) if name == "update_refs" else 1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Repository, name, wrapper)
    return calls


def test_bulk_sync_equals_syncing_one_by_one(local: World,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    c = candidates(local)
    bulk, single = Scenario(c, "bulk-sync"), Scenario(c, "one-by-one")
    for step in ("round_one", "round_two"):
        getattr(bulk, step)()
        getattr(single, step)()
        with monkeypatch.context() as m:
            ref_calls = _counting(m, "update_refs")
            got = c.sync_workspaces(bulk.cand.id)
        want = _one_by_one(c, single)
        assert len(ref_calls) == 1  # every move in one compare-and-swap transaction
        _compare(c, bulk, single, got, want)
        moved = [r for r in got if r.moved]
        assert ref_calls[0] == len(moved)
    # the last round had every kind of outcome
    kinds = {(r.moved, r.up_to_date, bool(r.conflicts)) for r in got}
    assert kinds == {(True, True, False), (True, False, True), (False, True, False)}
    by_user = {r.user: r for r in got}
    assert by_user["late"] == SyncResult("late", by_user["late"].head, by_user["late"].head,
                                         True, False)
    conflicted = by_user["user-04"]
    assert [(x.path, x.users) for x in conflicted.conflicts] == [("b.txt", ("publisher",))]
    assert len(conflicted.pending) == 2
    # what the users wrote is all there, with the candidate's changes
    ws = bulk.ws["user-02"]
    assert ws.read("a.txt")[0] == lines("a", l2="user 2")
    assert ws.read("notes/2.txt")[0] == b"notes of user 2\n"
    assert ws.read("c.txt")[0] == lines("c", l0="candidate, second move", l19="and again")
    # nothing left to do: a second pass moves nothing, and writes nothing
    audit_before = len(local.rv.audit.query(source="proj", action="workspace.sync", limit=1000))
    with monkeypatch.context() as m:
        ref_calls = _counting(m, "update_refs")
        again = c.sync_workspaces(bulk.cand.id)
    assert not any(r.moved for r in again)
    assert all(r.up_to_date for r in again if not r.conflicts)
    assert ref_calls == []
    # the conflicting ones were re-examined (their conflicts stand) and audited once each
    audit_after = len(local.rv.audit.query(source="proj", action="workspace.sync", limit=1000))
    assert audit_after - audit_before == sum(1 for r in again if r.conflicts)
    # resolving one, then syncing in bulk again, leaves it in sync
    assert ws.publish().published
    resolved = bulk.ws["user-04"].resolve({"b.txt": "theirs"})
    assert resolved.done
    final = {r.user: r for r in c.sync_workspaces(bulk.cand.id)}
    assert final["user-04"].up_to_date and not final["user-04"].conflicts
    assert final["user-00"].up_to_date and final["user-00"].moved


def test_merging_without_an_explicit_base_is_the_same_merge(local: World) -> None:
    """After a first sync the workspaces' heads are merge commits; the graph still shows their
    base as the only common ancestor, and git's merge without it is the merge with it."""
    from revisor.services.workspace_sync import History
    from revisor.vcs import commits_to_replay

    c = candidates(local)
    s = Scenario(c, "natural")
    s.round_one()
    c.sync_workspaces(s.cand.id)
    s.round_two()
    repo = c.ctx.repo
    cand = c.get(s.cand.id)
    history = History(repo, cand)
    checked = 0
    for i, u in enumerate(s.users[:USERS]):
        rec = c.ctx.store.get_workspace(s.cand.id, u)
        head = s.ws[u].head()
        chain, mapped = history.pending(rec, cand.head_commit)
        assert history.natural_base(rec, head, cand.head_commit, mapped), u
        if _kind(i) == "none":
            continue
        own = commits_to_replay(repo, rec.base_commit, head, merges=True)
        assert any(len(repo.changeset(x).parents) == 2 for x in own)  # not a linear history
        for ci in chain:
            plain, based = repo.merge(head, ci), repo.merge(head, ci, base=rec.base_commit)
            assert plain.conflicts == based.conflicts, (u, ci)
            if plain.clean:
                assert plain.tree == based.tree, (u, ci)
            checked += 1
    assert checked >= 2 * USERS * 3 // 5
    # a base that is not an ancestor of the head (a publish that raced a save) is not natural
    rec = c.ctx.store.get_workspace(s.cand.id, "user-02")
    assert not history.natural_base(rec, s.cand.base_commit, cand.head_commit, None)


def test_a_save_during_the_pass_is_synced_on_its_own(local: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    c = candidates(local)
    s = Scenario(c, "racing")
    s.round_one()
    victim = s.ws["user-02"]
    original = Repository.update_refs
    batches: list[int] = []

    def racing(self: Repository, updates: Any, message: str = "") -> None:
        if len(updates) > 1:  # the bulk's transaction; before the first, a save lands
            if not batches:
                victim.write("racing.txt", b"saved during the pass\n", if_match=None)
            batches.append(len(updates))
        original(self, updates, message)

    monkeypatch.setattr(Repository, "update_refs", racing)
    results = {r.user: r for r in c.sync_workspaces(s.cand.id)}
    monkeypatch.undo()
    assert batches[1] == batches[0] - 1  # applied again without the workspace that moved
    r = results["user-02"]
    assert r.up_to_date and r.moved
    assert victim.read("racing.txt")[0] == b"saved during the pass\n"
    assert victim.read("docs/guide.md")[0] == b"guide, first move\n"
    assert victim.read("a.txt")[0] == lines("a", l2="user 2")
    assert all(x.up_to_date for x in results.values())


def test_a_busy_workspace_waits_for_its_lock(local: World) -> None:
    c = candidates(local)
    s = Scenario(c, "busy-one")
    s.round_one()
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with c.ctx.locks.workspace(s.cand.id, "user-03"):
            held.set()
            release.wait(30)

    t = threading.Thread(target=hold)
    t.start()
    assert held.wait(30)
    timer = threading.Timer(0.5, release.set)
    timer.start()
    started = time.monotonic()
    results = {r.user: r for r in c.sync_workspaces(s.cand.id)}
    t.join(30)
    assert time.monotonic() - started >= 0.4  # user-03 was synced after its lock was freed
    assert results["user-03"].up_to_date and results["user-03"].moved
    assert all(r.up_to_date for r in results.values())
    # the bulk pass's own locks are free again
    with c.ctx.locks.try_workspaces(s.cand.id, s.users) as got:
        assert got == set(s.users)


def test_out_of_file_descriptors_the_rest_sync_one_by_one(
    local: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    from revisor.services import candidate_support

    c = candidates(local)
    s = Scenario(c, "few-fds")
    s.round_one()
    real_open = os.open
    opened: list[str] = []

    def scarce(path: Any, flags: int, mode: int = 0o777) -> int:
        if sys._getframe(1).f_code.co_name == "try_workspaces":  # the pass's locks only
            if len(opened) >= 10:
                raise OSError(errno.EMFILE, "Too many open files")
            opened.append(str(path))
        return real_open(path, flags, mode)

    monkeypatch.setattr(candidate_support.os, "open", scarce)
    with monkeypatch.context() as m:
        ref_calls = _counting(m, "update_refs")
        results = c.sync_workspaces(s.cand.id)
    assert len(opened) == 10 and ref_calls[0] == 10  # the pass: the ten it could lock
    assert len(results) == USERS + 1
    assert all(r.up_to_date for r in results)
    assert sum(r.moved for r in results) == USERS  # everyone but the publisher moved


def test_closed_candidates_are_refused(local: World) -> None:
    c = candidates(local)
    s = Scenario(c, "closed-one")
    c.abandon(s.cand.id, ALICE)
    with pytest.raises(InvalidState):
        c.sync_workspaces(s.cand.id)


# -- the rows, on both databases ------------------------------------------------------------------
SHA = ObjectId("a" * 40)
SHA2 = ObjectId("b" * 40)
WHEN = Signature("Alice", "alice@example.com", datetime(2024, 1, 1, tzinfo=UTC))


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'revisor.db'}"
    else:
        url = _pg_database(request.getfixturevalue("postgres"))
    database = Database(url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


def test_bulk_rows_and_audit(db: Database) -> None:
    store = CandidateStore(db)
    cid = store.create("proj", name="rows-1", title="T", description="", author=WHEN,
                       target_branch="main", base_commit=SHA,
                       strategy=CandidateStrategy.REBASE).id
    for user in ("ann", "Łukasz", "zoe"):
        store.create_workspace(cid, user, author=WHEN, base_commit=SHA)
    ann, luk, zoe = store.list_workspaces(cid)
    conflict = WorkspaceConflict("a.txt", (SHA2,), ("bob",))
    kept = {"a.txt": Resolution("a.txt", SHA, 0o100644, SHA2)}
    with db.session() as s:
        store.update_workspaces(cid, [
            (ann, SHA2, {"base_commit": SHA2, "changes_base": None, "conflicts": ()}),
            (luk, SHA2, {"conflicts": (conflict,), "resolutions": kept}),
            (zoe, SHA, {"conflicts": (), "resolutions": {}}),
        ], session=s)
        store.record_audit([
            AuditRecord("Ann <a@x>", "workspace.sync", "proj", ann.ref, SHA, SHA2,
                        {"candidate": cid}),
            AuditRecord("Zoe <z@x>", "workspace.sync", "proj", zoe.ref),
        ], session=s)
    ann2, luk2, zoe2 = store.list_workspaces(cid)
    assert (ann2.head_commit, ann2.base_commit, ann2.conflicts) == (SHA2, SHA2, ())
    assert (luk2.head_commit, luk2.base_commit, luk2.conflicts) == (SHA2, SHA, (conflict,))
    assert luk2.resolutions == kept and luk2.updated_at >= luk.updated_at
    assert zoe2.head_commit == SHA
    with pytest.raises(ValueError, match="not in candidate"):
        store.update_workspaces(cid + 1, [(ann, SHA, {})])
    with pytest.raises(TypeError, match="unknown workspace field"):
        store.update_workspaces(cid, [(ann, SHA, {"user_name": "x"})])
    from revisor.db.audit import AuditLog

    entries = AuditLog(db).query(source="proj", limit=10)
    assert [(e.actor, e.target, e.before, e.after, e.details) for e in entries] == [
        ("Zoe <z@x>", zoe.ref, None, None, {}),
        ("Ann <a@x>", ann.ref, SHA, SHA2, {"candidate": cid}),
    ]
