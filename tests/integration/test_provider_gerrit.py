"""The Gerrit provider against the Gerrit fake: real pushes to ``refs/for/*`` through a real
receive hook, patch sets published as ``refs/changes/…``, submits that move the branch in a real
bare repository, and every failure the REST API or an upload can produce.
"""

from __future__ import annotations

import base64
import copy
import logging
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import revisor.providers.factory as factory
from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.core.changes import Write
from revisor.db import AuditLog, Database
from revisor.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    InvalidState,
    NotAllowed,
    NotFound,
    ProposalNotFound,
    RemoteUnavailable,
)
from revisor.faults import InjectedFault
from revisor.providers.base import (
    CheckState,
    MergeConflict,
    MergeMethod,
    ProposalRequest,
    ProposalStatus,
    Provider,
)
from revisor.providers.gerrit import (
    GerritProvider,
    change_id_for,
    change_id_of,
    with_change_id,
    without_change_id,
)
from revisor.providers.http import HttpPolicy
from revisor.store.mirror import PushUpdate
from revisor.store.store import Store, StoreSource
from revisor.store.transport import NetworkPolicy
from revisor.vcs import ObjectId, Signature
from tests.support.fake_gerrit import FakeGerrit, footer_change_id

PASSWORD = "gerrit-http-pa55word"  # noqa: S105 - the fake's
BOT_EMAIL = "revisor@example.com"
REVISOR = Signature.now("Revisor", BOT_EMAIL)
ALICE = Signature.now("Alice", "alice@example.com")
PROJECT = "registry"
FAST = HttpPolicy(connect_timeout=2, read_timeout=2, attempts=3, backoff_base=0.01,
                  backoff_cap=0.02)
GIT_POLICY = NetworkPolicy(timeout=60, attempts=2, backoff_base=0.01, backoff_cap=0.02)


