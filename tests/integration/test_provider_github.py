"""The GitHub provider against a protocol-faithful fake of GitHub's REST API.

Why these tests exist: the provider must open, read, list, change, merge and close pull requests
exactly as GitHub's documented API expects, and turn every failure GitHub (or the network) can
produce into Revisor's errors, with GitHub's message kept and the token never shown. The fake
(``tests/support/fake_github.py``) is a real HTTP server whose repositories are bare repositories
served over smart HTTP: the branches are pushed for real with the git CLI, mergeability is git's,
and merging moves the real target branch, which these tests read back with git.
"""

from __future__ import annotations

import copy
import dataclasses
import logging
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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
from revisor.providers.github import GitHubProvider
from revisor.store.store import Store, StoreSource
from revisor.vcs import ObjectId, Signature
from tests.gitutil import GitRepo
from tests.support.fake_github import FakeGitHub
from tests.support.fixtures import MakeRemote

TOKEN = "ghp_S3cr3tT0kenValue1234567890abcdefXYZ"  # noqa: S105 - the fake's test token
ALICE = Signature.now("Alice Liddell", "alice@example.com")
BOB = Signature.now("Bob", "bob@example.com")
REVISOR = Signature.now("Revisor", "revisor@example.com")
BASE_FILES = {
    "README.md": "hello\n",
    "a.txt": "".join(f"a line {i}\n" for i in range(20)),
    "b.txt": "".join(f"b line {i}\n" for i in range(20)),
}
FAST: dict[str, Any] = {
    "timeout": 1, "max_retries": 2, "backoff": 0.05, "max_wait": 5, "throttle": False,
    "poll_interval": 0.05,
}


def _git(*args: str, cwd: Path | None = None) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False,
                          timeout=60)
    if proc.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed: {proc.stderr}")
    return proc.stdout


@dataclass
class World:
    fake: FakeGitHub
    bare: Path
    url: str
    work: GitRepo
    env: dict[str, str]
    raw: dict[str, Any]
    config: Config
    db: Database
    source: StoreSource
    provider: GitHubProvider

    def provider_again(self, **settings: Any) -> GitHubProvider:
        """A new provider over a new store, as after a restart (optionally reconfigured)."""
        config = self.config
        if settings:
            raw = copy.deepcopy(self.raw)
            raw["sources"]["app"]["provider"].update(settings)
            config = Config.model_validate(raw)
        source = Store(config, env=self.env).source("app")
        return GitHubProvider(source, self.db, AuditLog(self.db), REVISOR)

    def push(self, branch: str, files: dict[str, str], message: str, *,
             start: str | None = "main", author: Signature | None = None) -> ObjectId:
        w = self.work
        if start is not None:
            w.checkout("-B", branch, f"origin/{start}" if start == "main" else start)
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
def fake() -> Iterator[FakeGitHub]:
    server = FakeGitHub()
    server.start()
    server.add_token(TOKEN, "revisor-bot")
    try:
        yield server
    finally:
        server.stop()


def _world(fake: FakeGitHub, make_remote: MakeRemote, tmp_path: Path, **settings: Any) -> World:
    bare, url = make_remote(BASE_FILES, name="octo/app.git")
    fake.add_repo("octo/app", bare)
    work = tmp_path / "work"
    _git("clone", "-q", str(bare), str(work))  # a quick local clone; it pushes over HTTP
    _git("-C", str(work), "remote", "set-url", "origin", url)
    provider_cfg = {"type": "github", "api_url": fake.url, "repository": "octo/app",
                    "token_env": "GH_TOKEN", **FAST, **settings}
    raw = {
        "data_dir": str(tmp_path / "data"),
        "sources": {"app": {"type": "git", "url": url, "branch": "main", "refresh": "1h",
                            "provider": provider_cfg}},
    }
    config = Config.model_validate(raw)
    env = {"GH_TOKEN": TOKEN}
    db = Database.for_data_dir(tmp_path / "data")
    db.migrate()
    source = Store(config, env=env).source("app")
    source.refresh()
    provider = GitHubProvider(source, db, AuditLog(db), REVISOR)
    return World(fake, bare, url, GitRepo(work), env, raw, config, db, source, provider)


