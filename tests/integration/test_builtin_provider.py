"""The builtin provider on real repositories: a ``type: local`` source used in place, and a
``type: git`` source whose remote is a bare repository on disk. Every result is checked with the
git CLI: mergeability against ``git merge-tree --write-tree``, each merge method's history on the
target, the rebase against ``git rebase`` in a scratch clone, and a target moved by someone else
between reading it and pushing (the lease fails, nothing is lost).
"""

from __future__ import annotations

import multiprocessing
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from revisor.config import Config
from revisor.db import AuditLog, Database
from revisor.errors import Conflict, InvalidInput, InvalidState, ProposalNotFound, RevisionNotFound
from revisor.providers.base import (
    MergeConflict,
    MergeMethod,
    ProposalRequest,
    ProposalStatus,
)
from revisor.providers.builtin import BuiltinProvider
from revisor.store.mirror import PushUpdate
from revisor.store.store import Store, StoreSource
from revisor.vcs import ObjectId, Signature
from tests.gitutil import GitRepo, git_merge_tree

REVISOR = Signature.now("Revisor", "revisor@example.com")
ALICE = Signature.now("Alice", "alice@example.com")
BOB = Signature.now("Bob", "bob@example.com")
BASE_FILES = {
    "README.md": "hello\n",
    "a.txt": "".join(f"a line {i}\n" for i in range(20)),
    "b.txt": "".join(f"b line {i}\n" for i in range(20)),
}


def _git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


def _config(tmp_path: Path, kind: str, upstream: Path) -> dict[str, Any]:
    if kind == "local":
        source: dict[str, Any] = {"type": "local", "path": str(upstream), "branch": "main"}
    else:
        # A long refresh interval: the mirror fetches only when told to (or for unknown
        # commits), so a test controls exactly when it sees the remote's changes.
        source = {"type": "git", "url": f"file://{upstream}", "branch": "main", "refresh": "1h"}
    return {"data_dir": str(tmp_path / "data"), "sources": {"proj": source}}


def _provider(config: dict[str, Any], db_url: str) -> tuple[StoreSource, BuiltinProvider]:
    source = Store(Config.model_validate(config)).source("proj")
    db = Database(db_url)
    return source, BuiltinProvider(source, db, AuditLog(db), REVISOR)


@dataclass
class World:
    kind: str
    upstream: Path  # bare: the local source itself, or the git source's remote
    work: GitRepo  # a clone of upstream where the test makes commits and pushes them
    config: dict[str, Any]
    db: Database
    audit: AuditLog
    source: StoreSource
    provider: BuiltinProvider

    def rev(self, rev: str) -> str:
        return _git(f"--git-dir={self.upstream}", "rev-parse", "--verify", rev).strip()

    def upstream_git(self, *args: str) -> str:
        return _git(f"--git-dir={self.upstream}", *args)

    def commit(
        self,
        branch: str,
        files: dict[str, str | None],
        message: str,
        *,
        start: str | None = None,
        author: Signature | None = None,
        push: bool = True,
    ) -> ObjectId:
        """Commit ``files`` (None: delete) on ``branch`` (created from ``start``) and push it."""
        w = self.work
        if start is not None:
            w.git("checkout", "-q", "-B", branch, start)
        else:
            w.git("checkout", "-q", branch)
        for path, content in files.items():
            if content is None:
                w.remove(path)
            else:
                w.write(path, content)
        w.git("add", "-A")
        env = {}
        if author is not None:
            env = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email}
        GitRepo._clock += 60
        stamp = f"{GitRepo._clock} +0200"
        w.git("commit", "-q", "-m", message,
              env={**env, "GIT_AUTHOR_DATE": stamp, "GIT_COMMITTER_DATE": stamp})
        sha = ObjectId(w.head())
        if push:
            self.push(branch)
        return sha

    def push(self, branch: str) -> None:
        self.work.git("push", "-q", "origin", f"{branch}:refs/heads/{branch}")
        self.source.refresh()  # what a transaction's push through the mirror leaves behind

    def request(self, branch: str, commit: ObjectId, title: str = "A change") -> ProposalRequest:
        return ProposalRequest(title, "Because.", ALICE, branch, commit, "main")

    def audit_actions(self) -> list[str]:
        return [e.action for e in self.audit.query(source="proj")][::-1]


