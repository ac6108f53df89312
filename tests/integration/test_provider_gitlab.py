"""The GitLab provider against a protocol-faithful fake of GitLab's REST API (v4).

Why these tests exist: the provider must open, read, list, change, rebase, merge and close merge
requests exactly as GitLab's documented API expects, and turn every failure GitLab (or the
network) can produce into Revisor's errors, with GitLab's message kept and the token never
shown. The fake (``tests/support/fake_gitlab.py``) is a real HTTP server whose projects are bare
repositories served over smart HTTP: branches are pushed for real with the git CLI,
mergeability is git's, and merging moves the real target branch, read back here with git.
"""

from __future__ import annotations

import copy
import logging
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from revisor.config import Config
from revisor.db import AuditLog, Database
from revisor.errors import (
    ConfigError,
    Conflict,
    InvalidInput,
    InvalidState,
    NotAllowed,
    ProposalNotFound,
    RemoteUnavailable,
)
from revisor.providers.base import (
    CheckState,
    MergeConflict,
    MergeMethod,
    ProposalRequest,
    ProposalStatus,
)
from revisor.providers.gitlab import GitLabProvider
from revisor.store.store import Store, StoreSource
from revisor.vcs import ObjectId, Signature
from tests.gitutil import GitRepo
from tests.support.fake_gitlab import FakeGitLab
from tests.support.fixtures import MakeRemote

TOKEN = "glpat-S3cr3tT0kenValue1234567890xyz"  # noqa: S105 - the fake's test token
ALICE = Signature.now("Alice Liddell", "alice@example.com")
BOB = Signature.now("Bob", "bob@example.com")
REVISOR = Signature.now("Revisor", "revisor@example.com")
BASE_FILES = {
    "README.md": "hello\n",
    "a.txt": "".join(f"a line {i}\n" for i in range(20)),
    "b.txt": "".join(f"b line {i}\n" for i in range(20)),
}
FAST: dict[str, Any] = {"timeout": 1, "max_retries": 2, "max_wait": 5, "poll_interval": 0.05}


def _git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


@dataclass
class World:
    fake: FakeGitLab
    bare: Path
    work: GitRepo
    env: dict[str, str]
    raw: dict[str, Any]
    config: Config
    db: Database
    source: StoreSource
    provider: GitLabProvider

    def provider_again(self, **settings: Any) -> GitLabProvider:
        """A new provider over a new store, as after a restart (optionally reconfigured)."""
        raw = copy.deepcopy(self.raw)
        raw["sources"]["app"]["provider"].update(settings)
        source = Store(Config.model_validate(raw), env=self.env).source("app")
        return GitLabProvider(source, self.db, AuditLog(self.db), REVISOR)

    def push(self, branch: str, files: dict[str, str], message: str, *,
             start: str | None = "main", author: Signature | None = None) -> ObjectId:
        w = self.work
        if start is not None:
            w.git("fetch", "-q", "origin")
            w.checkout("-B", branch, "origin/main" if start == "main" else start)
        else:
            w.checkout(branch)
        for path, content in files.items():
            w.write(path, content)
        env = {}
        if author is not None:
            env = {"GIT_AUTHOR_NAME": author.name, "GIT_AUTHOR_EMAIL": author.email}
        w.git("add", "-A")
        w.git("commit", "-q", "-m", message, env=env)
        w.git("push", "-q", "-f", "origin", f"HEAD:refs/heads/{branch}")
        return ObjectId(w.head())

    def upstream(self, rev: str) -> str:
        return _git(f"--git-dir={self.bare}", "rev-parse", "--verify", rev).strip()

    def request(self, branch: str, commit: ObjectId, title: str = "Add c",
                labels: tuple[str, ...] = ()) -> ProposalRequest:
        return ProposalRequest(title, "Because we need c.", ALICE, branch, commit, "main",
                               labels)

    def routes(self, name: str) -> list[str]:
        return [r.route for r in self.fake.requests if r.route == name]


@pytest.fixture
def fake() -> Iterator[FakeGitLab]:
    server = FakeGitLab()
    server.start()
    server.add_token(TOKEN, "revisor-bot")
    try:
        yield server
    finally:
        server.stop()


