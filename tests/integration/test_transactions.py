"""Transactions (cup's ``Update``) on real repositories: cup's own scenarios, ``expected``, direct
commits, idempotency, and the result checked where it lands — the remote's refs and trees, the
mirror, the journal, the proposals and the audit log.

Each scenario runs against a remote served over smart HTTP (``http``) and against a repository
used in place (``local``, where the push is a compare-and-swap of the ref).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from revisor import Chmod, Delete, Move, Write
from revisor.core.transaction import Transaction
from revisor.db.models import TxState
from revisor.errors import (
    InvalidInput,
    InvalidPath,
    NotAllowed,
    PathNotFound,
    RefConflict,
    RemoteRefConflict,
    StaleBase,
)
from revisor.providers.base import MergeMethod, ProposalStatus
from revisor.vcs import EMPTY_TREE
from tests.integration.test_transactions_support import (
    ALICE,
    BOB,
    REVISOR,
    World,
    git,
    make_world,
    served_world,
)

pytestmark = pytest.mark.timeout(120)

SEED = {"README.md": "hello\n", "docs/a.txt": "a\n", "docs/b.txt": "b\n"}


@pytest.fixture(params=["http", "local"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _world(request: pytest.FixtureRequest, kind: str, tmp: Path, files: dict[str, str],
           **source: object) -> World:
    if kind == "http":
        return served_world(request.getfixturevalue("http_git"),
                            request.getfixturevalue("http_git_root"), tmp, files, **source)
    return make_world(kind, tmp, files, **source)


@pytest.fixture
def world(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Iterator[World]:
    w = _world(request, kind, tmp_path, SEED)
    try:
        yield w
    finally:
        w.close()


@pytest.fixture
def direct_world(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> Iterator[World]:
    w = _world(request, kind, tmp_path, SEED, allow_direct=True)
    try:
        yield w
    finally:
        w.close()


def _nothing_new(world: World, before: dict[str, str]) -> None:
    """Nothing was pushed, no mirror ref was made, no proposal was opened."""
    assert world.remote_refs() == before
    assert world.upstream.branches() == {k.removeprefix("refs/heads/"): v
                                         for k, v in before.items()}
    if world.mirror_path is not None:
        assert set(world.mirror_refs("refs/heads/")) <= set(before)
    assert world.source.provider.list() == []


# -- cup's scenarios ---------------------------------------------------------------------------
def test_an_update_that_adds_a_file_ends_in_a_proposal_and_lands_when_merged(
    world: World,
) -> None:
    base = world.upstream.ref("refs/heads/main")
    result = world.source.update(
        "main", "Add c.txt\n\nBecause we need it.", ALICE,
        changes=[Write("docs/c.txt", b"c\n")],
    )
    assert not result.empty and not result.direct and not result.replayed
    assert result.base == base
    assert result.branch == f"revisor/{result.id[:12]}"
    assert result.commit is not None and result.proposal is not None

    # the remote: exactly one new branch holding one commit on the base, with only the change
    refs = world.remote_refs()
    assert refs == {"refs/heads/main": base, f"refs/heads/{result.branch}": result.commit}
    up = world.upstream
    assert up.parents(result.commit) == [base]
    assert up.changed(base, result.commit) == {"docs/c.txt": "A"}
    assert up.show(result.commit, "docs/c.txt") == b"c\n"
    fmt = up.git("log", "-1", "--format=%an <%ae>|%cn <%ce>|%B", result.commit)
    author, committer, message = fmt.split("|", 2)
    assert author == "Alice Liddell <alice@example.com>"  # the acting user, not the service
    assert committer == f"{REVISOR.name} <{REVISOR.email}>"
    assert message.strip() == "Add c.txt\n\nBecause we need it."
    if world.mirror_path is not None:  # the mirror followed the push
        assert world.mirror_refs()[f"refs/heads/{result.branch}"] == result.commit

    # the proposal, the journal, the audit log
    (proposal,) = world.source.provider.list()
    assert (proposal.number, proposal.provider, proposal.url) == (
        result.proposal.number, result.proposal.provider, result.proposal.url)
    assert (proposal.source_branch, proposal.source_commit, proposal.target_branch) == (
        result.branch, result.commit, "main")
    assert (proposal.title, proposal.description) == ("Add c.txt", "Because we need it.")
    assert (proposal.author_email, proposal.status) == ("alice@example.com", ProposalStatus.OPEN)
    entry = world.rv.journal.get(result.id)
    assert entry.state is TxState.DONE and entry.commit == result.commit
    assert entry.proposal_number == proposal.number and entry.base_commit == base
    assert world.audit_actions() == ["proposal.open", "transaction.commit"]
    (commit_audit,) = world.rv.audit.query(action="transaction.commit")
    assert commit_audit.actor == "Alice Liddell <alice@example.com>"
    assert commit_audit.after == result.commit
    world.assert_clean()

    # merged, refreshed: a new view at main shows the file
    world.source.provider.merge(proposal.number, MergeMethod.MERGE, BOB)
    assert world.remote_refs()["refs/heads/main"] == result.commit  # a fast-forward
    world.source.stored.refresh()
    snap = world.source.view("main")
    assert snap.commit_id == result.commit
    assert snap.read("docs/c.txt") == b"c\n"
    assert snap.listdir("docs") == ["a.txt", "b.txt", "c.txt"]


def test_a_noop_update_is_empty(world: World) -> None:
    before = world.remote_refs()
    base = before["refs/heads/main"]
    results = [
        world.source.update("main", "nothing", ALICE),
        world.source.update("main", "nothing", ALICE, changes=[]),
        world.source.update("main", "same content", ALICE,
                            changes=[Write("README.md", b"hello\n")]),
        world.source.update("main", "written and undone", ALICE, changes=[
            Write("x.txt", b"x"), Delete("x.txt"),
            Move("docs/a.txt", "docs/z.txt"), Move("docs/z.txt", "docs/a.txt"),
        ]),
    ]
    for result in results:
        assert result.empty and result.commit is None and result.branch is None
        assert result.proposal is None and result.base == base
        assert world.rv.journal.get(result.id).state is TxState.EMPTY
        assert world.rv.audit.query(action="transaction.empty", limit=10)
    _nothing_new(world, before)
    world.assert_clean()


def test_deleting_the_last_file_is_a_real_commit(request: pytest.FixtureRequest, kind: str,
                                                  tmp_path: Path) -> None:
    world = _world(request, kind, tmp_path, {"only.txt": "the last one\n"})
    try:
        result = world.source.update("main", "Delete everything", ALICE,
                                     changes=[Delete("only.txt")])
        assert not result.empty and result.commit is not None
        tree = world.upstream.git("rev-parse", f"{result.commit}^{{tree}}").strip()
        assert tree == EMPTY_TREE
        assert world.remote_refs()[f"refs/heads/{result.branch}"] == result.commit
        assert world.source.provider.list()[0].source_commit == result.commit
        assert world.source.view(result.commit).listdir() == []
        world.assert_clean()
    finally:
        world.close()


@pytest.mark.parametrize("bad", ["../x", "a/../../x", "/etc/passwd", ".git/config",
                                 "docs/.git/hooks/x", "a\0b", ""])
def test_invalid_paths_are_refused_and_nothing_is_pushed(world: World, bad: str) -> None:
    before = world.remote_refs()
    with pytest.raises(InvalidPath):
        Write(bad, b"x")
    with pytest.raises(InvalidPath):
        world.source.update("main", "escape", ALICE, lambda tx: tx.write(bad, b"x"))
    with pytest.raises(InvalidPath):
        world.source.update("main", "escape", ALICE, lambda tx: tx.move("README.md", bad))
    _nothing_new(world, before)
    rows = world.journal_rows()
    assert [r.state for r in rows] == [TxState.FAILED, TxState.FAILED]
    assert all(r.commit is None for r in rows)
    assert world.audit_actions() == ["transaction.abort", "transaction.abort"]
    world.assert_clean()


def test_listing_is_sorted(request: pytest.FixtureRequest, kind: str, tmp_path: Path) -> None:
    names = ["b.txt", "B.txt", "a", "a.txt", "a-b", "a_b", "Z", "_x", "0", "é", "a/inner"]
    world = _world(request, kind, tmp_path, {n: n for n in names})
    try:
        listed = world.source.view().listdir()
        assert listed == sorted({n.split("/")[0] for n in names})
        result = world.source.update("main", "more", ALICE,
                                     changes=[Write("aa", b""), Write("A", b"")])
        assert world.source.view(result.commit).listdir() == sorted([*listed, "aa", "A"])
    finally:
        world.close()


def test_every_kind_of_change_through_the_transaction_object(world: World) -> None:
    def edit(tx: Transaction) -> None:
        assert tx.read("docs/a.txt") == b"a\n"
        tx.write("docs/a.txt", tx.read("docs/a.txt") + b"more\n")
        tx.move("docs/b.txt", "moved/b.txt")
        tx.write("run.sh", b"#!/bin/sh\n", executable=True)
        tx.delete("README.md")
        assert not tx.exists("README.md") and tx.exists("moved/b.txt")

    result = world.source.update(
        "main", "edits", ALICE, edit,
        changes=[Write("new/deep/file.bin", bytes(range(256))), Chmod("docs/a.txt", True)],
    )
    assert result.commit is not None
    tree = world.upstream.ls_tree(result.commit)
    assert sorted(tree) == ["docs/a.txt", "moved/b.txt", "new/deep/file.bin", "run.sh"]
    assert tree["docs/a.txt"][0] == "100755" and tree["run.sh"][0] == "100755"
    assert world.upstream.show(result.commit, "docs/a.txt") == b"a\nmore\n"
    assert world.upstream.show(result.commit, "new/deep/file.bin") == bytes(range(256))


def test_the_context_manager_form(world: World) -> None:
    with world.source.transaction("Context manager", ALICE) as tx:
        tx.write("cm.txt", b"cm\n")
    assert tx.result is not None and tx.result.commit is not None
    assert world.upstream.show(tx.result.commit, "cm.txt") == b"cm\n"
    with pytest.raises(InvalidInput):
        tx.write("late.txt", b"too late")

    before = world.remote_refs()
    tx2 = world.source.transaction("fails", ALICE)

    def body() -> None:
        with tx2:
            tx2.write("never.txt", b"x")
            raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        body()
    assert world.remote_refs() == before
    assert world.rv.journal.get(tx2.id).state is TxState.FAILED
    world.assert_clean()


def test_a_base_given_as_a_commit_id_is_proposed_to_the_target_branch(world: World) -> None:
    base = world.upstream.ref("refs/heads/main")
    assert base is not None
    result = world.source.update(base, "on a commit", ALICE, changes=[Write("c", b"c")])
    assert result.base == base
    assert world.source.provider.list()[0].target_branch == "main"


def test_branch_names(world: World) -> None:
    result = world.source.update("main", "named", ALICE, changes=[Write("n", b"n")],
                                 branch="feature/named")
    assert result.branch == "feature/named"
    assert world.remote_refs()["refs/heads/feature/named"] == result.commit

    # an existing branch is never overwritten
    before = world.remote_refs()
    with pytest.raises((RemoteRefConflict, RefConflict)):
        world.source.update("main", "again", ALICE, changes=[Write("m", b"m")],
                            branch="feature/named")
    assert world.remote_refs() == before
    assert len(world.source.provider.list()) == 1
    for bad in ("bad..name", "-x", "a b", "x.lock", "refs/../x"):
        with pytest.raises(InvalidInput):
            world.source.update("main", "bad", ALICE, changes=[Write("m", b"m")], branch=bad)
    with pytest.raises(InvalidInput, match="into itself"):
        world.source.update("main", "self", ALICE, changes=[Write("m", b"m")], branch="main")
    assert world.remote_refs() == before
    world.assert_clean()


# -- expected ----------------------------------------------------------------------------------
def test_a_stale_expected_is_refused_with_the_current_commit(world: World) -> None:
    old = world.upstream.ref("refs/heads/main")
    assert old is not None
    world.source.view()  # the mirror knows ``old``
    new = world.upstream.commit("refs/heads/main", {"upstream.txt": "moved\n"})
    # The mirror has not fetched (refresh: 1h): the check must still see the remote as it is.
    before = world.remote_refs()
    with pytest.raises(StaleBase) as caught:
        world.source.update("main", "stale", ALICE, changes=[Write("s", b"s")], expected=old)
    assert caught.value.actual == new and caught.value.expected == old
    assert world.remote_refs() == before
    assert world.source.provider.list() == []
    (row,) = world.journal_rows()
    assert row.state is TxState.FAILED and row.commit is None

    # expected equal to the current head applies, on that head
    result = world.source.update("main", "fresh", ALICE, changes=[Write("s", b"s")],
                                 expected=new)
    assert result.base == new and result.commit is not None
    assert world.upstream.parents(result.commit) == [new]
    world.assert_clean()


# -- direct commits ----------------------------------------------------------------------------
def test_direct_commits_need_allow_direct(world: World) -> None:
    before = world.remote_refs()
    with pytest.raises(NotAllowed):
        world.source.update("main", "direct", ALICE, changes=[Write("d", b"d")],
                            branch="main", propose=False)
    assert world.remote_refs() == before
    assert world.journal_rows() == []


def test_a_direct_commit_lands_on_the_target(direct_world: World) -> None:
    world = direct_world
    base = world.upstream.ref("refs/heads/main")
    result = world.source.update("main", "direct", ALICE, changes=[Write("d", b"d")],
                                 branch="main", propose=False, expected=base)
    assert result.direct and result.proposal is None and result.branch == "main"
    assert world.remote_refs() == {"refs/heads/main": result.commit}
    assert world.upstream.parents(result.commit) == [base]
    assert world.source.provider.list() == []
    (audit,) = world.rv.audit.query(action="transaction.commit")
    assert (audit.target, audit.before, audit.after) == ("refs/heads/main", base, result.commit)
    assert world.source.view("main").read("d") == b"d"
    world.assert_clean()


def test_a_direct_commit_loses_to_a_concurrent_move_and_nothing_is_lost(
    direct_world: World,
) -> None:
    world = direct_world
    base = world.upstream.ref("refs/heads/main")

    def meanwhile(tx: Transaction) -> None:
        tx.write("mine.txt", b"mine")
        # someone else moves main between the moment the base was read and the push
        other = world.upstream.commit("refs/heads/main", {"theirs.txt": "theirs"})
        meanwhile.other = other  # type: ignore[attr-defined]

    with pytest.raises(StaleBase) as caught:
        world.source.update("main", "direct", ALICE, meanwhile, branch="main", propose=False)
    other = meanwhile.other  # type: ignore[attr-defined]
    assert caught.value.expected == base and caught.value.actual == other
    assert world.remote_refs() == {"refs/heads/main": other}  # theirs kept, ours not forced
    assert world.upstream.changed(base, other) == {"theirs.txt": "A"}
    (row,) = world.journal_rows()
    assert row.state is TxState.FAILED and row.direct
    world.assert_clean()

    # retried on the new head, it lands on top of theirs
    world.source.stored.refresh()
    result = world.source.update("main", "direct again", ALICE,
                                 changes=[Write("mine.txt", b"mine")], branch="main",
                                 propose=False, expected=other)
    assert world.upstream.parents(result.commit or "") == [other]


# -- idempotency -------------------------------------------------------------------------------
def test_the_same_idempotency_key_returns_the_first_result(world: World) -> None:
    first = world.source.update("main", "once", ALICE, changes=[Write("once", b"1")],
                                idempotency_key="key-1")
    refs = world.remote_refs()
    again = world.source.update("main", "once", ALICE, changes=[Write("once", b"2")],
                                idempotency_key="key-1")
    assert again.replayed and not first.replayed
    assert (again.id, again.commit, again.branch, again.proposal) == (
        first.id, first.commit, first.branch, first.proposal)
    assert world.remote_refs() == refs
    assert len(world.source.provider.list()) == 1
    assert len(world.journal_rows()) == 1

    # the context manager form: edits are discarded, the first result comes back
    with world.source.transaction("once", ALICE, idempotency_key="key-1") as tx:
        assert tx.replayed
        tx.write("ignored", b"ignored")
        wd = tx.workdir()
        (wd / "also-ignored").write_text("x")
    assert tx.result is not None and tx.result.commit == first.commit
    assert world.remote_refs() == refs and not wd.exists()

    # an empty result replays too, and another key is another transaction
    empty = world.source.update("main", "nothing", ALICE, idempotency_key="key-2")
    assert world.source.update("main", "nothing", ALICE, idempotency_key="key-2").empty
    assert empty.empty
    other = world.source.update("main", "other", ALICE, changes=[Write("o", b"o")],
                                idempotency_key="key-3")
    assert other.branch != first.branch
    world.assert_clean()


def test_an_idempotency_key_of_a_failed_transaction_may_be_retried(world: World) -> None:
    """A transaction that failed without effect leaves its key free: the retry runs (once),
    and from then on the key answers with the retry's result."""
    def fails(tx: Transaction) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        world.source.update("main", "fails", ALICE, fails, idempotency_key="k")
    assert world.upstream.revisor_branches() == {}
    retry = world.source.update("main", "again", ALICE, changes=[Write("x", b"x")],
                                idempotency_key="k")
    assert not retry.replayed and world.upstream.revisor_branches() == {
        retry.branch: retry.commit}
    again = world.source.update("main", "again", ALICE, changes=[Write("x", b"x")],
                                idempotency_key="k")
    assert again.replayed and again.commit == retry.commit
    with pytest.raises(InvalidInput):
        world.source.update("main", "blank key", ALICE, idempotency_key="  ")