def make_world(tmp_path: Path, kind: str) -> World:
    seed = tmp_path / "seed"
    _git("init", "-q", "-b", "main", str(seed))
    seed_repo = GitRepo(seed)
    for path, content in BASE_FILES.items():
        seed_repo.write(path, content)
    seed_repo.commit("initial")
    upstream = tmp_path / "upstream.git"
    _git("clone", "-q", "--bare", str(seed), str(upstream))
    work = tmp_path / "work"
    _git("clone", "-q", str(upstream), str(work))
    config = _config(tmp_path, kind, upstream)
    db = Database.for_data_dir(tmp_path / "data")
    db.migrate()
    source, provider = _provider(config, str(db.url))
    source.refresh()
    return World(kind, upstream, GitRepo(work), config, db, provider.audit, source, provider)


@pytest.fixture(params=["local", "git"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[World]:
    w = make_world(tmp_path, request.param)
    try:
        yield w
    finally:
        w.source.repository.close()
        w.db.dispose()


# -- opening --------------------------------------------------------------------------------------
def test_open_is_idempotent_per_branch(world: World) -> None:
    commit = world.commit("feature", {"c.txt": "new\n"}, "add c", start="main")
    p = world.provider.open(world.request("feature", commit))
    assert (p.number, p.status, p.provider) == (1, ProposalStatus.OPEN, "builtin")
    assert p.url == "revisor://proj/proposals/1"
    assert (p.source_branch, p.source_commit, p.target_branch) == ("feature", commit, "main")
    assert (p.author_name, p.author_email) == ("Alice", "alice@example.com")
    assert p.created_at.tzinfo is not None
    assert world.provider.open(world.request("feature", commit)) == p  # a retry
    assert world.provider.list() == [p]
    assert world.provider.find_by_branch("feature") == p
    assert world.provider.find_by_branch("nope") is None
    assert world.audit_actions() == ["proposal.open"]

    moved = world.commit("feature", {"c.txt": "newer\n"}, "change c")
    again = world.provider.open(world.request("feature", moved))
    assert again.number == 1 and again.source_commit == moved
    assert world.audit_actions() == ["proposal.open", "proposal.update"]

    other = world.commit("other", {"d.txt": "d\n"}, "add d", start="main")
    assert world.provider.open(world.request("other", other)).number == 2
    assert [q.number for q in world.provider.list()] == [2, 1]
    with pytest.raises(ProposalNotFound):
        world.provider.get(3)


def test_open_refuses_bad_requests(world: World) -> None:
    main = ObjectId(world.rev("main"))
    with pytest.raises(InvalidInput):
        world.provider.open(world.request("main", main))
    with pytest.raises(InvalidInput):
        world.provider.open(world.request("bad..name", main))
    with pytest.raises(RevisionNotFound):
        world.provider.open(world.request("feature", ObjectId("1" * 40)))
    assert world.provider.list() == []


# -- mergeability ------------------------------------------------------------------------------
def test_mergeability_agrees_with_git(world: World) -> None:
    clean = world.commit("clean", {"a.txt": "changed first line\n" + BASE_FILES["a.txt"][13:]},
                         "edit a", start="main")
    clashing = world.commit("clash", {"b.txt": "theirs\n", "c.txt": "theirs\n"}, "edit b",
                            start="main")
    main = world.commit("main", {"b.txt": "ours\n", "c.txt": "ours\n"}, "edit b on main")
    git = GitRepo(world.upstream)
    for branch, commit in (("clean", clean), ("clash", clashing)):
        p = world.provider.open(world.request(branch, commit))
        verdict = world.provider.mergeability(p.number)
        git_clean, _tree, git_conflicts = git_merge_tree(git, main, commit)
        assert (verdict.clean, verdict.conflicts) == (git_clean, git_conflicts)
        assert verdict.target_commit == main
    assert world.provider.mergeability(2).conflicts == ("b.txt", "c.txt")


# -- merging --------------------------------------------------------------------------------------
def _parents(world: World, rev: str) -> list[str]:
    return world.upstream_git("rev-list", "--parents", "-n", "1", rev).split()[1:]


def _show(world: World, fmt: str, rev: str) -> str:
    return world.upstream_git("show", "-s", f"--format={fmt}", rev).strip()


def test_merge_fast_forwards_when_the_target_has_not_moved(world: World) -> None:
    old_main = world.rev("main")
    commit = world.commit("feature", {"c.txt": "c\n"}, "add c", start="main")
    p = world.provider.open(world.request("feature", commit))
    merged = world.provider.merge(p.number, MergeMethod.MERGE, BOB)
    assert world.rev("main") == commit
    assert merged.status is ProposalStatus.MERGED and merged.merged_commit == commit
    assert merged.merge_method is MergeMethod.MERGE
    assert world.provider.get(p.number) == merged
    move = world.audit.query(action="ref.move")[0]
    assert (move.target, move.before, move.after) == ("refs/heads/main", old_main, commit)
    assert move.actor == "Bob <bob@example.com>"
    assert world.audit_actions() == ["proposal.open", "proposal.merge", "ref.move"]


def test_merge_commit_has_two_parents_and_gits_tree(world: World) -> None:
    commit = world.commit("feature", {"c.txt": "c\n"}, "add c", start="main")
    main = world.commit("main", {"d.txt": "d\n"}, "add d on main")
    p = world.provider.open(world.request("feature", commit, title="Add c"))
    merged = world.provider.merge(p.number, MergeMethod.MERGE, BOB)
    head = world.rev("main")
    assert merged.merged_commit == head
    assert _parents(world, head) == [main, commit]
    _clean, tree, _ = git_merge_tree(GitRepo(world.upstream), main, commit)
    assert world.rev("main^{tree}") == tree
    assert _show(world, "%an <%ae>|%cn <%ce>", head) == (
        "Bob <bob@example.com>|Revisor <revisor@example.com>")
    assert _show(world, "%s", head) == "Merge proposal #1 from feature"
    world.upstream_git("fsck", "--no-dangling")


def test_squash_is_one_commit_with_the_merged_tree(world: World) -> None:
    world.commit("feature", {"c.txt": "c\n"}, "add c", start="main")
    commit = world.commit("feature", {"c.txt": "c2\n", "e.txt": "e\n"}, "more")
    main = world.commit("main", {"d.txt": "d\n"}, "add d on main")
    p = world.provider.open(world.request("feature", commit, title="Add c and e"))
    merged = world.provider.merge(p.number, MergeMethod.SQUASH, BOB)
    head = world.rev("main")
    assert merged.merged_commit == head and merged.merge_method is MergeMethod.SQUASH
    assert _parents(world, head) == [main]
    _clean, tree, _ = git_merge_tree(GitRepo(world.upstream), main, commit)
    assert world.rev("main^{tree}") == tree
    message = world.upstream_git("show", "-s", "--format=%B", head)
    assert message.startswith("Add c and e\n\nBecause.\n")
    assert _show(world, "%an|%cn", head) == "Alice|Revisor"


def test_squash_when_the_target_has_not_moved_still_makes_one_commit(world: World) -> None:
    main = world.rev("main")
    world.commit("feature", {"c.txt": "c\n"}, "one", start="main")
    commit = world.commit("feature", {"d.txt": "d\n"}, "two")
    p = world.provider.open(world.request("feature", commit))
    world.provider.merge(p.number, MergeMethod.SQUASH, BOB)
    assert _parents(world, "main") == [main]
    assert world.rev("main^{tree}") == world.rev(f"{commit}^{{tree}}")


def test_rebase_replays_each_commit_like_git_rebase(world: World, tmp_path: Path) -> None:
    authors = [ALICE, BOB, Signature.now("Carol", "carol@example.com")]
    world.commit("feature", {"c.txt": "c\n"}, "add c", start="main", author=authors[0],
                 push=False)
    world.commit("feature", {"a.txt": "rewritten first\n" + BASE_FILES["a.txt"][11:]},
                 "edit a", author=authors[1], push=False)
    commit = world.commit("feature", {"README.md": None}, "drop readme", author=authors[2])
    old_main = world.commit("main", {"b.txt": BASE_FILES["b.txt"] + "tail\n"}, "append b")
    p = world.provider.open(world.request("feature", commit))
    merged = world.provider.merge(p.number, MergeMethod.REBASE, BOB)
    assert merged.merged_commit == world.rev("main")

    scratch = tmp_path / "scratch"
    _git("clone", "-q", str(world.upstream), str(scratch))
    _git("checkout", "-q", "-b", "replay", commit, cwd=scratch)
    _git("rebase", "-q", old_main, cwd=scratch)
    fmt = "--format=%an|%ae|%ad|%s"
    theirs = _git("log", "--reverse", fmt, f"{old_main}..HEAD", cwd=scratch)
    ours = world.upstream_git("log", "--reverse", fmt, f"{old_main}..main")
    assert ours == theirs and len(ours.splitlines()) == 3
    assert world.rev("main^{tree}") == _git("rev-parse", "HEAD^{tree}", cwd=scratch).strip()
    assert world.upstream_git("rev-list", "--merges", f"{old_main}..main") == ""
    committers = world.upstream_git("log", "--format=%cn", f"{old_main}..main").split("\n")
    assert set(filter(None, committers)) == {"Revisor"}


def test_rebase_fast_forwards_a_linear_branch(world: World) -> None:
    world.commit("feature", {"c.txt": "c\n"}, "one", start="main")
    commit = world.commit("feature", {"d.txt": "d\n"}, "two")
    p = world.provider.open(world.request("feature", commit))
    world.provider.merge(p.number, MergeMethod.REBASE, BOB)
    assert world.rev("main") == commit


@pytest.mark.parametrize("method", list(MergeMethod))
def test_a_conflicting_merge_moves_nothing(world: World, method: MergeMethod) -> None:
    commit = world.commit("feature", {"b.txt": "theirs\n"}, "edit b", start="main")
    main = world.commit("main", {"b.txt": "ours\n"}, "edit b on main")
    p = world.provider.open(world.request("feature", commit))
    with pytest.raises(MergeConflict) as info:
        world.provider.merge(p.number, method, BOB)
    assert info.value.conflicts == ("b.txt",)
    assert world.rev("main") == main
    assert world.provider.get(p.number).status is ProposalStatus.OPEN
    assert world.audit_actions() == ["proposal.open"]


def test_rebase_conflict_in_a_middle_commit(world: World) -> None:
    world.commit("feature", {"c.txt": "c\n"}, "fine", start="main", push=False)
    world.commit("feature", {"b.txt": "theirs\n"}, "clashes", push=False)
    commit = world.commit("feature", {"b.txt": BASE_FILES["b.txt"]}, "reverts the clash")
    main = world.commit("main", {"b.txt": "ours\n"}, "edit b on main")
    p = world.provider.open(world.request("feature", commit))
    assert world.provider.mergeability(p.number).clean  # as a whole it merges...
    with pytest.raises(MergeConflict):  # ...but a commit on the way does not apply
        world.provider.merge(p.number, MergeMethod.REBASE, BOB)
    assert world.rev("main") == main


def test_an_already_merged_commit_is_marked_merged_without_moving(world: World) -> None:
    commit = world.commit("feature", {"c.txt": "c\n"}, "add c", start="main")
    p = world.provider.open(world.request("feature", commit))
    world.commit("main", {"f.txt": "f\n"}, "on top", start="feature")  # main := feature + 1
    main = world.rev("main")
    merged = world.provider.merge(p.number, MergeMethod.SQUASH, BOB)
    assert merged.status is ProposalStatus.MERGED and merged.merged_commit == main
    assert world.rev("main") == main
    assert world.audit_actions() == ["proposal.open", "proposal.merge"]


# -- a target that moves under the merge ---------------------------------------------------------
def test_a_target_moved_before_the_push_loses_the_lease(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = world.commit("feature", {"c.txt": "c\n"}, "add c", start="main")
    p = world.provider.open(world.request("feature", commit))
    assert world.provider.mergeability(p.number).clean
    theirs = world.commit("main", {"d.txt": "someone else's\n"}, "pushed meanwhile", push=False)
    real_push: Callable[[Sequence[PushUpdate]], None] = world.source.push

    def push_after_someone_else(updates: Sequence[PushUpdate]) -> None:
        world.work.git("push", "-q", "origin", "main:refs/heads/main")  # between read and push
        real_push(updates)

    monkeypatch.setattr(world.source, "push", push_after_someone_else)
    with pytest.raises(Conflict):
        world.provider.merge(p.number, MergeMethod.MERGE, BOB)
    assert world.rev("main") == theirs  # nothing lost
    assert world.provider.get(p.number).status is ProposalStatus.OPEN
    assert "ref.move" not in world.audit_actions()

    monkeypatch.setattr(world.source, "push", real_push)
    merged = world.provider.merge(p.number, MergeMethod.MERGE, BOB)  # against the new target
    assert _parents(world, "main") == [theirs, commit]
    assert merged.merged_commit == world.rev("main")


def test_a_stale_mirror_cannot_overwrite_the_remote(tmp_path: Path) -> None:
    world = make_world(tmp_path, "git")
    commit = world.commit("feature", {"c.txt": "c\n"}, "add c", start="main")
    p = world.provider.open(world.request("feature", commit))
    assert world.provider.mergeability(p.number).clean
    # Someone pushes to the remote; the mirror (refresh: 1h) has not fetched it.
    theirs = world.commit("main", {"d.txt": "d\n"}, "pushed elsewhere", push=False)
    world.work.git("push", "-q", "origin", "main:refs/heads/main")
    with pytest.raises(Conflict):
        world.provider.merge(p.number, MergeMethod.SQUASH, BOB)
    assert world.rev("main") == theirs
    assert world.provider.get(p.number).status is ProposalStatus.OPEN
    world.provider.merge(p.number, MergeMethod.SQUASH, BOB)  # the failure fetched: retry works
    assert _parents(world, "main") == [theirs]
    assert world.upstream_git("show", "main:d.txt") == "d\n"
    world.db.dispose()


# -- closing, commenting, updating -----------------------------------------------------------------
def test_close_and_state_errors(world: World) -> None:
    commit = world.commit("feature", {"c.txt": "c\n"}, "add c", start="main")
    p = world.provider.open(world.request("feature", commit))
    closed = world.provider.close(p.number, BOB)
    assert closed.status is ProposalStatus.CLOSED
    assert world.provider.close(p.number, BOB) == closed  # again: unchanged
    main = world.rev("main")
    with pytest.raises(InvalidState):
        world.provider.merge(p.number, MergeMethod.MERGE, BOB)
    with pytest.raises(InvalidState):
        world.provider.update(p.number, title="new title")
    assert world.rev("main") == main
    assert world.provider.list(ProposalStatus.OPEN) == []
    assert world.audit_actions() == ["proposal.open", "proposal.close"]

    reopened = world.provider.open(world.request("feature", commit))  # a new proposal
    assert reopened.number == 2
    world.provider.merge(reopened.number, MergeMethod.MERGE, BOB)
    with pytest.raises(InvalidState):
        world.provider.close(reopened.number, BOB)
    with pytest.raises(InvalidState):
        world.provider.merge(reopened.number, MergeMethod.MERGE, BOB)


def test_comment_and_update(world: World) -> None:
    first = world.commit("feature", {"c.txt": "c\n"}, "add c", start="main")
    p = world.provider.open(world.request("feature", first))
    world.provider.comment(p.number, "Looks good.", BOB)
    world.provider.comment(p.number, "Ship it.", ALICE)
    assert [(c.author_name, c.text) for c in world.provider.comments(p.number)] == [
        ("Bob", "Looks good."), ("Alice", "Ship it.")]
    with pytest.raises(InvalidInput):
        world.provider.comment(p.number, "  ", BOB)
    second = world.commit("feature", {"c.txt": "c2\n"}, "fix c")
    updated = world.provider.update(p.number, title="Better title", source_commit=second,
                                    actor=ALICE)
    assert (updated.title, updated.source_commit) == ("Better title", second)
    entry = world.audit.query(action="proposal.update")[0]
    assert (entry.before, entry.after, entry.actor) == (first, second, "Alice <alice@example.com>")
    world.provider.merge(p.number, MergeMethod.MERGE, BOB)
    assert world.rev("main") == second  # the recorded commit is what merges


# -- numbers from concurrent processes ------------------------------------------------------------
def _open_many(config: dict[str, Any], db_url: str, commit: str, worker: int, count: int,
               barrier: Any, queue: Any) -> None:
    source, provider = _provider(config, db_url)
    barrier.wait(timeout=60)
    try:
        numbers = [
            provider.open(ProposalRequest("t", "", ALICE, f"w{worker}/{i}", ObjectId(commit),
                                          "main")).number
            for i in range(count)
        ]
        queue.put(numbers)
    except Exception as exc:  # reported to the parent
        queue.put([repr(exc)])
    finally:
        source.repository.close()


def test_numbers_opened_from_two_processes_are_unique_and_dense(tmp_path: Path) -> None:
    world = make_world(tmp_path, "local")
    commit = world.commit("feature", {"c.txt": "c\n"}, "add c", start="main")
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(2), ctx.Queue()
    procs = [
        ctx.Process(target=_open_many,
                    args=(world.config, str(world.db.url), commit, w, 20, barrier, queue))
        for w in range(2)
    ]
    for p in procs:
        p.start()
    numbers = [n for _ in procs for n in queue.get(timeout=180)]
    for p in procs:
        p.join(timeout=60)
    assert sorted(numbers) == list(range(1, 41)), numbers
    assert [p.number for p in world.provider.list()] == list(range(40, 0, -1))
    assert len(world.audit.query(action="proposal.open", limit=100)) == 40
    world.db.dispose()