def _git(repo: Path, *args: str) -> str:
    proc = subprocess.run(["git", f"--git-dir={repo}", *args], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@dataclass
class World:
    fake: FakeGerrit
    bare: Path
    git_url: str
    tmp: Path
    config: dict[str, Any]
    env: dict[str, str]
    source: StoreSource
    db: Database
    sleeps: list[float] = field(default_factory=list)

    def provider(self, policy: HttpPolicy = FAST, **extra: Any) -> GerritProvider:
        source = self.source
        if extra:
            cfg = copy.deepcopy(self.config)
            cfg["sources"]["reg"]["provider"].update(extra)
            source = Store(Config.model_validate(cfg), env=self.env, policy=GIT_POLICY).source(
                "reg")
        return GerritProvider(source, self.db, AuditLog(self.db), REVISOR, policy=policy,
                              sleep=self.sleeps.append)

    def commit(self, files: dict[str, str], message: str, *, parent: str = "refs/heads/main",
               author: Signature = ALICE, branch: str | None = None) -> ObjectId:
        """A commit on ``parent`` (pushed to ``branch`` when given), made in the mirror."""
        repo = self.source.repository
        base = self.source.resolve(parent, fresh=True) if parent.startswith("refs/") else parent
        b = repo.builder(ObjectId(base))
        for path, text in files.items():
            b.write(path, text.encode())
        commit = b.commit(message, author, REVISOR)
        assert commit is not None
        if branch is not None:
            self.push(branch, commit)
        return commit

    def push(self, branch: str, commit: ObjectId) -> None:
        ref = f"refs/heads/{branch}"
        self.source.push([PushUpdate(ref, commit, self.remote(ref))])

    def remote(self, ref: str) -> ObjectId | None:
        out = subprocess.run(["git", f"--git-dir={self.bare}", "rev-parse", "--verify", "-q",
                              ref], capture_output=True, text=True, check=False).stdout.strip()
        return ObjectId(out) if out else None

    def move_main(self, files: dict[str, str], message: str = "upstream change") -> ObjectId:
        """Someone else moves main on the server."""
        commit = self.commit(files, message, author=Signature.now("Bob", "bob@example.com"))
        self.push("main", commit)
        return commit

    def request(self, branch: str, commit: ObjectId, title: str = "Add a",
                description: str = "Why: because.", labels: tuple[str, ...] = ()
                ) -> ProposalRequest:
        return ProposalRequest(title, description, ALICE, branch, commit, "main", labels)


def _make_world(tmp_path: Path, migrated: Path, submit_type: str = "MERGE_IF_NECESSARY",
                required: tuple[str, ...] = ("Code-Review",)) -> Iterator[World]:
    root = tmp_path / "gerrit"
    root.mkdir()
    fake = FakeGerrit(root, email=BOT_EMAIL, required=required)
    fake.start()
    try:
        bare, url = fake.create_project(PROJECT, {"README.md": "hello\n", "a.txt": "a\n"},
                                        submit_type=submit_type)
        env = {"GERRIT_PW": PASSWORD}
        config = {"data_dir": str(tmp_path / "data"), "sources": {"reg": {
            "type": "git", "url": url, "branch": "main", "refresh": "1h",
            "credentials": {"username": "revisor-bot", "password_env": "GERRIT_PW"},
            "provider": {"type": "gerrit", "url": fake.url, "project": PROJECT,
                         "username": "revisor-bot", "password_env": "GERRIT_PW"},
        }}}
        source = Store(Config.model_validate(config), env=env, policy=GIT_POLICY).source("reg")
        shutil.copy(migrated, tmp_path / "revisor.db")
        db = Database(f"sqlite:///{tmp_path / 'revisor.db'}")
        yield World(fake, bare, url, tmp_path, config, env, source, db)
    finally:
        fake.stop()


@pytest.fixture(scope="module")
def migrated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated database file, copied for each test (migrating takes longer than copying)."""
    path = tmp_path_factory.mktemp("db") / "revisor.db"
    db = Database(f"sqlite:///{path}")
    db.migrate()
    db.engine.dispose()
    return path


@pytest.fixture
def world(tmp_path: Path, migrated: Path) -> Iterator[World]:
    yield from _make_world(tmp_path, migrated)


# -- Change-Ids ------------------------------------------------------------------------------------
def test_change_id_is_derived_stably_from_project_branch_and_generation() -> None:
    a = change_id_for("registry", "revisor/abc")
    assert a == change_id_for("registry", "revisor/abc")
    assert a.startswith("I") and len(a) == 41
    assert len({a, change_id_for("registry", "revisor/abd"), change_id_for("other", "revisor/abc"),
                change_id_for("registry", "revisor/abc", 1)}) == 4


def test_change_id_footer_is_added_once_and_kept_with_other_trailers() -> None:
    cid, other = change_id_for("p", "b"), change_id_for("p", "c")
    plain = with_change_id("Fix the thing\n\nLonger text.\n", cid)
    assert plain == f"Fix the thing\n\nLonger text.\n\nChange-Id: {cid}\n"
    assert with_change_id(plain, cid) == plain  # idempotent
    signed = with_change_id("Fix\n\nBody\n\nSigned-off-by: A <a@x>\n", cid)
    assert signed.endswith(f"Signed-off-by: A <a@x>\nChange-Id: {cid}\n")
    replaced = with_change_id(signed, other)
    assert change_id_of(replaced) == other and cid not in replaced
    assert with_change_id("Subject only", cid) == f"Subject only\n\nChange-Id: {cid}\n"
    assert without_change_id(signed) == "Fix\n\nBody\n\nSigned-off-by: A <a@x>"
    assert without_change_id(plain) == "Fix the thing\n\nLonger text."
    # Gerrit reads them the same way (the fake's footer parser is written from Gerrit's docs).
    for message in (plain, signed, replaced):
        assert footer_change_id(message) == (change_id_of(message), None)
    assert footer_change_id(f"Change-Id: {cid}\n")[1] == "missing Change-Id in message footer"
    with pytest.raises(InvalidInput):
        with_change_id("x", "not-a-change-id")


# -- opening ---------------------------------------------------------------------------------------
def test_open_pushes_to_refs_for_and_the_change_keeps_the_real_author(world: World) -> None:
    commit = world.commit({"a.txt": "a2\n"}, "Add a\n\nWhy: because.", branch="feature")
    p = world.provider().open(world.request("feature", commit, labels=("needs-docs",)))

    cid = change_id_for(PROJECT, "feature")
    change = world.fake.by_change_id(cid)
    assert (p.number, p.external_id, p.status) == (change.number, cid, ProposalStatus.OPEN)
    assert (p.title, p.description) == ("Add a", "Why: because.")
    assert (p.source_branch, p.target_branch, p.labels) == ("feature", "main", ("needs-docs",))
    assert p.url == f"{world.fake.url}/c/{PROJECT}/+/{change.number}"
    assert (change.topic, change.hashtags) == ("feature", ["revisor", "needs-docs"])
    # The uploaded commit: the proposal's tree and author, Revisor as committer, the footer.
    ps = world.remote(f"refs/changes/{change.number:02d}/{change.number}/1")
    assert ps == p.source_commit == change.current.commit
    assert _git(world.bare, "log", "-1", "--format=%an <%ae>|%cn <%ce>", ps) == (
        f"Alice <alice@example.com>|Revisor <{BOT_EMAIL}>")
    assert _git(world.bare, "rev-parse", f"{ps}^{{tree}}") == _git(
        world.bare, "rev-parse", f"{commit}^{{tree}}")
    assert change_id_of(_git(world.bare, "log", "-1", "--format=%B", ps)) == cid
    assert (p.author_name, p.author_email) == ("Alice", "alice@example.com")
    assert change.current.uploader.username == "revisor-bot"
    # refs/for/* never becomes a ref; refs/changes/* are Gerrit's.
    assert _git(world.bare, "for-each-ref", "refs/for/") == ""
    assert world.provider().proposes(p, commit)


def test_open_again_is_the_same_change_with_no_new_patch_set(world: World) -> None:
    commit = world.commit({"a.txt": "a2\n"}, "Add a\n\nWhy: because.", branch="feature")
    first = world.provider().open(world.request("feature", commit))
    again = world.provider().open(world.request("feature", commit))  # a retry, a restart
    assert again.number == first.number and again.source_commit == first.source_commit
    assert len(world.fake.changes) == 1
    assert len(world.fake.changes[first.number].patch_sets) == 1


def test_patch_sets_one_two_three_of_one_change_keep_the_change_id(world: World) -> None:
    provider = world.provider()
    c1 = world.commit({"a.txt": "v1\n"}, "Add a\n\nWhy: because.", branch="feature")
    p1 = provider.open(world.request("feature", c1))
    c2 = world.commit({"a.txt": "v2\n"}, "Add a, again", parent=c1, branch="feature")
    p2 = provider.update(p1.number, source_commit=c2, actor=ALICE)
    c3 = world.commit({"a.txt": "v3\n", "b.txt": "b\n"}, "Add a and b", parent=c2,
                      branch="feature")
    p3 = provider.update(p1.number, source_commit=c3)

    assert p1.number == p2.number == p3.number
    assert p1.external_id == p2.external_id == p3.external_id == change_id_for(PROJECT, "feature")
    refs = _git(world.bare, "for-each-ref", "--format=%(refname) %(objectname)",
                "refs/changes/").splitlines()
    n = p1.number
    assert [r.split()[0] for r in refs] == [f"refs/changes/{n:02d}/{n}/{i}" for i in (1, 2, 3)]
    assert [r.split()[1] for r in refs] == [p1.source_commit, p2.source_commit, p3.source_commit]
    main = world.remote("refs/heads/main")
    for ps in (p1.source_commit, p2.source_commit, p3.source_commit):
        # each patch set is one commit on the target, with the same Change-Id and real author
        assert _git(world.bare, "rev-parse", f"{ps}^") == main
        assert change_id_of(_git(world.bare, "log", "-1", "--format=%B", ps)) == p1.external_id
        assert _git(world.bare, "log", "-1", "--format=%ae", ps) == "alice@example.com"
    assert _git(world.bare, "rev-parse", f"{p3.source_commit}^{{tree}}") == _git(
        world.bare, "rev-parse", f"{c3}^{{tree}}")
    # the title stays the proposal's, not the later commits' subjects
    assert p3.title == "Add a"


def test_update_text_is_a_new_patch_set_with_the_same_tree(world: World) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature"), description=""))
    q = provider.update(p.number, title="Better title", description="More words.\n\nAcked-by: B")
    assert (q.title, q.description) == ("Better title", "More words.\n\nAcked-by: B")
    assert q.source_commit != p.source_commit and q.external_id == p.external_id
    tree = _git(world.bare, "rev-parse", f"{p.source_commit}^{{tree}}")
    assert _git(world.bare, "rev-parse", f"{q.source_commit}^{{tree}}") == tree
    message = _git(world.bare, "log", "-1", "--format=%B", q.source_commit)
    assert message.endswith(f"Acked-by: B\nChange-Id: {p.external_id}")
    assert provider.update(p.number, title="Better title").source_commit == q.source_commit
    with pytest.raises(InvalidInput):
        provider.update(p.number, title="  ")


def test_a_patch_set_uploaded_by_someone_else_is_fetched_from_refs_changes(
    world: World, tmp_path: Path
) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    # A reviewer amends the change in their own clone and uploads it (same Change-Id).
    clone = tmp_path / "clone"
    auth = base64.b64encode(f"revisor-bot:{PASSWORD}".encode()).decode()
    cfg = ["-c", f"http.extraHeader=Authorization: Basic {auth}"]
    subprocess.run(["git", *cfg, "clone", "-q", world.git_url, str(clone)], check=True)
    ref = f"refs/changes/{p.number:02d}/{p.number}/1"
    run = [*cfg, "-C", str(clone)]
    subprocess.run(["git", *run, "fetch", "-q", "origin", ref], check=True)
    subprocess.run(["git", *run, "checkout", "-q", "FETCH_HEAD"], check=True)
    (clone / "a.txt").write_text("reviewer fix\n")
    env = {"GIT_AUTHOR_NAME": "Alice", "GIT_AUTHOR_EMAIL": "alice@example.com",
           "GIT_COMMITTER_NAME": "Revisor", "GIT_COMMITTER_EMAIL": BOT_EMAIL}
    subprocess.run(["git", *run, "commit", "-qa", "--amend", "--no-edit"],
                   check=True, env={**__import__("os").environ, **env})
    subprocess.run(["git", *run, "push", "-q", "origin", "HEAD:refs/for/main"], check=True)
    foreign = world.fake.changes[p.number].current.commit
    assert world.fake.changes[p.number].current.number == 2

    q = provider.update(p.number, title="Add a (reviewed)")
    assert world.fake.changes[p.number].current.number == 3
    assert _git(world.bare, "rev-parse", f"{q.source_commit}^{{tree}}") == _git(
        world.bare, "rev-parse", f"{foreign}^{{tree}}")


def test_a_closed_change_makes_the_branch_use_the_next_change_id(world: World) -> None:
    provider = world.provider()
    commit = world.commit({"a.txt": "x\n"}, "Add a", branch="feature")
    first = provider.open(world.request("feature", commit))
    closed = provider.close(first.number, ALICE)
    assert closed.status is ProposalStatus.CLOSED
    assert world.fake.changes[first.number].status == "ABANDONED"
    assert provider.close(first.number, ALICE).status is ProposalStatus.CLOSED  # again: no-op
    second = provider.open(world.request("feature", commit))
    assert second.number != first.number
    assert second.external_id == change_id_for(PROJECT, "feature", 1)
    found = world.provider().find_by_branch("feature")
    assert found is not None and found.number == second.number
    assert world.provider().find_by_branch("no-such-branch") is None


def test_list_finds_revisors_changes_after_a_restart_and_only_those(world: World) -> None:
    provider = world.provider()
    mine = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                                branch="feature")))
    other = provider.open(world.request("feature2", world.commit({"b.txt": "y\n"}, "Add b",
                                                                  branch="feature2")))
    provider.close(other.number, ALICE)
    # someone uploads a change by hand: not Revisor's (no hashtag)
    cid = "I" + "1" * 40
    hand = world.commit({"c.txt": "z\n"}, f"By hand\n\nChange-Id: {cid}")
    subprocess.run(["git", f"--git-dir={world.source.mirror.path}",  # type: ignore[union-attr]
                    "-c", "http.extraHeader=Authorization: Basic " + base64.b64encode(
                        f"revisor-bot:{PASSWORD}".encode()).decode(),
                    "push", "-q", world.git_url, f"{hand}:refs/for/main"], check=True)
    assert world.fake.by_change_id(cid).number not in (mine.number, other.number)

    restarted = world.provider()
    assert [p.number for p in restarted.list()] == [other.number, mine.number]
    assert [p.number for p in restarted.list(ProposalStatus.OPEN)] == [mine.number]
    assert [p.number for p in restarted.list(ProposalStatus.CLOSED)] == [other.number]
    assert restarted.list(ProposalStatus.MERGED) == []
    assert restarted.get(world.fake.by_change_id(cid).number).title == "By hand"


def test_a_push_without_change_id_is_refused_by_the_receive_hook(world: World) -> None:
    commit = world.commit({"a.txt": "x\n"}, "No footer here")
    auth = base64.b64encode(f"revisor-bot:{PASSWORD}".encode()).decode()
    proc = subprocess.run(
        ["git", f"--git-dir={world.source.mirror.path}",  # type: ignore[union-attr]
         "-c", f"http.extraHeader=Authorization: Basic {auth}", "push", "--porcelain",
         world.git_url, f"{commit}:refs/for/main"], capture_output=True, text=True, check=False)
    assert proc.returncode != 0
    assert "missing Change-Id in message footer" in proc.stdout
    assert world.fake.changes == {}
    assert _git(world.bare, "for-each-ref", "refs/for/", "refs/changes/") == ""


def test_uploading_for_another_author_needs_forge_author(world: World) -> None:
    world.fake.bot.forge_author = False
    commit = world.commit({"a.txt": "x\n"}, "Add a", branch="feature")
    with pytest.raises(NotAllowed, match="invalid author"):
        world.provider().open(world.request("feature", commit))
    assert world.fake.changes == {}


def test_open_refuses_what_is_already_in_the_target(world: World) -> None:
    main = world.source.resolve("refs/heads/main", fresh=True)
    world.push("same", main)
    with pytest.raises(InvalidInput, match="nothing to propose"):
        world.provider().open(world.request("same", main))
    with pytest.raises(InvalidInput):
        world.provider().open(world.request("main", main))


# -- reading ---------------------------------------------------------------------------------------
def test_checks_and_reviews_come_from_the_labels(world: World) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    ci = world.fake.add_account("ci", "ci-pw", "CI", "ci@example.com")
    alice = world.fake.add_account("alice", "alice-pw", "Alice", "alice@example.com")
    assert [(c.name, c.state) for c in provider.get(p.number).checks] == [
        ("Verified", CheckState.PENDING)]
    world.fake.vote(p.number, "Verified", 1, ci)
    world.fake.vote(p.number, "Code-Review", 1, alice)
    got = provider.get(p.number)
    assert [(c.name, c.state) for c in got.checks] == [("Verified", CheckState.SUCCESS)]
    assert [(r.reviewer, r.label, r.value, r.approved) for r in got.reviews] == [
        ("alice", "Code-Review", 1, False)]
    world.fake.vote(p.number, "Verified", -1, ci)
    world.fake.vote(p.number, "Code-Review", 2, alice)
    got = provider.get(p.number)
    assert got.checks[0].state is CheckState.FAILURE
    assert got.reviews[0].approved and got.mergeable is True


def test_comments_are_review_messages_without_gerrits_own(world: World) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    provider.comment(p.number, "Looks fine to me.\n\nSecond paragraph.", ALICE)
    provider.comment(p.number, "And one more.", ALICE)
    comments = provider.comments(p.number)
    assert [c.text for c in comments] == ["Looks fine to me.\n\nSecond paragraph.",
                                          "And one more."]
    assert comments[0].author_name == "Revisor Bot" and comments[0].id < comments[1].id
    messages = [m.message for m in world.fake.changes[p.number].messages]
    assert messages[0] == "Uploaded patch set 1."  # Gerrit's own, left out above
    with pytest.raises(InvalidInput):
        provider.comment(p.number, " ", ALICE)


def test_unknown_and_foreign_changes_are_not_found(world: World) -> None:
    with pytest.raises(ProposalNotFound, match="Not found"):
        world.provider().get(42)
    with pytest.raises(ProposalNotFound):
        world.provider().comments(42)


# -- merging ---------------------------------------------------------------------------------------
def test_merge_votes_the_configured_labels_then_submits_and_moves_main(world: World) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    assert provider.mergeability(p.number).clean
    merged = provider.merge(p.number, MergeMethod.MERGE, ALICE)

    assert merged.status is ProposalStatus.MERGED and merged.merged_commit == p.source_commit
    assert world.remote("refs/heads/main") == p.source_commit  # a fast-forward
    ops = [r.operation for r in world.fake.requests if r.operation in ("set-review",
                                                                      "submit-change")]
    assert ops == ["set-review", "submit-change"]
    review = world.fake.calls("set-review")[0]
    assert review.json() == {"labels": {"Code-Review": 2}, "tag": "autogenerated:revisor"}
    assert p.source_commit in review.path  # the vote is on the revision that was read
    assert world.source.resolve("refs/heads/main") == p.source_commit  # the mirror followed
    with pytest.raises(InvalidState):
        provider.merge(p.number, MergeMethod.MERGE, ALICE)
    with pytest.raises(InvalidState):
        provider.close(p.number, ALICE)
    with pytest.raises(InvalidState):
        provider.update(p.number, title="too late")


def test_merge_makes_a_merge_commit_when_main_moved(world: World) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    moved = world.move_main({"other.txt": "o\n"})
    provider.merge(p.number, MergeMethod.MERGE, ALICE)
    head = world.remote("refs/heads/main")
    assert _git(world.bare, "rev-list", "--parents", "-n1", str(head)).split()[1:] == [
        moved, p.source_commit]


@pytest.fixture
def ff_world(tmp_path: Path, migrated: Path) -> Iterator[World]:
    yield from _make_world(tmp_path, migrated, submit_type="FAST_FORWARD_ONLY")


def test_a_non_fast_forward_submit_is_a_conflict_not_a_crash(ff_world: World) -> None:
    world = ff_world
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    moved = world.move_main({"other.txt": "o\n"})
    verdict = provider.mergeability(p.number)
    assert not verdict.clean and verdict.conflicts == ()
    with pytest.raises(Conflict, match="fast-forward") as caught:
        provider.merge(p.number, MergeMethod.MERGE, ALICE)
    assert not isinstance(caught.value, MergeConflict)
    assert caught.value.hint and "fast-forward" in caught.value.hint
    assert world.remote("refs/heads/main") == moved  # nothing moved
    assert provider.get(p.number).status is ProposalStatus.OPEN
    # rebased onto the new main, it goes in
    rebased = world.commit({"a.txt": "x\n"}, "Add a", parent=moved, branch="feature")
    q = provider.update(p.number, source_commit=rebased)
    assert provider.merge(q.number, MergeMethod.MERGE, ALICE).status is ProposalStatus.MERGED
    assert world.remote("refs/heads/main") == q.source_commit


def test_a_conflicting_submit_is_a_merge_conflict_with_the_paths(world: World) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "ours\n"}, "Change a",
                                                             branch="feature")))
    moved = world.move_main({"a.txt": "theirs\n"})
    verdict = provider.mergeability(p.number)
    assert (verdict.clean, verdict.conflicts, verdict.target_commit) == (False, ("a.txt",), moved)
    with pytest.raises(MergeConflict, match="path conflict") as caught:
        provider.merge(p.number, MergeMethod.MERGE, ALICE)
    assert caught.value.conflicts == ("a.txt",)
    assert world.remote("refs/heads/main") == moved


@pytest.fixture
def verified_world(tmp_path: Path, migrated: Path) -> Iterator[World]:
    yield from _make_world(tmp_path, migrated, required=("Code-Review", "Verified"))


def test_missing_votes_are_a_conflict_with_gerrits_message(verified_world: World) -> None:
    world = verified_world
    p = world.provider().open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                                     branch="feature")))
    with pytest.raises(Conflict, match="submit requirement 'Verified' is unsatisfied"):
        world.provider().merge(p.number, MergeMethod.MERGE, ALICE)
    voting = world.provider(submit_labels={"Code-Review": 2, "Verified": 1})
    assert voting.merge(p.number, MergeMethod.SQUASH, ALICE).status is ProposalStatus.MERGED
    assert world.fake.calls("set-review")[-1].json()["labels"] == {"Code-Review": 2,
                                                                  "Verified": 1}


def test_merge_after_a_new_patch_set_is_a_conflict(world: World) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    original = provider._info

    def stale(number: int) -> dict[str, Any]:  # a new patch set lands right after the read
        info = original(number)
        if not getattr(stale, "done", False):
            stale.done = True  # type: ignore[attr-defined]
            provider.update(number, title="Changed meanwhile")
        return info

    provider._info = stale  # type: ignore[method-assign]
    with pytest.raises(Conflict, match="new patch set"):
        provider.merge(p.number, MergeMethod.MERGE, ALICE)
    assert world.fake.changes[p.number].status == "NEW"


# -- failures --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error"),
    [(401, NotAllowed), (403, NotAllowed), (404, NotFound), (409, Conflict),
     (422, InvalidInput), (400, InvalidInput), (500, RemoteUnavailable)],
)
def test_rest_failures_map_to_revisor_errors_keeping_gerrits_message(
    world: World, status: int, error: type[Exception]
) -> None:
    world.fake.fail_next("list-changes", status, message=f"gerrit says {status}", n=5)
    with pytest.raises(error, match=f"gerrit says {status}"):
        world.provider().list()


def test_a_wrong_password_is_not_allowed(world: World) -> None:
    world.env["GERRIT_PW"] = "wrong"
    with pytest.raises(NotAllowed, match="401 Unauthorized"):
        world.provider().get(1)
    world.env.pop("GERRIT_PW")
    with pytest.raises(ConfigError, match="GERRIT_PW"):
        world.provider().get(1)


def test_429_is_waited_out_as_retry_after_says(world: World) -> None:
    world.fake.fail_next("list-changes", 429, retry_after=7)
    assert world.provider().list() == []
    assert world.sleeps == [7.0]
    world.fake.fail_next("list-changes", 429, retry_after=3600)
    with pytest.raises(RemoteUnavailable) as caught:
        world.provider().list()
    assert caught.value.retry_after == 3600


def test_5xx_on_reads_is_retried_with_backoff(world: World) -> None:
    world.fake.fail_next("list-changes", 502, n=2)
    assert world.provider().list() == []
    assert len(world.sleeps) == 2 and all(0 <= s <= 0.02 for s in world.sleeps)


def test_a_hung_server_is_a_timeout(world: World) -> None:
    world.fake.hang_next("get-change", n=2)
    provider = world.provider(HttpPolicy(read_timeout=0.3, attempts=2, backoff_base=0.01))
    with pytest.raises(RemoteUnavailable, match="no answer in time"):
        provider.get(1)
    world.fake.release()


def test_an_upload_answered_500_after_it_happened_makes_exactly_one_change(world: World) -> None:
    world.fake.fail_next("receive", 500, after_action=True)
    commit = world.commit({"a.txt": "x\n"}, "Add a", branch="feature")
    p = world.provider().open(world.request("feature", commit))
    assert len(world.fake.changes) == 1
    assert len(world.fake.changes[p.number].patch_sets) == 1
    assert world.fake.calls("receive")[0].fault == "500 after action"


def test_a_submit_answered_500_after_it_happened_is_a_merge(world: World) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    world.fake.fail_next("submit-change", 500, after_action=True)
    assert provider.merge(p.number, MergeMethod.MERGE, ALICE).status is ProposalStatus.MERGED
    assert len(world.fake.calls("submit-change")) == 1


def test_a_submit_refused_with_500_is_tried_again(world: World) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    world.fake.fail_next("submit-change", 503)
    assert provider.merge(p.number, MergeMethod.MERGE, ALICE).status is ProposalStatus.MERGED
    assert len(world.fake.calls("submit-change")) == 2


def test_abandon_and_comment_answered_500_after_acting_happen_once(world: World) -> None:
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    world.fake.fail_next("set-review", 500, after_action=True)
    provider.comment(p.number, "exactly once", ALICE)
    assert [c.text for c in provider.comments(p.number)] == ["exactly once"]
    world.fake.fail_next("abandon-change", 500, after_action=True)
    assert provider.close(p.number, ALICE).status is ProposalStatus.CLOSED
    assert len(world.fake.calls("abandon-change")) == 1


def test_the_password_never_appears_in_logs_or_errors(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    basic = base64.b64encode(f"revisor-bot:{PASSWORD}".encode()).decode()
    provider = world.provider()
    p = provider.open(world.request("feature", world.commit({"a.txt": "x\n"}, "Add a",
                                                             branch="feature")))
    errors: list[str] = []
    for status, times in ((401, 1), (500, 3), (409, 1)):
        world.fake.fail_next("get-change", status, n=times,
                             message=f"echo {PASSWORD} and Basic {basic}")
        with pytest.raises(Exception) as caught:
            provider.get(p.number)
        errors.append(f"{caught.value} {getattr(caught.value, 'hint', '')}")
    world.fake.fail_next("receive", 500)  # a refused upload's stderr
    with pytest.raises(NotAllowed) as refused:
        provider.update(p.number, title="Another")
    errors.append(str(refused.value))
    provider.merge(p.number, MergeMethod.MERGE, ALICE)
    text = "\n".join([*errors, *(r.getMessage() for r in caplog.records), caplog.text])
    assert "echo ***" in text
    assert PASSWORD not in text and basic not in text


# -- configuration and the whole path ------------------------------------------------------------
def test_configuration_is_validated_with_the_field_named(world: World) -> None:
    with pytest.raises(ConfigError, match=r"sources\.reg\.provider\.projekt"):
        world.provider(projekt="x")
    with pytest.raises(ConfigError, match=r"submit_labels"):
        world.provider(submit_labels=["Code-Review"])


def test_end_to_end_a_transaction_opens_a_change_and_merging_moves_main(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    made: list[Provider] = []

    def make_provider(source: StoreSource, db: Database, audit: AuditLog,
                      committer: Signature) -> Provider:
        assert source.config.provider.type == "gerrit"
        provider = GerritProvider(source, db, audit, committer, policy=FAST)
        made.append(provider)
        return provider

    monkeypatch.setattr(factory, "make_provider", make_provider)
    config = Config.model_validate({**world.config, "data_dir": str(world.tmp / "e2e")})
    with Revisor(config, env=world.env, identity=REVISOR, policy=GIT_POLICY).start() as app:
        source = app.source("reg")
        result = source.update(None, "Add the schema\n\nFor the registry.", ALICE,
                               changes=[Write("schema.json", b"{}\n")])
        assert result.proposal is not None and result.proposal.provider == "gerrit"
        change = world.fake.changes[result.proposal.number]
        assert change.topic == result.branch
        assert change.change_id == change_id_for(PROJECT, str(result.branch))
        proposal = source.provider.get(result.proposal.number)
        assert result.commit is not None
        assert isinstance(source.provider, GerritProvider)
        assert source.provider.proposes(proposal, result.commit)  # rewritten with the footer
        assert (proposal.author_email, proposal.title) == ("alice@example.com", "Add the schema")
        merged = source.provider.merge(proposal.number, MergeMethod.MERGE, ALICE)
        assert merged.status is ProposalStatus.MERGED
    assert _git(world.bare, "show", "refs/heads/main:schema.json") == "{}"
    assert made and isinstance(made[0], GerritProvider)


def test_a_transaction_failing_after_the_change_was_opened_abandons_it(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(factory, "make_provider", lambda source, db, audit, committer: (
        GerritProvider(source, db, audit, committer, policy=FAST)))
    monkeypatch.setenv("REVISOR_FAULT", "tx.after_proposal=raise")
    config = Config.model_validate({**world.config, "data_dir": str(world.tmp / "e2e")})
    app = Revisor(config, env=world.env, identity=REVISOR, policy=GIT_POLICY).start()
    with app, pytest.raises(InjectedFault):
        app.source("reg").update(None, "Add x", ALICE, changes=[Write("x.txt", b"x\n")])
    (change,) = world.fake.changes.values()
    assert change.status == "ABANDONED"