def test_a_failing_change_list_leaves_nothing(world: World) -> None:
    before = world.remote_refs()
    with pytest.raises(PathNotFound):
        world.source.update("main", "bad list", ALICE, changes=[
            Write("fine.txt", b"fine"), Delete("no/such/file"), Write("later.txt", b"x")])
    with pytest.raises(InvalidInput):
        world.source.update("main", "bad list", ALICE, changes=[
            Move("docs/a.txt", "README.md")])  # the destination exists
    with pytest.raises(InvalidInput):
        world.source.update("main", "bad list", ALICE, changes=[
            Write("docs", b"a directory is there")])
    _nothing_new(world, before)
    assert [r.state for r in world.journal_rows()] == [TxState.FAILED] * 3
    world.assert_clean()


# -- a local source with a working tree ---------------------------------------------------------
def test_a_local_repository_with_a_working_tree(tmp_path: Path) -> None:
    """A non-bare repository used in place: the branch is made by compare-and-swap in it, and
    its checked-out branch, index and files are left untouched."""
    work = tmp_path / "work"
    git("init", "-q", "-b", "main", str(work))
    (work / "README.md").write_text("hello\n")
    git("add", "-A", cwd=work)
    git("-c", "user.name=T", "-c", "user.email=t@example.com", "commit", "-qm", "first", cwd=work)
    head = git("rev-parse", "HEAD", cwd=work).strip()
    world = make_world("local", tmp_path, upstream=work / ".git", path=str(work))
    try:
        assert world.source.view().listdir() == ["README.md"]
        result = world.source.update("main", "in place", ALICE, changes=[Write("new.txt", b"n")])
        assert git("rev-parse", f"refs/heads/{result.branch}", cwd=work).strip() == result.commit
        assert git("rev-parse", "HEAD", cwd=work).strip() == head
        assert git("status", "--porcelain", cwd=work) == ""
        assert not (work / "new.txt").exists()
        assert world.source.provider.list()[0].source_commit == result.commit
        assert world.tmp_leftovers() == []
    finally:
        world.close()
