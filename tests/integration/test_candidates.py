"""Version candidates on real repositories (a ``local`` source and a ``git`` source with a bare
remote): creation and its validation, listing, files and diff against a moving target,
candidate ↔ target conflicts appearing and disappearing with a rebase, both strategies, abandon,
and submit through the builtin provider — the remote checked with ``git log``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor.db.candidates import CandidateStatus, CandidateStrategy
from revisor.errors import (
    AlreadyExists,
    CandidateNotFound,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from revisor.providers.base import MergeConflict, ProposalStatus
from revisor.services.candidate_types import FileStatus
from revisor.services.candidates import Candidates
from revisor.services.workspaces import Workspace
from revisor.vcs import Signature
from tests.integration.test_candidates_support import (
    ALICE,
    BOB,
    CAROL,
    World,
    candidates,
    lines,
    move_target,
    remote_log,
    world,
)


@pytest.fixture(params=["local", "git"])
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


@pytest.fixture
def remote(tmp_path: Path) -> Iterator[World]:
    wo = world("git", tmp_path)
    try:
        yield wo
    finally:
        wo.close()


def _edit(ws: Workspace, path: str, content: bytes | None) -> None:
    etag = ws.etag(path)
    if content is None:
        ws.delete(path, if_match=etag)
    else:
        ws.write(path, content, if_match=etag)


def _publish(c: Candidates, cid: int, user: str, who: Signature,
             changes: dict[str, bytes | None]) -> str:
    ws = c.workspace(cid, user, identity=who)
    ws.sync()
    for path, content in changes.items():
        _edit(ws, path, content)
    result = ws.publish()
    assert result.published and result.commit is not None, result
    return result.commit


# -- creating --------------------------------------------------------------------------------------
def test_create_is_a_ref_at_the_target_head(w: World) -> None:
    c = candidates(w)
    w.source.stored.repository  # noqa: B018 - a git source's mirror is fetched on first use
    objects = w.mirror_path or w.upstream.path
    before = sorted(p.name for p in (objects / "objects").rglob("*") if p.is_file())
    cand = c.create("release-1", "Release 1", ALICE, description="first")
    main = w.upstream.ref("refs/heads/main")
    assert cand.base_commit == cand.head_commit == main
    assert cand.status is CandidateStatus.OPEN and cand.strategy is CandidateStrategy.REBASE
    assert cand.target_branch == "main" and not cand.has_conflicts and cand.proposal is None
    assert w.mirror_refs("refs/revisor/") == {f"refs/revisor/candidates/{cand.id}": main}
    after = sorted(p.name for p in (objects / "objects").rglob("*") if p.is_file())
    assert after == before  # a ref, no copy: not one object written
    assert c.get(cand.id) == cand and c.by_name("release-1") == cand
    assert "candidate.create" in w.audit_actions()


def test_validation_names_every_field(local: World) -> None:
    c = candidates(local)
    with pytest.raises(ValidationFailed) as bad:
        c.create("A", "", Signature.now("x<y", "e"), description="d" * 513, strategy="squash",
                 target="-main")
    fields = [f for f, _ in bad.value.problems]
    assert fields == ["name", "title", "description", "author", "strategy", "target"]
    assert bad.value.field == "name"
    for name in ["ab", "-abc", "Abc", "a" * 33, "ab_c", "abc.", "ábc", ""]:
        with pytest.raises(ValidationFailed) as e:
            c.create(name, "t", ALICE)
        assert e.value.field == "name"
    with pytest.raises(ValidationFailed) as e:
        c.create("ok-name", "t", ALICE, description="d" * 513)
    assert [f for f, _ in e.value.problems] == ["description"]
    with pytest.raises(ValidationFailed) as e:
        c.create("ok-name", "t", ALICE, target="nope")
    assert e.value.field == "target"
    for i, name in enumerate(["abc", "0-9", "a" * 32, "9-lives"]):
        assert c.create(name, f"title {i}", ALICE, description="d" * 512).name == name
    with pytest.raises(AlreadyExists):
        c.create("abc", "again", BOB)
    assert local.mirror_refs("refs/revisor/").keys() == {
        f"refs/revisor/candidates/{i}" for i in range(1, 5)
    }


def test_list_get_and_not_found(local: World) -> None:
    c = candidates(local)
    one = c.create("one-1", "One", ALICE)
    two = c.create("two-2", "Two", BOB, strategy="merge")
    three = c.create("three-3", "Three", ALICE)
    c.abandon(three.id, ALICE)
    assert [x.name for x in c.list()] == ["three-3", "two-2", "one-1"]
    assert [x.name for x in c.list(status="open")] == ["two-2", "one-1"]
    assert [x.name for x in c.list(author="alice@example.com")] == ["three-3", "one-1"]
    assert [x.name for x in c.list(author="Bob", status=CandidateStatus.OPEN)] == ["two-2"]
    assert c.get(two.id).strategy is CandidateStrategy.MERGE
    assert one.id != two.id
    with pytest.raises(ValidationFailed):
        c.list(status="merged")
    with pytest.raises(CandidateNotFound):
        c.get(999)
    with pytest.raises(NotFound):
        c.by_name("nope-nope")
    with pytest.raises(NotFound):
        c.files(999)


# -- comparing with the target ---------------------------------------------------------------------
def test_files_and_diff_against_the_moving_target(w: World) -> None:
    c = candidates(w)
    cand = c.create("files-1", "Files", ALICE)
    _publish(c, cand.id, "alice", ALICE, {
        "a.txt": lines("a", l1="candidate"), "b.txt": None, "new/file.txt": b"new\n",
        "c.txt": lines("c", l2="same on both"),
    })
    move_target(w, {"c.txt": lines("c", l2="same on both").decode(),
                    "docs/guide.md": "target's guide\n"})
    files = {f.path: f for f in c.files(cand.id)}
    assert {p: f.status for p, f in files.items()} == {
        "a.txt": FileStatus.CHANGED, "b.txt": FileStatus.DELETED,
        "new/file.txt": FileStatus.NEW,
    }
    assert not any(f.conflicted for f in files.values())
    assert files["b.txt"].etag is None and files["new/file.txt"].etag is not None
    everything = {f.path: f.status for f in c.files(cand.id, include_unchanged=True)}
    assert everything["c.txt"] is FileStatus.UNCHANGED  # the target made the same change
    assert everything["README.md"] is FileStatus.UNCHANGED
    assert "docs/guide.md" in everything  # the candidate's own (old) version, not changed by it
    diffs = {d.change.path: d for d in c.diff(cand.id)}
    assert set(diffs) == {"a.txt", "b.txt", "c.txt", "new/file.txt"}
    assert "+candidate" in diffs["a.txt"].patch
    assert [d.change.path for d in c.diff(cand.id, ["new"])] == ["new/file.txt"]


def test_target_conflict_appears_and_disappears_with_rebase(w: World) -> None:
    c = candidates(w)
    cand = c.create("conflicts-1", "Conflicts", ALICE)
    mine = _publish(c, cand.id, "alice", ALICE, {"a.txt": lines("a", l3="candidate")})
    _publish(c, cand.id, "bob", BOB, {"b.txt": lines("b", l3="bob")})
    head = c.get(cand.id).head_commit
    t1 = move_target(w, {"a.txt": lines("a", l3="target").decode()})
    checked = c.check(cand.id)
    assert checked.has_conflicts and checked.conflicts == ("a.txt",)
    assert checked.target_checked == t1
    assert {f.path: f.conflicted for f in c.files(cand.id)} == {"a.txt": True, "b.txt": False}
    result = c.rebase(cand.id)
    assert not result.moved and result.conflicts == ("a.txt",)
    after = c.get(cand.id)
    assert after.head_commit == head and after.base_commit == cand.base_commit  # nothing moved
    assert after.has_conflicts and after.conflicts == ("a.txt",)
    # the target takes the candidate's line: the conflict is gone after the next rebase
    t2 = move_target(w, {"a.txt": lines("a", l3="candidate").decode()})
    result = c.rebase(cand.id)
    assert result.moved and not result.conflicts
    after = result.candidate
    assert after.base_commit == t2 and not after.has_conflicts and after.conflicts == ()
    assert after.head_commit != head  # rewritten on the target
    repo_git = w.mirror_path or w.upstream.path
    from tests.integration.test_transactions_support import Upstream

    up = Upstream(repo_git)
    assert up.git("merge-base", "--is-ancestor", t2, after.head_commit, check=False) == ""
    log = up.git("log", "--format=%an|%s", f"{t2}..{after.head_commit}").splitlines()
    assert log == ["Bob|Publish changes by Bob"]  # alice's commit became empty and was dropped
    assert mine not in up.git("rev-list", after.head_commit)
    assert c.files(cand.id) == [f for f in c.files(cand.id) if f.path == "b.txt"]
    assert c.rebase(cand.id).moved is False  # up to date now


def test_merge_strategy_merges_the_target_in(local: World) -> None:
    c = candidates(local)
    cand = c.create("merging-1", "Merging", ALICE, strategy=CandidateStrategy.MERGE)
    mine = _publish(c, cand.id, "alice", ALICE, {"a.txt": lines("a", l1="candidate")})
    target = move_target(local, {"b.txt": lines("b", l1="target").decode()})
    result = c.rebase(cand.id, actor=BOB)
    assert result.moved and result.candidate.base_commit == target
    assert local.upstream.parents(result.candidate.head_commit) == [mine, target]
    carol = c.workspace(cand.id, "carol", identity=CAROL)
    assert carol.read("b.txt")[0] == lines("b", l1="target")


def test_a_candidate_with_nothing_of_its_own_fast_forwards(local: World) -> None:
    c = candidates(local)
    cand = c.create("empty-1", "Empty", ALICE)
    ws = c.workspace(cand.id, "alice", identity=ALICE)
    target = move_target(local, {"a.txt": "target\n"})
    assert c.rebase(cand.id).candidate.head_commit == target
    assert ws.sync().up_to_date and ws.read("a.txt")[0] == b"target\n"
    with pytest.raises(InvalidState):
        c.submit(cand.id, ALICE)  # nothing to submit


# -- ending ----------------------------------------------------------------------------------------
def test_submit_through_the_builtin_provider(remote: World) -> None:
    c = candidates(remote)
    cand = c.create("release-2", "Release 2", ALICE, description="Forms and processes.")
    before = remote.upstream.ref("refs/heads/main")
    _publish(c, cand.id, "alice", ALICE, {"a.txt": lines("a", l1="alice")})
    _publish(c, cand.id, "bob", BOB, {"b.txt": lines("b", l1="bob")})
    _publish(c, cand.id, "carol", CAROL, {"c.txt": lines("c", l1="carol")})
    _publish(c, cand.id, "bob", BOB, {"docs/guide.md": b"bob again\n"})
    moved = move_target(remote, {"README.md": "upstream moved\n"})
    head = c.get(cand.id).head_commit
    done = c.submit(cand.id, ALICE)
    assert done.status is CandidateStatus.SUBMITTED
    main = remote.upstream.ref("refs/heads/main")
    assert done.submitted_commit == main
    log = remote_log(remote)
    assert [e[0] for e in log[1:]] == [moved, before]  # exactly one new commit
    oid, author, message = log[0]
    assert author == "Alice Liddell <alice@example.com>"
    assert message == ["Release 2", "", "Forms and processes.", "",
                       "Co-authored-by: Bob <bob@example.com>",
                       "Co-authored-by: Carol <carol@example.com>"]
    assert remote.upstream.parents(oid) == [moved]
    tree = remote.upstream.ls_tree(oid)
    assert remote.upstream.show(oid, "README.md") == b"upstream moved\n"
    assert tree["docs/guide.md"][1] == remote.upstream.git(
        "hash-object", "--stdin", input=b"bob again\n").strip()
    assert remote.upstream.show(oid, "a.txt") == lines("a", l1="alice")
    # the proposal it went through, merged; its branch removed from the remote
    assert done.proposal is not None and done.proposal.provider == "builtin"
    p = remote.source.provider.get(done.proposal.number)
    assert p.status is ProposalStatus.MERGED and p.source_branch == f"revisor/candidate-{cand.id}"
    assert f"revisor/candidate-{cand.id}" not in remote.remote_refs()
    # a submitted candidate takes no more changes; submitting again changes nothing
    ws = c.workspace(cand.id, "alice")
    with pytest.raises(InvalidState):
        ws.write("a.txt", b"late", if_match=ws.etag("a.txt"))
    with pytest.raises(InvalidState):
        c.abandon(cand.id, ALICE)
    assert c.submit(cand.id, ALICE).submitted_commit == main
    assert c.get(cand.id).head_commit == head  # the candidate ref is kept as it was
    actions = remote.audit_actions()
    assert {"candidate.create", "candidate.publish", "candidate.propose",
            "candidate.submit", "proposal.merge"} <= set(actions)
    remote.upstream.fsck()


def test_submit_refuses_a_conflicting_target(local: World) -> None:
    c = candidates(local)
    cand = c.create("clash-1", "Clash", ALICE)
    _publish(c, cand.id, "alice", ALICE, {"a.txt": lines("a", l1="candidate")})
    main = move_target(local, {"a.txt": lines("a", l1="target").decode()})
    with pytest.raises(MergeConflict) as e:
        c.submit(cand.id, ALICE)
    assert e.value.conflicts == ("a.txt",)
    assert local.upstream.ref("refs/heads/main") == main
    after = c.get(cand.id)
    assert after.status is CandidateStatus.OPEN and after.has_conflicts


def test_abandon(local: World) -> None:
    c = candidates(local)
    cand = c.create("dropped-1", "Dropped", ALICE)
    gone = c.abandon(cand.id, BOB)
    assert gone.status is CandidateStatus.ABANDONED
    assert c.abandon(cand.id, BOB).status is CandidateStatus.ABANDONED
    with pytest.raises(InvalidState):
        c.submit(cand.id, ALICE)
    with pytest.raises(InvalidState):
        c.rebase(cand.id)
    assert "candidate.abandon" in local.audit_actions()
