"""Three users in one candidate, with the target moving underneath: saves with ETags, publish,
sync (seed 001's flow), conflicts and their resolution, rollback, a crash mid-publish — on a
``local`` source and on a ``git`` source (refs in the mirror). Every assertion about the result is
read back with the git CLI."""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor.db.candidates import Candidate
from revisor.errors import (
    InvalidInput,
    InvalidPath,
    InvalidState,
    NotFound,
    PathConflict,
    PathNotFound,
    PreconditionFailed,
    PreconditionRequired,
    ValidationFailed,
    WorkspaceNotFound,
)
from revisor.services.candidate_types import ANY
from revisor.services.candidates import Candidates
from revisor.services.workspaces import Workspace
from tests.integration.test_candidates_support import (
    ALICE,
    BOB,
    CAROL,
    World,
    candidates,
    lines,
    move_target,
    publish_child,
    world,
)

KINDS = ["local", "git"]


@pytest.fixture(params=KINDS)
def w(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    wo = world(request.param, tmp_path)
    try:
        yield wo
    finally:
        wo.close()


@pytest.fixture
def local(tmp_path: Path) -> Iterator[World]:
    wo = world("local", tmp_path)
    try:
        yield wo
    finally:
        wo.close()


def _setup(w: World, name: str = "release-1") -> tuple[Candidates, Candidate, Workspace,
                                                       Workspace, Workspace]:
    c = candidates(w)
    cand = c.create(name, "Release 1", ALICE, description="The first release.")
    alice = c.workspace(cand.id, "alice", identity=ALICE)
    bob = c.workspace(cand.id, "bob", identity=BOB)
    carol = c.workspace(cand.id, "carol", identity=CAROL)
    return c, cand, alice, bob, carol


def _edit(ws: Workspace, path: str, content: bytes) -> str:
    _, etag = ws.read(path)
    return ws.write(path, content, if_match=etag)


def _repo_show(w: World, rev: str, path: str) -> bytes:
    import subprocess

    where = w.mirror_path or w.upstream.path
    return subprocess.run(["git", f"--git-dir={where}", "cat-file", "blob", f"{rev}:{path}"],
                          capture_output=True, check=True).stdout


def _log(w: World, rev: str) -> list[str]:
    from tests.integration.test_transactions_support import Upstream

    repo = Upstream(w.mirror_path or w.upstream.path)
    return repo.git("log", "--first-parent", "--format=%H %an", rev).splitlines()


# -- saving with ETags -----------------------------------------------------------------------------
def test_workspace_is_a_ref_at_the_candidate_head(w: World) -> None:
    c, cand, alice, _bob, _ = _setup(w)
    refs = w.mirror_refs("refs/revisor/")
    assert refs[f"refs/revisor/candidates/{cand.id}"] == cand.base_commit
    assert refs[f"refs/revisor/workspaces/{cand.id}/alice"] == cand.base_commit
    assert refs[f"refs/revisor/workspaces/{cand.id}/bob"] == cand.base_commit
    assert [r.user for r in c.workspaces(cand.id)] == ["alice", "bob", "carol"]
    data, etag = alice.read("a.txt")
    assert data == lines("a")
    assert etag == w.upstream.git("rev-parse", "main:a.txt").strip()  # the blob id
    with pytest.raises(WorkspaceNotFound):
        c.workspace(cand.id, "dave", create=False)
    with pytest.raises(NotFound):
        c.workspace(cand.id + 100, "alice")
    with pytest.raises(PathNotFound):
        alice.read("missing.txt")


def test_every_save_is_one_commit_by_the_user(w: World) -> None:
    _, cand, alice, _, _ = _setup(w)
    before = alice.head()
    etag = _edit(alice, "a.txt", lines("a", l1="alice was here"))
    assert alice.read("a.txt") == (lines("a", l1="alice was here"), etag)
    new_etag = alice.write("new/file.txt", b"new\n", if_match=None)
    alice.delete("b.txt", if_match=alice.etag("b.txt"))
    moved = alice.move("c.txt", "docs/c.txt", if_match=alice.etag("c.txt"))
    history = _log(w, alice.ref)
    assert len(history) == 5 and history[-1].split()[0] == before
    assert all(line.endswith("Alice Liddell") for line in history[:4])
    assert alice.etag("new/file.txt") == new_etag
    assert alice.etag("docs/c.txt") == moved and alice.etag("c.txt") is None
    assert alice.unpublished() == ["a.txt", "b.txt", "c.txt", "docs/c.txt", "new/file.txt"]
    # the candidate did not move
    assert candidates(w).get(cand.id).head_commit == cand.base_commit


def test_preconditions(local: World) -> None:
    _, _, alice, _, _ = _setup(local)
    _data, etag = alice.read("a.txt")
    with pytest.raises(PreconditionRequired) as required:
        alice.write("a.txt", b"x", if_match=None)
    assert required.value.current == etag
    with pytest.raises(PreconditionFailed) as failed:
        alice.write("a.txt", b"x", if_match="0" * 40)
    assert failed.value.current == etag
    with pytest.raises(PreconditionFailed):
        alice.write("missing.txt", b"x", if_match=ANY)
    with pytest.raises(PreconditionFailed) as gone:
        alice.delete("missing.txt", if_match=etag)
    assert gone.value.current is None
    with pytest.raises(PathNotFound):
        alice.delete("missing.txt", if_match=None)
    assert alice.write("a.txt", b"quoted\n", if_match=f'"{etag.upper()}"')
    alice.write("a.txt", b"any\n", if_match=ANY)
    with pytest.raises(InvalidPath):
        alice.write("../escape", b"x", if_match=None)
    with pytest.raises(InvalidPath):
        alice.write(".git/config", b"x", if_match=None)
    with pytest.raises(PathConflict):
        alice.write("docs", b"x", if_match=None)
    same = alice.head()
    assert alice.write("a.txt", b"any\n", if_match=ANY)  # the same content: no new commit
    assert alice.head() == same


def test_binary_files_round_trip_and_conflict(local: World) -> None:
    c, cand, alice, bob, carol = _setup(local)
    blob = bytes(range(255, -1, -1)) * 64 + b"\x00\xff"
    etag = carol.write("img/new.png", blob, if_match=None)
    assert carol.read("img/new.png") == (blob, etag)
    assert carol.publish().published
    _edit(alice, "logo.bin", b"\x00alice" * 100)
    _edit(bob, "logo.bin", b"\x00bob" * 100)
    assert alice.publish().published
    result = bob.publish()
    assert not result.published
    assert [(x.path, x.users) for x in result.conflicts] == [("logo.bin", ("alice",))]
    versions = {v.path: v for v in bob.conflicts()}
    assert versions["logo.bin"].theirs is not None
    assert versions["logo.bin"].theirs.data == b"\x00alice" * 100
    ours = versions["logo.bin"].ours
    assert ours is not None and ours.data == b"\x00bob" * 100
    assert versions["logo.bin"].base is not None
    done = bob.resolve({"logo.bin": "ours"})
    assert done.done
    assert bob.publish().published
    head = c.get(cand.id).head_commit
    assert _repo_show(local, head, "logo.bin") == b"\x00bob" * 100
    assert _repo_show(local, head, "img/new.png") == blob


# -- publish and sync ------------------------------------------------------------------------------
def test_disjoint_edits_merge_cleanly_with_the_target_moving(w: World) -> None:
    c, cand, alice, bob, carol = _setup(w)
    _edit(alice, "a.txt", lines("a", l1="alice"))
    _edit(bob, "b.txt", lines("b", l2="bob"))
    _edit(carol, "docs/guide.md", b"carol's guide\n")
    moved = move_target(w, {"c.txt": lines("c", l3="upstream").decode()})
    p1 = alice.publish()
    p2 = bob.publish()
    assert p1.published and p2.published and p2.commit is not None
    rebased = c.rebase(cand.id)
    assert rebased.moved and rebased.candidate.base_commit == moved
    s = carol.sync()
    assert s.up_to_date and s.moved and not s.conflicts
    assert carol.read("a.txt")[0] == lines("a", l1="alice")
    assert carol.read("b.txt")[0] == lines("b", l2="bob")
    assert carol.read("c.txt")[0] == lines("c", l3="upstream")
    assert carol.read("docs/guide.md")[0] == b"carol's guide\n"
    assert carol.publish().published
    head = c.get(cand.id).head_commit
    for path, want in [("a.txt", lines("a", l1="alice")), ("b.txt", lines("b", l2="bob")),
                       ("c.txt", lines("c", l3="upstream")),
                       ("docs/guide.md", b"carol's guide\n")]:
        assert _repo_show(w, head, path) == want
    # the candidate's history: three publishes on the moved target, one per user, authored
    authors = [line.split(" ", 1)[1] for line in _log(w, head)[:3]]
    assert authors == ["Carol", "Bob", "Alice Liddell"]
    assert _log(w, head)[3].split()[0] == moved
    # alice and bob follow on their next sync: fast-forwards (no unpublished changes)
    for ws in (alice, bob):
        result = ws.sync()
        assert result.up_to_date and ws.head() == head and ws.unpublished() == []
    w.upstream.fsck()


def test_same_line_publish_conflict_names_the_users(w: World) -> None:
    c, cand, alice, bob, carol = _setup(w)
    _edit(alice, "a.txt", lines("a", l5="alice's line five"))
    _edit(bob, "a.txt", lines("a", l5="bob's line five"))
    _edit(carol, "b.txt", lines("b", l9="carol"))
    first = alice.publish()
    assert first.published
    head = c.get(cand.id).head_commit
    result = bob.publish()
    assert not result.published and result.user == "bob"
    assert [(x.path, x.candidate_commits, x.users) for x in result.conflicts] == [
        ("a.txt", (first.commit,), ("alice",))
    ]
    assert c.get(cand.id).head_commit == head  # nothing moved
    assert carol.publish().published  # others are not blocked
    [v] = bob.conflicts()
    assert v.path == "a.txt" and not v.resolved and v.users == ("alice",)
    assert v.base is not None and v.base.data == lines("a")
    assert v.theirs is not None and v.theirs.data == lines("a", l5="alice's line five")
    assert v.ours is not None and v.ours.data == lines("a", l5="bob's line five")
    merged = lines("a", l5="alice's and bob's line five")
    resolved = bob.resolve({"a.txt": merged})
    assert resolved.done and resolved.synced_to == c.get(cand.id).head_commit
    assert bob.conflicts() == []
    assert bob.read("b.txt")[0] == lines("b", l9="carol")  # the merge brought carol's change
    assert bob.publish().published
    assert _repo_show(w, c.get(cand.id).head_commit, "a.txt") == merged


def test_sync_stops_at_the_newest_clean_candidate_commit(w: World) -> None:
    _c, _cand, alice, bob, carol = _setup(w)
    _edit(bob, "b.txt", lines("b", l3="bob"))
    bob_head = bob.head()
    _edit(alice, "a.txt", lines("a", l1="alice 1"))
    c1 = alice.publish().commit
    _edit(carol, "c.txt", lines("c", l1="carol 2"))
    c2 = carol.publish().commit
    _edit(alice, "b.txt", lines("b", l3="alice 3"))  # collides with bob's unpublished edit
    c3 = alice.publish().commit
    _edit(carol, "docs/guide.md", b"carol 4\n")
    c4 = carol.publish().commit
    assert None not in (c1, c2, c3, c4)
    result = bob.sync()
    assert result.synced_to == c2 and not result.up_to_date and result.moved
    assert result.pending == (c3, c4)
    assert [(x.path, x.candidate_commits, x.users) for x in result.conflicts] == [
        ("b.txt", (c3,), ("alice",))
    ]
    # a merge commit on top of bob's own work: parents (bob's head, c2); nothing of his lost
    parents = _parents(w, bob.head())
    assert parents == [bob_head, c2]
    assert bob.read("b.txt")[0] == lines("b", l3="bob")
    assert bob.read("a.txt")[0] == lines("a", l1="alice 1")
    assert bob.read("c.txt")[0] == lines("c", l1="carol 2")
    assert bob.read("docs/guide.md")[0] == "".join(f"guide {i}\n" for i in range(20)).encode()
    rec = bob.record()
    assert rec.base_commit == c2 and [x.path for x in rec.conflicts] == ["b.txt"]
    # syncing again changes nothing while the conflict stands
    again = bob.sync()
    assert again.synced_to == c2 and not again.moved
    # resolving takes the candidate's side; the workspace then records its merge with c4
    done = bob.resolve({"b.txt": "theirs"})
    assert done.done and done.synced_to == c4
    assert _parents(w, bob.head())[1] == c4
    assert bob.read("b.txt")[0] == lines("b", l3="alice 3")
    assert bob.read("docs/guide.md")[0] == b"carol 4\n"
    assert bob.sync().up_to_date
    assert bob.publish().published is False  # nothing of his own is left to publish


def _config(w: World) -> dict[str, object]:
    return {"data_dir": str(w.data_dir), "sources": {"proj": w.source_config}}


def _parents(w: World, rev: str) -> list[str]:
    from tests.integration.test_transactions_support import Upstream

    return Upstream(w.mirror_path or w.upstream.path).parents(rev)


def test_sync_with_no_clean_commit_stays_put(local: World) -> None:
    _c, cand, alice, bob, _ = _setup(local)
    _edit(bob, "a.txt", lines("a", l0="bob"))
    _edit(alice, "a.txt", lines("a", l0="alice"))
    c1 = alice.publish().commit
    head = bob.head()
    result = bob.sync()
    assert not result.moved and bob.head() == head and result.pending == (c1,)
    assert result.synced_to == cand.base_commit
    assert [x.path for x in result.conflicts] == ["a.txt"]


def test_delete_versus_edit(w: World) -> None:
    c, cand, alice, bob, _ = _setup(w)
    alice.delete("c.txt", if_match=alice.etag("c.txt"))
    _edit(bob, "c.txt", lines("c", l7="bob keeps it"))
    deleted = alice.publish()
    assert deleted.published
    result = bob.publish()
    assert [(x.path, x.users) for x in result.conflicts] == [("c.txt", ("alice",))]
    sync = bob.sync()
    assert not sync.moved and [x.path for x in sync.conflicts] == ["c.txt"]
    [v] = bob.conflicts()
    assert v.theirs is None and v.ours is not None and v.base is not None
    # partial answers are kept; a wrong path is refused by name
    with pytest.raises(ValidationFailed) as refused:
        bob.resolve({"a.txt": "ours"})
    assert refused.value.field == "resolutions['a.txt']"
    assert bob.resolve({"c.txt": "ours"}).done
    assert bob.publish().published
    head = c.get(cand.id).head_commit
    assert _repo_show(w, head, "c.txt") == lines("c", l7="bob keeps it")


def test_edit_versus_delete_taking_theirs(local: World) -> None:
    _c, _cand, alice, bob, _ = _setup(local)
    _edit(alice, "c.txt", lines("c", l7="alice"))
    bob.delete("c.txt", if_match=bob.etag("c.txt"))
    assert alice.publish().published
    assert [x.path for x in bob.publish().conflicts] == ["c.txt"]
    [v] = bob.conflicts()
    assert v.ours is None and v.theirs is not None
    assert bob.resolve({"c.txt": "theirs"}).done
    assert bob.read("c.txt")[0] == lines("c", l7="alice")
    assert bob.publish().published is False


def test_rename_versus_edit_merges(w: World) -> None:
    c, cand, alice, bob, _ = _setup(w)
    alice.move("docs/guide.md", "docs/manual.md", if_match=alice.etag("docs/guide.md"))
    guide = bob.read("docs/guide.md")[0].replace(b"guide 2\n", b"bob's guide 2\n")
    bob.write("docs/guide.md", guide, if_match=bob.etag("docs/guide.md"))
    assert alice.publish().published
    s = bob.sync()
    assert s.up_to_date and not s.conflicts
    assert not bob.exists("docs/guide.md")
    assert bob.read("docs/manual.md")[0] == guide
    assert bob.publish().published
    head = c.get(cand.id).head_commit
    assert _repo_show(w, head, "docs/manual.md") == guide


def test_partial_resolution_keeps_the_rest_listed(local: World) -> None:
    _c, _cand, alice, bob, _ = _setup(local)
    _edit(alice, "a.txt", lines("a", l1="alice"))
    _edit(alice, "b.txt", lines("b", l1="alice"))
    _edit(bob, "a.txt", lines("a", l1="bob"))
    _edit(bob, "b.txt", lines("b", l1="bob"))
    assert alice.publish().published
    assert sorted(x.path for x in bob.publish().conflicts) == ["a.txt", "b.txt"]
    partial = bob.resolve({"a.txt": "ours"})
    assert not partial.done and partial.remaining == ("b.txt",)
    assert {v.path: v.resolved for v in bob.conflicts()} == {"a.txt": True, "b.txt": False}
    # the candidate changes a.txt again: the decision on it no longer stands
    _edit(alice, "a.txt", lines("a", l1="alice again"))
    assert alice.publish().published
    again = bob.resolve({"b.txt": "theirs"})
    assert not again.done and again.remaining == ("a.txt",)
    final = bob.resolve({"a.txt": lines("a", l1="bob and alice")})
    assert final.done
    assert bob.read("a.txt")[0] == lines("a", l1="bob and alice")
    assert bob.read("b.txt")[0] == lines("b", l1="alice")


def test_rollback(w: World) -> None:
    _c, _cand, alice, bob, _ = _setup(w)
    base_etag = alice.etag("a.txt")
    _edit(alice, "a.txt", lines("a", l1="changed"))
    alice.write("brand-new.txt", b"new\n", if_match=None)
    assert alice.rollback("a.txt") == base_etag
    assert alice.read("a.txt")[0] == lines("a")
    assert alice.rollback("brand-new.txt") is None
    assert not alice.exists("brand-new.txt")
    # rollback is to the candidate's base, not to what others published since
    _edit(bob, "b.txt", lines("b", l1="bob"))
    assert bob.publish().published
    alice.sync()
    assert alice.read("b.txt")[0] == lines("b", l1="bob")
    alice.rollback("b.txt")
    assert alice.read("b.txt")[0] == lines("b")
    assert alice.unpublished() == ["b.txt"]


def test_workspace_follows_a_rebased_candidate(w: World) -> None:
    c, cand, alice, bob, carol = _setup(w)
    _edit(alice, "a.txt", lines("a", l1="alice"))
    c1 = alice.publish().commit
    bob.sync()
    assert bob.record().base_commit == c1
    _edit(bob, "b.txt", lines("b", l1="bob, unpublished"))
    moved = move_target(w, {"c.txt": lines("c", l19="upstream").decode()})
    rebased = c.rebase(cand.id)
    assert rebased.moved and rebased.candidate.head_commit != c1
    s = bob.sync()
    assert s.up_to_date and not s.conflicts
    assert bob.read("c.txt")[0] == lines("c", l19="upstream")
    assert bob.read("a.txt")[0] == lines("a", l1="alice")
    assert bob.read("b.txt")[0] == lines("b", l1="bob, unpublished")
    assert bob.unpublished() == ["b.txt"]
    assert bob.publish().published
    head = c.get(cand.id).head_commit
    assert _repo_show(w, head, "a.txt") == lines("a", l1="alice")
    assert _repo_show(w, head, "b.txt") == lines("b", l1="bob, unpublished")
    assert _repo_show(w, head, "c.txt") == lines("c", l19="upstream")
    assert moved in _log(w, head)[-2]  # the candidate sits on the moved target
    # carol, never synced, with no changes: straight to the head
    assert carol.sync().up_to_date and carol.head() == head


def test_a_conflict_with_the_target_after_a_rebase_names_the_target_commit(w: World) -> None:
    c, cand, alice, bob, _ = _setup(w)
    _edit(alice, "a.txt", lines("a", l1="alice"))
    assert alice.publish().published
    bob.sync()
    _edit(bob, "c.txt", lines("c", l19="bob"))
    bob_head = bob.head()
    moved = move_target(w, {"c.txt": lines("c", l19="upstream").decode()})
    assert c.rebase(cand.id).moved  # the candidate itself never touched c.txt
    _edit(alice, "b.txt", lines("b", l1="alice again"))
    newest = alice.publish().commit
    result = bob.sync()
    assert not result.moved and bob.head() == bob_head
    [conflict] = result.conflicts
    assert conflict.path == "c.txt"
    assert conflict.candidate_commits == (moved,) and conflict.users == ("Up Stream",)
    assert result.pending[-1] == newest
    # taking the target's version settles it, and the workspace is in sync again
    assert bob.resolve({"c.txt": "theirs"}).done
    assert bob.read("b.txt")[0] == lines("b", l1="alice again")
    assert bob.read("c.txt")[0] == lines("c", l19="upstream")
    assert bob.sync().up_to_date


def test_refs_removed_by_hand(local: World) -> None:
    c, cand, alice, _, _ = _setup(local)
    _edit(alice, "a.txt", lines("a", l1="alice"))
    head = alice.head()
    up = local.upstream
    up.git("update-ref", "-d", alice.ref)
    up.git("update-ref", "-d", cand.ref)
    assert alice.read("a.txt")[0] == lines("a", l1="alice")  # put back from the row
    assert up.ref(alice.ref) == head and up.ref(cand.ref) == cand.head_commit
    c.abandon(cand.id, ALICE)
    up.git("update-ref", "-d", alice.ref)  # a cleanup of a closed candidate: left alone
    up.git("update-ref", "-d", cand.ref)
    assert c.get(cand.id).head_commit == cand.head_commit
    assert alice.head() == head
    assert up.refs("refs/revisor/candidates/") == {}
    assert alice.ref not in up.refs("refs/revisor/")


def test_closed_candidates_refuse_writes(local: World) -> None:
    c, cand, alice, bob, _ = _setup(local)
    _edit(alice, "a.txt", lines("a", l1="alice"))
    etag = bob.etag("b.txt")
    assert alice.publish().published
    c.abandon(cand.id, ALICE)
    for attempt in (
        lambda: bob.write("b.txt", b"x", if_match=etag),
        lambda: bob.delete("b.txt", if_match=etag),
        lambda: bob.rollback("b.txt"),
        bob.publish,
        bob.sync,
        lambda: bob.resolve({}),
        lambda: c.workspace(cand.id, "dave"),
    ):
        with pytest.raises(InvalidState):
            attempt()
    assert bob.read("b.txt")[0] == lines("b")  # reading still works
    assert c.workspace(cand.id, "alice").read("a.txt")[0] == lines("a", l1="alice")


def test_bad_user_names_are_refused_and_odd_ones_kept_apart(local: World) -> None:
    c, cand, alice, _, _ = _setup(local)
    with pytest.raises(InvalidInput):
        c.workspace(cand.id, "")
    upper = c.workspace(cand.id, "Alice")
    dots = c.workspace(cand.id, "../x.lock")
    upper.write("upper.txt", b"A\n", if_match=None)
    dots.write("dots.txt", b"dots\n", if_match=None)
    assert not alice.exists("upper.txt") and not dots.exists("upper.txt")
    refs = local.mirror_refs(f"refs/revisor/workspaces/{cand.id}/")
    assert f"refs/revisor/workspaces/{cand.id}/%41lice" in refs
    assert f"refs/revisor/workspaces/{cand.id}/%2E%2E%2Fx%2Elock" in refs
    assert upper.publish().published and dots.publish().published
    authors = {line.split(" ", 1)[1] for line in _log(local, c.get(cand.id).head_commit)[:2]}
    assert authors == {"Alice", "../x.lock"}  # the default identities: the user names


def test_crash_between_candidate_and_workspace_is_repaired(w: World) -> None:
    c, cand, _alice, bob, _ = _setup(w)
    _edit(bob, "b.txt", lines("b", l4="bob"))
    ws_head = bob.head()
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    child = ctx.Process(target=publish_child,
                        args=(_config(w), cand.id, "bob", out))
    child.start()
    child.join(120)
    assert child.exitcode == -9  # killed at publish.after_candidate
    head = c.get(cand.id).head_commit
    assert head != cand.base_commit  # the candidate moved, in one step
    assert _repo_show(w, head, "b.txt") == lines("b", l4="bob")
    assert bob.head() == ws_head  # the workspace did not follow
    # next access: nothing is published twice, the workspace is put in sync
    result = bob.publish()
    assert not result.published and not result.conflicts
    assert c.get(cand.id).head_commit == head
    assert bob.head() == head and bob.unpublished() == []
    assert bob.sync().up_to_date