def _world(fake: FakeGitLab, make_remote: MakeRemote, tmp_path: Path, *,
           merge_method: str = "merge", **settings: Any) -> World:
    bare, url = make_remote(BASE_FILES, name="group/app.git")
    fake.add_project("group/app", bare, merge_method=merge_method)
    work = tmp_path / "work"
    _git("clone", "-q", str(bare), str(work))  # a quick local clone; it pushes over HTTP
    _git("-C", str(work), "remote", "set-url", "origin", url)
    provider_cfg = {"type": "gitlab", "api_url": f"{fake.url}/api/v4", "project": "group/app",
                    "token_env": "GL_TOKEN", **FAST, **settings}
    raw = {
        "data_dir": str(tmp_path / "data"),
        "sources": {"app": {"type": "git", "url": url, "branch": "main", "refresh": "1h",
                            "provider": provider_cfg}},
    }
    config = Config.model_validate(raw)
    env = {"GL_TOKEN": TOKEN}
    db = Database.for_data_dir(tmp_path / "data")
    db.migrate()
    source = Store(config, env=env).source("app")
    source.refresh()
    provider = GitLabProvider(source, db, AuditLog(db), REVISOR)
    return World(fake, bare, GitRepo(work), env, raw, config, db, source, provider)


@pytest.fixture
def world(fake: FakeGitLab, make_remote: MakeRemote, tmp_path: Path) -> Iterator[World]:
    w = _world(fake, make_remote, tmp_path)
    try:
        yield w
    finally:
        w.db.dispose()