@pytest.fixture
def world(fake: FakeGitHub, make_remote: MakeRemote, tmp_path: Path) -> Iterator[World]:
    w = _world(fake, make_remote, tmp_path)
    try:
        yield w
    finally:
        w.db.dispose()


# -- opening, reading, listing ----------------------------------------------------------------
def test_open_marks_and_finds_its_pull_requests(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    p = world.provider.open(world.request("feature", commit, labels=("deps",)))
    assert (p.provider, p.number, p.status) == ("github", 1, ProposalStatus.OPEN)
    assert p.url is not None and p.url.endswith("/octo/app/pull/1")
    assert (p.source_branch, p.source_commit, p.target_branch) == ("feature", commit, "main")
    assert (p.author_name, p.author_email) == (ALICE.name, ALICE.email)
    assert p.description == "Because we need c."
    assert set(p.labels) == {"revisor", "deps"}
    assert p.external_id is not None and p.external_id.startswith("PR_")
    pull = world.fake.repo("octo/app").pulls[1]
    assert pull.user == "revisor-bot" and "<!-- revisor:" in (pull.body or "")

    assert world.provider.open(world.request("feature", commit)).number == 1  # idempotent
    assert len(world.fake.repo("octo/app").pulls) == 1
    found = world.provider.find_by_branch("feature")
    assert found is not None
    # the second open may touch the pull request (updated_at), nothing else may differ
    assert dataclasses.replace(found, updated_at=p.updated_at) == p
    assert world.provider.find_by_branch("nope") is None

    full = world.provider.get(1)
    assert full.mergeable is True and full.title == "Add c"
    with pytest.raises(ProposalNotFound, match="Not Found"):
        world.provider.get(7)

    # Someone else's PR (no label) is not Revisor's; after a restart ours is found again.
    world.push("manual", {"m.txt": "m\n"}, "manual")
    world.fake.add_token("ghp_other", "octocat")
    _http_create_pull(world.fake, "ghp_other", "manual")
    again = world.provider_again()
    assert [q.number for q in again.list()] == [1]
    assert [q.number for q in again.list(ProposalStatus.OPEN)] == [1]
    assert again.list(ProposalStatus.MERGED) == []


def _http_create_pull(fake: FakeGitHub, token: str, branch: str) -> None:
    import httpx

    r = httpx.post(f"{fake.url}/repos/octo/app/pulls", headers={"Authorization": f"token {token}"},
                   json={"title": "by hand", "head": branch, "base": "main"})
    assert r.status_code == 201, r.text


def test_list_and_comments_follow_pagination(fake: FakeGitHub, make_remote: MakeRemote,
                                             tmp_path: Path) -> None:
    world = _world(fake, make_remote, tmp_path, per_page=2)
    numbers = []
    for i in range(5):
        commit = world.push(f"f{i}", {f"f{i}.txt": f"{i}\n"}, f"add f{i}")
        numbers.append(world.provider.open(world.request(f"f{i}", commit, f"Change {i}")).number)
    assert [p.number for p in world.provider.list()] == numbers[::-1]  # newest first
    pages = [r for r in fake.requests if r.route == "issues.list"]
    assert len(pages) == 3 and "page" in pages[-1].query

    for i in range(5):
        world.provider.comment(1, f"comment {i}", BOB if i % 2 else ALICE)
    comments = world.provider.comments(1)
    assert [c.text for c in comments] == [f"comment {i}" for i in range(5)]
    assert (comments[1].author_name, comments[1].author_email) == (BOB.name, BOB.email)
    assert comments[0].created_at.tzinfo is not None
    world.db.dispose()


def test_update_follows_the_branch_and_close_is_final(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    p = world.provider.update(1, title="Add c, better", description="Now with reasons.",
                              actor=BOB)
    assert (p.title, p.description) == ("Add c, better", "Now with reasons.")
    assert (p.author_name, p.author_email) == (ALICE.name, ALICE.email)  # the marker is kept
    moved = world.push("feature", {"c.txt": "c2\n"}, "change c", start=None)
    assert world.provider.update(1, source_commit=moved).source_commit == moved
    with pytest.raises(InvalidInput):
        world.provider.update(1, title="  ")

    closed = world.provider.close(1, BOB)
    assert closed.status is ProposalStatus.CLOSED
    assert world.provider.close(1, BOB) == closed
    with pytest.raises(InvalidState):
        world.provider.update(1, title="again")
    with pytest.raises(InvalidState):
        world.provider.merge(1, MergeMethod.MERGE, BOB)
    assert world.provider.list(ProposalStatus.CLOSED)[0].number == 1
    actions = [e.action for e in AuditLog(world.db).query(source="app")][::-1]
    assert actions == ["proposal.open", "proposal.update", "proposal.close"]


def test_checks_and_reviews_are_read(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    fake = world.fake
    fake.add_check_run("octo/app", commit, "build", "completed", "success")
    fake.add_check_run("octo/app", commit, "lint", "completed", "failure")
    fake.add_check_run("octo/app", commit, "lint", "completed", "success")  # a re-run wins
    fake.add_check_run("octo/app", commit, "e2e", "in_progress", None)
    fake.add_check_run("octo/app", commit, "docs", "completed", "skipped")
    fake.add_check_run("octo/app", "0" * 40, "elsewhere", "completed", "failure")
    fake.add_review("octo/app", 1, "bob", "APPROVED")
    fake.add_review("octo/app", 1, "carol", "CHANGES_REQUESTED")
    fake.add_review("octo/app", 1, "carol", "COMMENTED")  # a comment does not lift it
    fake.add_review("octo/app", 1, "dave", "COMMENTED")
    p = world.provider.get(1)
    assert {(c.name, c.state) for c in p.checks} == {
        ("build", CheckState.SUCCESS), ("lint", CheckState.SUCCESS),
        ("e2e", CheckState.PENDING), ("docs", CheckState.NEUTRAL),
    }
    assert {(r.reviewer, r.approved) for r in p.reviews} == {
        ("bob", True), ("carol", False), ("dave", False),
    }


# -- mergeability and merging ---------------------------------------------------------------
def test_mergeability_waits_for_github_and_lists_conflicts(world: World) -> None:
    clean = world.push("clean", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("clean", clean))
    world.fake.mergeable_pending_reads = 2  # GitHub is still computing
    m = world.provider.mergeability(1)
    assert m.clean and m.conflicts == () and m.target_commit == world.upstream("main")
    assert len(world.routes("pulls.get")) == 3

    world.push("main", {"a.txt": "ours\n", "b.txt": "ours\n"}, "edit a and b on main")
    clash = world.push("clash", {"a.txt": "theirs\n", "b.txt": "theirs\n"}, "edit a, b",
                       start=world.upstream("main~1"))
    world.provider.open(world.request("clash", clash, "Clash"))
    m = world.provider.mergeability(2)
    assert not m.clean and m.conflicts == ("a.txt", "b.txt")
    assert world.provider.get(2).mergeable is False
    with pytest.raises(MergeConflict) as info:
        world.provider.merge(2, MergeMethod.MERGE, BOB)
    assert info.value.conflicts == ("a.txt", "b.txt")
    assert "Pull Request is not mergeable" in str(info.value)


@pytest.mark.parametrize("method", list(MergeMethod))
def test_merge_moves_the_real_target(world: World, method: MergeMethod) -> None:
    world.push("feature", {"c.txt": "c\n"}, "add c", author=ALICE)
    commit = world.push("feature", {"d.txt": "d\n"}, "add d", start=None, author=ALICE)
    world.provider.open(world.request("feature", commit))
    before = world.upstream("main")
    world.push("main", {"README.md": "moved on\n"}, "main moves")  # not a fast-forward
    target = world.upstream("main")
    assert target != before

    p = world.provider.merge(1, method, BOB)
    head = world.upstream("main")
    assert (p.status, p.merged_commit, p.merge_method) == (ProposalStatus.MERGED, head, method)
    files = _git(f"--git-dir={world.bare}", "ls-tree", "--name-only", head).split()
    assert {"c.txt", "d.txt", "README.md"} <= set(files)
    parents = _git(f"--git-dir={world.bare}", "log", "-1", "--format=%P", head).split()
    if method is MergeMethod.MERGE:
        assert parents == [target, commit]
    elif method is MergeMethod.SQUASH:
        assert parents == [target]
        author = _git(f"--git-dir={world.bare}", "log", "-1", "--format=%an", head).strip()
        assert author == ALICE.name
    else:
        log = _git(f"--git-dir={world.bare}", "log", "--format=%s", f"{target}..{head}").split("\n")
        assert log[:2] == ["add d", "add c"] and parents != [target, commit]
    assert world.source.repository.resolve("refs/heads/main") == head  # the mirror caught up
    with pytest.raises(InvalidState):
        world.provider.merge(1, method, BOB)


def test_merge_lease_refuses_a_branch_moved_after_reading(world: World,
                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    read = world.provider._pull
    calls: list[ObjectId] = []

    def racing_read(number: int) -> Any:
        pr = read(number)
        if not calls:  # someone pushes right after Revisor read the PR
            calls.append(world.push("feature", {"c.txt": "c2\n"}, "change c", start=None))
        return pr

    monkeypatch.setattr(world.provider, "_pull", racing_read)
    target = world.upstream("main")
    with pytest.raises(Conflict, match="Head branch was modified") as info:
        world.provider.merge(1, MergeMethod.MERGE, BOB)
    assert not isinstance(info.value, MergeConflict)
    assert world.upstream("main") == target


# -- failures -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "route", "error", "message"),
    [
        (401, "pulls.get", NotAllowed, "Bad credentials"),
        (403, "pulls.get", NotAllowed, "Resource not accessible by personal access token"),
        (404, "pulls.get", ProposalNotFound, "Not Found"),
        (409, "pulls.merge", Conflict, "Head branch was modified"),
        (422, "pulls.create", InvalidInput, "Validation Failed"),
        (500, "pulls.get", RemoteUnavailable, "Server Error"),
    ],
)
def test_failures_map_to_revisor_errors(
    world: World, status: int, route: str, error: type[Exception], message: str
) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    if route != "pulls.create":
        world.provider.open(world.request("feature", commit))
    text = "Head branch was modified. Review and try the merge again." if status == 409 else None
    world.fake.fail_next(status, route=route, message=text, times=5)
    actions = {
        "pulls.merge": lambda: world.provider.merge(1, MergeMethod.MERGE, BOB),
        "pulls.create": lambda: world.provider.open(world.request("feature", commit)),
        "pulls.get": lambda: world.provider.get(1),
    }
    with pytest.raises(error, match=message) as info:
        actions[route]()
    assert f"HTTP {status}" in str(info.value)
    if status == 500:  # retried with backoff: the first try and max_retries more
        assert len(world.routes("pulls.get")) == 3


def test_a_missing_token_variable_is_a_config_error(world: World) -> None:
    world.env.pop("GH_TOKEN")
    with pytest.raises(ConfigError, match="GH_TOKEN is not set"):
        world.provider_again().get(1)


def test_token_rotation_needs_no_restart(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    world.fake.revoke_token(TOKEN)
    with pytest.raises(NotAllowed, match="Bad credentials"):
        world.provider.get(1)
    world.fake.add_token("ghp_rotated", "revisor-bot")
    world.env["GH_TOKEN"] = "ghp_rotated"  # noqa: S105 - the store reads this same mapping
    assert world.provider.get(1).number == 1


def test_rate_limits_are_waited_out(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    world.fake.rate_limit_next(route="pulls.get", retry_after=1)
    started = time.monotonic()
    assert world.provider.get(1).number == 1
    assert time.monotonic() - started >= 1.0
    assert len(world.routes("pulls.get")) == 2

    # A primary limit: no Retry-After, the quota is spent until X-RateLimit-Reset.
    world.fake.rate_limit_next(route="comments.create", retry_after=None, reset_in=1, status=403)
    started = time.monotonic()
    world.provider.comment(1, "after the reset", BOB)  # a POST: safe, nothing was done
    assert time.monotonic() - started >= 1.0
    assert len(world.provider.comments(1)) == 1

    world.fake.rate_limit_next(route="pulls.get", retry_after=600)
    with pytest.raises(RemoteUnavailable, match="rate") as info:
        world.provider.get(1)
    assert info.value.retry_after is not None and info.value.retry_after >= 600


@pytest.mark.parametrize("fault", ["500-after", "500-before", "timeout-after"])
def test_open_never_duplicates_a_pull_request(world: World, fault: str) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    if fault == "500-after":
        world.fake.fail_next(500, route="pulls.create", after=True)
    elif fault == "500-before":
        world.fake.fail_next(502, route="pulls.create")
    else:
        world.fake.hang_next(route="pulls.create", after=True)
    p = world.provider.open(world.request("feature", commit, labels=("deps",)))
    assert len(world.fake.repo("octo/app").pulls) == 1
    assert set(p.labels) == {"revisor", "deps"}
    assert set(world.fake.repo("octo/app").pulls[1].labels) == {"revisor", "deps"}
    creates = len(world.routes("pulls.create"))
    assert creates == (2 if fault == "500-before" else 1)


def test_open_gives_up_when_github_stays_down(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.fake.fail_next(503, route="pulls.create", times=10)
    with pytest.raises(RemoteUnavailable, match="Service Unavailable"):
        world.provider.open(world.request("feature", commit))
    assert world.fake.repo("octo/app").pulls == {}
    assert len(world.routes("pulls.create")) == 3


def test_timeouts_are_retried_then_reported(world: World) -> None:
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.provider.open(world.request("feature", commit))
    world.fake.hang_next(route="pulls.get")
    assert world.provider.get(1).number == 1  # a GET is retried after its timeout
    world.fake.hang_next(route="pulls.get")
    with pytest.raises(RemoteUnavailable, match=r"GitHub: cannot read pull request #1.*timed out"):
        world.provider_again(max_retries=0).get(1)


def test_the_token_never_shows(world: World, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    commit = world.push("feature", {"c.txt": "c\n"}, "add c")
    world.fake.fail_next(500, route="pulls.create", after=True)
    world.provider.open(world.request("feature", commit))
    world.fake.fail_next(500, route="pulls.get", message=f"upstream said {TOKEN}", times=3)
    with pytest.raises(RemoteUnavailable) as info:
        world.provider.get(1)
    assert TOKEN not in str(info.value) and "***" in str(info.value)
    world.fake.fail_next(403, route="comments.create", message=f"token {TOKEN} refused")
    with pytest.raises(NotAllowed) as refused:
        world.provider.comment(1, "hi", BOB)
    assert TOKEN not in str(refused.value)
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
    sent = [r.header("Authorization") for r in world.fake.requests]
    assert sent and all(h == f"Bearer {TOKEN}" for h in sent)  # as GitHub documents it


# -- end to end -------------------------------------------------------------------------------
def test_a_transaction_opens_a_pull_request_that_merges(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from revisor.bootstrap import Revisor
    from revisor.core.changes import Write
    from revisor.providers import factory
    from revisor.providers.github import make_github_provider

    def make(source: StoreSource, db: Database, audit: AuditLog, committer: Signature) -> Any:
        assert source.config.provider.type == "github"
        return make_github_provider(source, db, audit, committer)

    monkeypatch.setattr(factory, "make_provider", make)
    app = Revisor(world.config, env=world.env, identity=REVISOR).start()
    try:
        result = app.source("app").update(
            "main", "Add e\n\nA file called e.", ALICE, changes=[Write("e.txt", b"e\n")],
        )
        assert result.proposal is not None and result.proposal.provider == "github"
        pull = world.fake.repo("octo/app").pulls[result.proposal.number]
        assert pull.head == result.branch and pull.head_sha == result.commit
        assert pull.title == "Add e" and "revisor" in pull.labels
        before = world.upstream("main")
        merged = app.source("app").provider.merge(result.proposal.number, MergeMethod.MERGE, BOB)
        assert merged.status is ProposalStatus.MERGED
        head = world.upstream("main")
        assert head != before and world.upstream(f"{head}^2") == result.commit
        assert _git(f"--git-dir={world.bare}", "show", f"{head}:e.txt") == "e\n"
    finally:
        app.close()