# -- opening, reading, listing ----------------------------------------------------------------
def test_open_marks_and_finds_its_merge_requests(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    p = world.provider.open(world.request("feature", commit, labels=("deps",)))
    assert (p.provider, p.number, p.status) == ("gitlab", 1, ProposalStatus.OPEN)
    assert p.url is not None and p.url.endswith("/group/app/-/merge_requests/1")
    assert (p.source_branch, p.source_commit, p.target_branch) == ("feature", commit, "main")
    assert (p.author_name, p.author_email) == (ALICE.name, ALICE.email)
    assert p.description == "Because we need c."
    assert set(p.labels) == {"revisor", "deps"}
    mr = world.fake.project("group/app").mrs[1]
    assert p.external_id == str(mr.id) and mr.author == "revisor-bot"
    assert "<!-- revisor:" in mr.description

    assert world.provider.open(world.request("feature", commit)).number == 1  # idempotent
    assert len(world.fake.project("group/app").mrs) == 1
    assert world.provider.find_by_branch("feature") == p
    assert world.provider.find_by_branch("nope") is None
    full = world.provider.get(1)
    assert full.mergeable is True and full.title == "Add c"
    with pytest.raises(ProposalNotFound, match="404 Not found"):
        world.provider.get(7)
    # The project is addressed by its URL-encoded path, as GitLab documents.
    assert all(r.path.startswith("/api/v4/projects/group%2Fapp/") for r in world.fake.requests)

    # Someone else's MR (no label) is not Revisor's; after a restart ours is found again.
    world.push("manual", {"m.txt": "m\n"}, "manual")
    world.fake.add_token("glpat-other", "octocat")
    r = httpx.post(f"{world.fake.url}/api/v4/projects/group%2Fapp/merge_requests",
                   headers={"PRIVATE-TOKEN": "glpat-other"},
                   json={"source_branch": "manual", "target_branch": "main", "title": "by hand"})
    assert r.status_code == 201, r.text
    again = world.provider_again()
    assert [q.number for q in again.list()] == [1]
    assert [q.number for q in again.list(ProposalStatus.OPEN)] == [1]
    assert again.list(ProposalStatus.MERGED) == []


def test_list_and_notes_follow_pagination(fake: FakeGitLab, make_remote: MakeRemote,
                                          tmp_path: Path) -> None:
    world = _world(fake, make_remote, tmp_path, per_page=2)
    numbers = []
    for i in range(5):
        commit = world.push(f"f{i}", {f"f{i}.txt": f"{i}\n"}, f"add f{i}")
        numbers.append(world.provider.open(world.request(f"f{i}", commit, f"Change {i}")).number)
    assert [p.number for p in world.provider.list()] == numbers[::-1]  # newest first
    pages = [r for r in fake.requests if r.route == "mrs.list" and "labels" in r.query]
    assert len(pages) == 3 and pages[-1].query["page"] == ["3"]

    for i in range(5):
        world.provider.comment(1, f"comment {i}", BOB if i % 2 else ALICE)
    fake.add_system_note("group/app", 1, "added 1 commit")
    comments = world.provider.comments(1)
    assert [c.text for c in comments] == [f"comment {i}" for i in range(5)]
    assert (comments[1].author_name, comments[1].author_email) == (BOB.name, BOB.email)
    world.db.dispose()


def test_update_follows_the_branch_and_close_is_final(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    p = world.provider.update(1, title="Add c, better", description="Now with reasons.",
                              actor=BOB)
    assert (p.title, p.description) == ("Add c, better", "Now with reasons.")
    assert (p.author_name, p.author_email) == (ALICE.name, ALICE.email)
    moved = world.push("feature", {"c.txt": "c2\n"}, "change c", start=None)
    assert world.provider.update(1, source_commit=moved).source_commit == moved
    with pytest.raises(InvalidInput):
        world.provider.update(1, title=" ")

    closed = world.provider.close(1, BOB)
    assert closed.status is ProposalStatus.CLOSED
    assert world.provider.close(1, BOB) == closed
    with pytest.raises(InvalidState):
        world.provider.update(1, title="again")
    with pytest.raises(InvalidState):
        world.provider.merge(1, MergeMethod.MERGE, BOB)
    assert [q.number for q in world.provider.list(ProposalStatus.CLOSED)] == [1]
    actions = [e.action for e in AuditLog(world.db).query(source="app")][::-1]
    assert actions == ["proposal.open", "proposal.update", "proposal.close"]


def test_pipelines_and_approvals_are_read(world: World) -> None:
    first = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", first))
    world.fake.add_pipeline("group/app", 1, "failed")  # for the old head: not shown
    head = world.push("feature", {"c.txt": "c2\n"}, "fix c", start=None)
    world.fake.add_pipeline("group/app", 1, "success", sha=head)
    world.fake.add_pipeline("group/app", 1, "running", sha=head, source="push")
    world.fake.approve("group/app", 1, "bob")
    world.fake.approve("group/app", 1, "carol")
    p = world.provider.get(1)
    assert p.source_commit == head
    assert sorted(c.state for c in p.checks) == [CheckState.PENDING, CheckState.SUCCESS]
    assert all(c.url and "/-/pipelines/" in c.url for c in p.checks)
    assert {(r.reviewer, r.approved) for r in p.reviews} == {("bob", True), ("carol", True)}


# -- mergeability and merging ---------------------------------------------------------------
def test_mergeability_waits_for_gitlab_and_lists_conflicts(world: World) -> None:
    clean = world.push("clean", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("clean", clean))
    world.fake.recheck_pending_reads = 2  # GitLab is still checking
    m = world.provider.mergeability(1)
    assert m.clean and m.conflicts == () and m.target_commit == world.upstream("main")
    assert len(world.routes("mrs.get")) == 3
    assert "with_merge_status_recheck" in world.fake.requests[-3].query

    world.push("main", {"a.txt": "ours\n", "b.txt": "ours\n"}, "edit a and b on main")
    clash = world.push("clash", {"a.txt": "theirs\n", "b.txt": "theirs\n"}, "edit a, b",
                       start=world.upstream("main~1"))
    world.provider.open(world.request("clash", clash, "Clash"))
    m = world.provider.mergeability(2)
    assert not m.clean and m.conflicts == ("a.txt", "b.txt")
    assert world.provider.get(2).mergeable is False
    with pytest.raises(MergeConflict) as info:
        world.provider.merge(2, MergeMethod.MERGE, BOB)
    assert info.value.conflicts == ("a.txt", "b.txt") and "Branch cannot be merged" in str(
        info.value)
    with pytest.raises(MergeConflict, match="Rebase failed"):
        world.provider.merge(2, MergeMethod.REBASE, BOB)
    assert world.upstream("clash") == clash  # a failed rebase changes nothing


@pytest.mark.parametrize(
    ("method", "project_method"),
    [(MergeMethod.MERGE, "merge"), (MergeMethod.SQUASH, "merge"), (MergeMethod.REBASE, "ff"),
     (MergeMethod.REBASE, "merge")],
)
def test_merge_moves_the_real_target(fake: FakeGitLab, make_remote: MakeRemote, tmp_path: Path,
                                     method: MergeMethod, project_method: str) -> None:
    world = _world(fake, make_remote, tmp_path, merge_method=project_method)
    world.push("feature", {"c.txt": "c\n"}, "add c", author=ALICE)
    commit = world.push("feature", {"d.txt": "d\n"}, "add d", start=None, author=ALICE)
    world.provider.open(world.request("feature", commit))
    world.push("main", {"README.md": "moved on\n"}, "main moves")  # not a fast-forward
    target = world.upstream("main")

    p = world.provider.merge(1, method, BOB)
    head = world.upstream("main")
    assert (p.status, p.merge_method) == (ProposalStatus.MERGED, method)
    assert p.merged_commit == head
    files = _git(f"--git-dir={world.bare}", "ls-tree", "--name-only", head).split()
    assert {"c.txt", "d.txt", "README.md"} <= set(files)
    parents = _git(f"--git-dir={world.bare}", "log", "-1", "--format=%P", head).split()
    if method is MergeMethod.MERGE:
        assert parents == [target, commit]
    elif method is MergeMethod.SQUASH:
        squash = parents[1]
        assert parents[0] == target
        assert _git(f"--git-dir={world.bare}", "log", "-1", "--format=%an%n%s", squash) \
            == f"{ALICE.name}\nAdd c\n"
    elif project_method == "ff":  # rebased onto the target, then fast-forwarded: linear
        log = _git(f"--git-dir={world.bare}", "log", "--format=%s", f"{target}..{head}")
        assert log.split("\n")[:2] == ["add d", "add c"] and len(parents) == 1
        assert world.upstream("feature") == head  # GitLab rewrote the source branch
    else:  # rebased, then a merge commit: semi-linear
        assert parents[0] == target and world.upstream(f"{parents[1]}~2") == target
    assert world.source.repository.resolve("refs/heads/main") == head
    with pytest.raises(InvalidState):
        world.provider.merge(1, method, BOB)
    world.db.dispose()


def test_merge_lease_refuses_a_branch_moved_after_reading(world: World,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    read = world.provider._mr
    moved: list[ObjectId] = []

    def racing_read(number: int, **params: Any) -> dict[str, Any]:
        mr = read(number, **params)
        if not moved:  # someone pushes right after Revisor read the MR
            moved.append(world.push("feature", {"c.txt": "c2\n"}, "change c", start=None))
        return mr

    monkeypatch.setattr(world.provider, "_mr", racing_read)
    target = world.upstream("main")
    with pytest.raises(Conflict, match="SHA does not match HEAD of source branch") as info:
        world.provider.merge(1, MergeMethod.MERGE, BOB)
    assert not isinstance(info.value, MergeConflict)
    assert world.upstream("main") == target


# -- failures -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "route", "error", "message"),
    [
        (401, "mrs.get", NotAllowed, "401 Unauthorized"),
        (403, "mrs.get", NotAllowed, "403 Forbidden"),
        (404, "mrs.get", ProposalNotFound, "404 Not found"),
        (409, "mrs.merge", Conflict, "SHA does not match"),
        (422, "mrs.update", InvalidInput, "Unprocessable"),
        (500, "mrs.get", RemoteUnavailable, "500 Internal Server Error"),
    ],
)
def test_failures_map_to_revisor_errors(
    world: World, status: int, route: str, error: type[Exception], message: str
) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    text = "SHA does not match HEAD of source branch: 123" if status == 409 else None
    world.fake.fail_next(status, route=route, message=text, times=5)
    actions = {
        "mrs.merge": lambda: world.provider.merge(1, MergeMethod.MERGE, BOB),
        "mrs.update": lambda: world.provider.update(1, title="New"),
        "mrs.get": lambda: world.provider.get(1),
    }
    with pytest.raises(error, match=message) as info:
        actions[route]()
    assert f"HTTP {status}" in str(info.value)
    if status == 500:  # python-gitlab retried it: the first try and max_retries more
        assert len(world.routes("mrs.get")) == 3


def test_a_missing_token_variable_is_a_config_error(world: World) -> None:
    world.env["GL_TOKEN"] = ""
    with pytest.raises(ConfigError, match="GL_TOKEN is empty"):
        world.provider.get(1)


def test_token_rotation_and_bearer_auth(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    assert {r.header("PRIVATE-TOKEN") for r in world.fake.requests} == {TOKEN}
    world.fake.revoke_token(TOKEN)
    with pytest.raises(NotAllowed, match="401 Unauthorized"):
        world.provider.get(1)
    world.fake.add_token("glpat-rotated", "revisor-bot")
    world.env["GL_TOKEN"] = "glpat-rotated"  # noqa: S105 - the store reads this same mapping
    assert world.provider.get(1).number == 1
    world.fake.requests.clear()
    assert world.provider_again(auth="oauth").get(1).number == 1
    assert {r.header("Authorization") for r in world.fake.requests} == {"Bearer glpat-rotated"}


def test_rate_limits_are_waited_out(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    world.fake.rate_limit_next(route="mrs.get", retry_after=1)
    started = time.monotonic()
    assert world.provider.get(1).number == 1
    assert time.monotonic() - started >= 1.0
    assert len(world.routes("mrs.get")) == 2  # the 429, then the retry

    world.fake.rate_limit_next(route="notes.create", retry_after=None, reset_in=2)
    started = time.monotonic()
    world.provider.comment(1, "after the reset", BOB)  # a 429 did nothing: safe to repeat
    assert time.monotonic() - started >= 0.9  # until RateLimit-Reset (whole seconds)
    assert len(world.provider.comments(1)) == 1

    world.fake.rate_limit_next(route="mrs.get", retry_after=600)
    with pytest.raises(RemoteUnavailable, match="rate limited") as info:
        world.provider.get(1)
    assert info.value.retry_after == 600


@pytest.mark.parametrize("fault", ["500-after", "500-before", "timeout-after"])
def test_open_never_duplicates_a_merge_request(world: World, fault: str) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    if fault == "500-after":
        world.fake.fail_next(500, route="mrs.create", after=True)
    elif fault == "500-before":
        world.fake.fail_next(502, route="mrs.create")
    else:
        world.fake.hang_next(route="mrs.create", after=True)
    p = world.provider.open(world.request("feature", commit, labels=("deps",)))
    mrs = world.fake.project("group/app").mrs
    assert len(mrs) == 1 and set(mrs[1].labels) == {"revisor", "deps"}
    assert set(p.labels) == {"revisor", "deps"}
    assert len(world.routes("mrs.create")) == (2 if fault == "500-before" else 1)


def test_open_gives_up_when_gitlab_stays_down(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.fake.fail_next(503, route="mrs.create", times=10)
    with pytest.raises(RemoteUnavailable, match="503 Service Unavailable"):
        world.provider_again(max_retries=1).open(world.request("feature", commit))
    assert world.fake.project("group/app").mrs == {}
    assert len(world.routes("mrs.create")) == 2


def test_merge_after_a_500_that_merged_is_not_repeated(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    world.fake.fail_next(500, route="mrs.merge", after=True)
    p = world.provider.merge(1, MergeMethod.MERGE, BOB)
    assert p.status is ProposalStatus.MERGED and p.merged_commit == world.upstream("main")
    assert len(world.routes("mrs.merge")) == 1


def test_timeouts_are_retried_then_reported(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    world.fake.hang_next(route="mrs.get")
    assert world.provider.get(1).number == 1  # retried after its timeout
    world.fake.hang_next(route="mrs.get")
    with pytest.raises(RemoteUnavailable, match=r"GitLab: cannot read merge request !1.*timed out"):
        world.provider_again(max_retries=0).get(1)


def test_the_token_never_shows(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.fake.fail_next(500, route="mrs.create", after=True)
    world.provider.open(world.request("feature", commit))
    world.fake.fail_next(500, route="mrs.get", message=f"upstream said {TOKEN}", times=3)
    with pytest.raises(RemoteUnavailable) as info:
        world.provider.get(1)
    assert TOKEN not in str(info.value) and "***" in str(info.value)
    world.fake.fail_next(403, route="notes.create", message=f"token {TOKEN} refused")
    with pytest.raises(NotAllowed) as refused:
        world.provider.comment(1, "hi", BOB)
    assert TOKEN not in str(refused.value)
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage()


# -- end to end -------------------------------------------------------------------------------
def test_a_transaction_opens_a_merge_request_that_merges(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revisor.bootstrap import Revisor
    from revisor.core.changes import Write
    from revisor.providers import factory
    from revisor.providers.gitlab import make_gitlab_provider

    def make(source: StoreSource, db: Database, audit: AuditLog, committer: Signature) -> Any:
        assert source.config.provider.type == "gitlab"
        return make_gitlab_provider(source, db, audit, committer)

    monkeypatch.setattr(factory, "make_provider", make)
    app = Revisor(world.config, env=world.env, identity=REVISOR).start()
    try:
        result = app.source("app").update(
            "main", "Add e\n\nA file called e.", ALICE, changes=[Write("e.txt", b"e\n")],
        )
        assert result.proposal is not None and result.proposal.provider == "gitlab"
        mr = world.fake.project("group/app").mrs[result.proposal.number]
        assert mr.source_branch == result.branch and mr.sha == result.commit
        assert mr.title == "Add e" and "revisor" in mr.labels
        before = world.upstream("main")
        merged = app.source("app").provider.merge(result.proposal.number, MergeMethod.MERGE, BOB)
        assert merged.status is ProposalStatus.MERGED
        head = world.upstream("main")
        assert head != before and world.upstream(f"{head}^2") == result.commit
        assert _git(f"--git-dir={world.bare}", "show", f"{head}:e.txt") == "e\n"
    finally:
        app.close()
