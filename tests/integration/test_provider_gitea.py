"""The Gitea provider against the Gitea fake: pull requests over REST v1, branches pushed for
real over smart HTTP, merges that move the base branch in a real bare repository, and every
failure the API can answer with.
"""

from __future__ import annotations

import copy
import email.utils
import logging
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
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
from revisor.providers.base import (
    CheckState,
    MergeConflict,
    MergeMethod,
    ProposalRequest,
    ProposalStatus,
    Provider,
)
from revisor.providers.gitea import GiteaProvider
from revisor.providers.http import HttpClient, HttpPolicy, TokenAuth
from revisor.store.mirror import PushUpdate
from revisor.store.store import Store, StoreSource
from revisor.store.transport import NetworkPolicy
from revisor.vcs import ObjectId, Signature
from tests.support.fake_gitea import FakeGitea

TOKEN = "gitea-token-s3cr3t"  # noqa: S105 - the fake's
REVISOR = Signature.now("Revisor", "revisor@example.com")
ALICE = Signature.now("Alice", "alice@example.com")
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
    fake: FakeGitea
    bare: Path
    tmp: Path
    config: dict[str, Any]
    env: dict[str, str]
    source: StoreSource
    db: Database
    sleeps: list[float] = field(default_factory=list)

    def provider(self, policy: HttpPolicy = FAST, **extra: Any) -> GiteaProvider:
        source = self.source
        if extra:
            cfg = copy.deepcopy(self.config)
            cfg["sources"]["app"]["provider"].update(extra)
            source = Store(Config.model_validate(cfg), env=self.env, policy=GIT_POLICY).source(
                "app")
        return GiteaProvider(source, self.db, AuditLog(self.db), REVISOR, policy=policy,
                             sleep=self.sleeps.append)

    def commit(self, files: dict[str, str], message: str, *, parent: str = "refs/heads/main",
               branch: str | None = None, author: Signature = ALICE) -> ObjectId:
        repo = self.source.repository
        base = self.source.resolve(parent, fresh=True) if parent.startswith("refs/") else parent
        b = repo.builder(ObjectId(base))
        for path, text in files.items():
            b.write(path, text.encode())
        commit = b.commit(message, author, REVISOR)
        assert commit is not None
        if branch is not None:
            ref = f"refs/heads/{branch}"
            self.source.push([PushUpdate(ref, commit, self.remote(ref))])
        return commit

    def remote(self, ref: str) -> ObjectId | None:
        out = subprocess.run(["git", f"--git-dir={self.bare}", "rev-parse", "--verify", "-q",
                              ref], capture_output=True, text=True, check=False).stdout.strip()
        return ObjectId(out) if out else None

    def request(self, branch: str, commit: ObjectId, title: str = "Add a",
                description: str = "Why: because.", labels: tuple[str, ...] = ()
                ) -> ProposalRequest:
        return ProposalRequest(title, description, ALICE, branch, commit, "main", labels)

    def api(self, method: str, path: str, token: str = TOKEN, **kwargs: Any) -> Any:
        """Call the fake as another Gitea client would (a reviewer, a CI system)."""
        response = httpx.request(method, f"{self.fake.api_url}/repos/org/app/{path}",
                                 headers={"Authorization": f"token {token}"}, **kwargs)
        assert response.status_code < 400, response.text
        return response.json() if response.content else None

    def open(self, branch: str = "feature", files: dict[str, str] | None = None,
             **kwargs: Any) -> tuple[GiteaProvider, Any]:
        provider = self.provider()
        commit = self.commit(files or {"a.txt": "x\n"}, "Add a\n\nWhy: because.", branch=branch)
        return provider, provider.open(self.request(branch, commit, **kwargs))


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
    root = tmp_path / "gitea"
    root.mkdir()
    fake = FakeGitea(root, token=TOKEN)
    fake.start()
    try:
        bare, url = fake.create_repo("org", "app", {"README.md": "hello\n", "a.txt": "a\n"})
        env = {"GITEA_TOKEN": TOKEN}
        config = {"data_dir": str(tmp_path / "data"), "sources": {"app": {
            "type": "git", "url": url, "branch": "main", "refresh": "1h",
            "credentials": {"username": "revisor-bot", "password_env": "GITEA_TOKEN"},
            "provider": {"type": "gitea", "api_url": fake.api_url, "repository": "org/app",
                         "token_env": "GITEA_TOKEN"},
        }}}
        source = Store(Config.model_validate(config), env=env, policy=GIT_POLICY).source("app")
        shutil.copy(migrated, tmp_path / "revisor.db")
        db = Database(f"sqlite:///{tmp_path / 'revisor.db'}")
        yield World(fake, bare, tmp_path, config, env, source, db)
    finally:
        fake.stop()


# -- opening and reading ---------------------------------------------------------------------------
def test_open_creates_a_marked_pull_request_with_labels(world: World) -> None:
    _, p = world.open(labels=("docs", "urgent"))
    pr = world.fake.repos[("org", "app")].pulls[p.number]
    assert (p.provider, p.status, p.title, p.description) == (
        "gitea", ProposalStatus.OPEN, "Add a", "Why: because.")
    assert (p.author_name, p.author_email) == ("Alice", "alice@example.com")  # not the bot
    assert (p.source_branch, p.target_branch, p.labels) == ("feature", "main", ("docs", "urgent"))
    assert p.source_commit == world.remote("refs/heads/feature")
    assert p.url == f"{world.fake.url}/org/app/pulls/{p.number}" and p.mergeable is True
    assert pr.poster.login == "revisor-bot" and "<!-- revisor:proposal" in pr.body
    create = world.fake.calls("repoCreatePullRequest")[0].json()
    assert (create["head"], create["base"], len(create["labels"])) == ("feature", "main", 2)
    # labels are created once, then reused
    world.open("feature2", labels=("docs",))
    assert len(world.fake.calls("issueCreateLabel")) == 2


def test_open_again_returns_the_open_pull_request_and_follows_the_branch(world: World) -> None:
    provider, p = world.open()
    assert provider.open(world.request("feature", p.source_commit)).number == p.number
    moved = world.commit({"a.txt": "y\n"}, "More", parent=p.source_commit)
    again = provider.open(world.request("feature", moved))
    assert again.number == p.number and again.source_commit == moved
    assert world.remote("refs/heads/feature") == moved
    assert len(world.fake.repos[("org", "app")].pulls) == 1


def test_list_and_find_keep_only_revisors_pull_requests_after_a_restart(world: World) -> None:
    provider, mine = world.open()
    world.commit({"c.txt": "c\n"}, "Human", branch="human")
    world.api("POST", "pulls", json={"title": "By hand", "head": "human", "base": "main"})
    _, other = world.open("feature2")
    provider.close(other.number, ALICE)

    restarted = world.provider()
    assert [p.number for p in restarted.list()] == [other.number, mine.number]
    assert [p.number for p in restarted.list(ProposalStatus.OPEN)] == [mine.number]
    assert [p.number for p in restarted.list(ProposalStatus.CLOSED)] == [other.number]
    assert restarted.list(ProposalStatus.MERGED) == []
    found = restarted.find_by_branch("feature")
    assert found is not None and found.number == mine.number
    assert restarted.find_by_branch("human") is None
    assert restarted.find_by_branch("nope") is None


def test_pagination_follows_link_headers(world: World) -> None:
    provider = world.provider()
    for i in range(4):
        commit = world.commit({f"f{i}.txt": "x\n"}, f"Change {i}", branch=f"b{i}")
        provider.open(world.request(f"b{i}", commit, title=f"Change {i}"))
    calls = len(world.fake.calls("repoListPullRequests"))
    assert len(provider.list()) == 4
    # two pages of 3 (the fake's maximum page size is 50; ask for 3 to see Link at work)
    items = list(provider.http.paginate("repos/org/app/pulls", {"state": "all"}, per_page=3))
    assert len(items) == 4
    pages = world.fake.calls("repoListPullRequests")[calls + 1:]
    assert [p.arg("page") for p in pages] == ["1", "2"]


def test_update_edits_text_and_moves_the_branch_with_a_lease(world: World) -> None:
    provider, p = world.open()
    q = provider.update(p.number, title="New title", description="New words.", actor=ALICE)
    assert (q.title, q.description, q.author_name) == ("New title", "New words.", "Alice")
    newer = world.commit({"a.txt": "z\n"}, "Next", parent=p.source_commit)
    r = provider.update(p.number, source_commit=newer)
    assert r.source_commit == newer == world.remote("refs/heads/feature")
    # the branch moved by someone else meanwhile: the lease refuses
    theirs = world.commit({"a.txt": "theirs\n"}, "Theirs", parent=newer, branch="feature")
    stale = world.commit({"a.txt": "stale\n"}, "Stale", parent=p.source_commit)
    provider_with_stale_view = world.provider()
    original = provider_with_stale_view._raw

    def stale_read(number: int) -> dict[str, Any]:
        pr = original(number)
        pr["head"]["sha"] = newer
        return pr

    provider_with_stale_view._raw = stale_read  # type: ignore[method-assign]
    with pytest.raises(Conflict):
        provider_with_stale_view.update(p.number, source_commit=stale)
    assert world.remote("refs/heads/feature") == theirs
    with pytest.raises(InvalidInput):
        provider.update(p.number, title=" ")


def test_checks_and_reviews(world: World) -> None:
    provider, p = world.open()
    world.fake.add_user("ci", "ci-token", "CI", "ci@example.com")
    world.fake.add_user("alice", "alice-token", "Alice", "alice@example.com")
    world.api("POST", f"statuses/{p.source_commit}", "ci-token",
              json={"state": "pending", "context": "build", "target_url": "http://ci/1"})
    world.api("POST", f"statuses/{p.source_commit}", "ci-token",
              json={"state": "success", "context": "build", "target_url": "http://ci/1"})
    world.api("POST", f"statuses/{p.source_commit}", "ci-token",
              json={"state": "failure", "context": "lint"})
    world.api("POST", f"pulls/{p.number}/reviews", "alice-token",
              json={"event": "REQUEST_CHANGES", "body": "no"})
    world.api("POST", f"pulls/{p.number}/reviews", "alice-token",
              json={"event": "APPROVED", "body": "ok now"})
    got = provider.get(p.number)
    assert [(c.name, c.state, c.url) for c in got.checks] == [
        ("build", CheckState.SUCCESS, "http://ci/1"), ("lint", CheckState.FAILURE, None)]
    assert [(r.reviewer, r.approved) for r in got.reviews] == [("alice", True)]


def test_comments_keep_their_real_author(world: World) -> None:
    provider, p = world.open()
    provider.comment(p.number, "First.", ALICE)
    provider.comment(p.number, "Second.", REVISOR)
    comments = provider.comments(p.number)
    assert [(c.text, c.author_name) for c in comments] == [("First.", "Alice"),
                                                           ("Second.", "Revisor")]
    with pytest.raises(InvalidInput):
        provider.comment(p.number, "  ", ALICE)
    with pytest.raises(ProposalNotFound):
        provider.comments(999)


# -- merging ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", list(MergeMethod))
def test_merge_moves_main_with_each_method_and_a_head_lease(world: World,
                                                            method: MergeMethod) -> None:
    provider, p = world.open()
    moved = world.commit({"other.txt": "o\n"}, "Upstream", branch="main")
    assert provider.mergeability(p.number).clean
    merged = provider.merge(p.number, method, ALICE)
    head = world.remote("refs/heads/main")
    assert merged.status is ProposalStatus.MERGED and merged.merged_commit == head
    assert merged.merge_method is method
    body = world.fake.calls("repoMergePullRequest")[0].json()
    assert body == {"Do": method.value, "head_commit_id": p.source_commit}
    assert _git(world.bare, "show", "refs/heads/main:a.txt") == "x"
    parents = _git(world.bare, "rev-list", "--parents", "-n1", str(head)).split()[1:]
    if method is MergeMethod.MERGE:
        assert parents == [moved, p.source_commit]
    else:
        assert parents == [moved]
    assert world.source.resolve("refs/heads/main") == head  # the mirror followed
    with pytest.raises(InvalidState):
        provider.merge(p.number, method, ALICE)
    with pytest.raises(InvalidState):
        provider.close(p.number, ALICE)


def test_a_conflict_is_a_merge_conflict_with_the_paths(world: World) -> None:
    provider, p = world.open(files={"a.txt": "ours\n"})
    moved = world.commit({"a.txt": "theirs\n"}, "Upstream", branch="main")
    verdict = provider.mergeability(p.number)
    assert (verdict.clean, verdict.conflicts, verdict.target_commit) == (False, ("a.txt",), moved)
    with pytest.raises(MergeConflict, match="Please try again later") as caught:
        provider.merge(p.number, MergeMethod.MERGE, ALICE)
    assert caught.value.conflicts == ("a.txt",)
    assert world.remote("refs/heads/main") == moved


def test_a_branch_moved_after_it_was_read_is_not_merged_unseen(world: World) -> None:
    provider, p = world.open()
    original = provider._raw
    pushed: list[ObjectId] = []

    def racing(number: int) -> dict[str, Any]:
        pr = original(number)
        if not pushed:  # someone pushes right after Revisor read the head
            pushed.append(world.commit({"a.txt": "late\n"}, "Late", parent=p.source_commit,
                                       branch="feature"))
        return pr

    provider._raw = racing  # type: ignore[method-assign]
    main = world.remote("refs/heads/main")
    with pytest.raises(Conflict, match="head out of date") as caught:
        provider.merge(p.number, MergeMethod.MERGE, ALICE)
    assert not isinstance(caught.value, MergeConflict)
    assert world.remote("refs/heads/main") == main


def test_close_then_merge_is_refused(world: World) -> None:
    provider, p = world.open()
    assert provider.close(p.number, ALICE).status is ProposalStatus.CLOSED
    assert provider.close(p.number, ALICE).status is ProposalStatus.CLOSED
    with pytest.raises(InvalidState):
        provider.merge(p.number, MergeMethod.MERGE, ALICE)
    with pytest.raises(InvalidState):
        provider.update(p.number, title="x")


# -- failures --------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("status", "error"),
    [(401, NotAllowed), (403, NotAllowed), (404, ProposalNotFound), (409, Conflict),
     (422, InvalidInput), (500, RemoteUnavailable)],
)
def test_failures_map_to_revisor_errors_keeping_giteas_message(
    world: World, status: int, error: type[Exception]
) -> None:
    world.fake.fail_next("repoGetPullRequest", status, message=f"gitea says {status}", n=5)
    with pytest.raises(error, match=f"gitea says {status}"):
        world.provider().get(1)
    assert issubclass(ProposalNotFound, NotFound)


def test_a_wrong_token_is_not_allowed_and_a_missing_one_a_config_error(world: World) -> None:
    world.env["GITEA_TOKEN"] = "wrong"  # noqa: S105 - the store reads this same mapping
    with pytest.raises(NotAllowed, match="invalid username, password or token"):
        world.provider().list()
    world.env.pop("GITEA_TOKEN")
    with pytest.raises(ConfigError, match=r"provider\.token_env"):
        world.provider().list()


def test_429_is_waited_out_as_retry_after_says(world: World) -> None:
    world.fake.fail_next("repoListPullRequests", 429, retry_after=5)
    assert world.provider().list() == []
    assert world.sleeps == [5.0]
    world.fake.fail_next("repoListPullRequests", 429, retry_after=1)
    started = time.monotonic()
    real = GiteaProvider(world.source, world.db, AuditLog(world.db), REVISOR, policy=FAST)
    assert real.list() == []
    assert time.monotonic() - started >= 1.0
    world.fake.fail_next("repoListPullRequests", 429, retry_after=600)
    with pytest.raises(RemoteUnavailable) as caught:
        world.provider().list()
    assert caught.value.retry_after == 600


def test_5xx_on_reads_is_retried(world: World) -> None:
    world.fake.fail_next("repoListPullRequests", 503, n=2)
    assert world.provider().list() == []
    assert len(world.sleeps) == 2


def test_500_after_the_pull_request_was_created_makes_exactly_one(world: World) -> None:
    world.fake.fail_next("repoCreatePullRequest", 500, after_action=True)
    _, p = world.open()
    assert list(world.fake.repos[("org", "app")].pulls) == [p.number]
    assert len(world.fake.calls("repoCreatePullRequest")) == 1


def test_a_hung_create_is_looked_up_and_then_made_once(world: World) -> None:
    world.fake.hang_next("repoCreatePullRequest")
    provider = world.provider(HttpPolicy(read_timeout=0.3, attempts=3, backoff_base=0.01))
    commit = world.commit({"a.txt": "x\n"}, "Add a", branch="feature")
    p = provider.open(world.request("feature", commit))
    world.fake.release()
    assert list(world.fake.repos[("org", "app")].pulls) == [p.number]
    assert [c.fault for c in world.fake.calls("repoCreatePullRequest")] == ["hang", None]


def test_a_5xx_before_creating_is_tried_again(world: World) -> None:
    world.fake.fail_next("repoCreatePullRequest", 502)
    _, p = world.open()
    assert len(world.fake.calls("repoCreatePullRequest")) == 2
    assert list(world.fake.repos[("org", "app")].pulls) == [p.number]


def test_comment_and_merge_answered_500_after_acting_happen_once(world: World) -> None:
    provider, p = world.open()
    world.fake.fail_next("issueCreateComment", 500, after_action=True)
    provider.comment(p.number, "once", ALICE)
    assert [c.text for c in provider.comments(p.number)] == ["once"]
    world.fake.fail_next("repoMergePullRequest", 500, after_action=True)
    assert provider.merge(p.number, MergeMethod.SQUASH, ALICE).status is ProposalStatus.MERGED
    assert len(world.fake.calls("repoMergePullRequest")) == 1


def test_the_token_never_appears_in_logs_or_errors(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    provider, p = world.open()
    errors = []
    for status, times in ((401, 1), (500, 3), (422, 1), (409, 1)):
        world.fake.fail_next("repoGetPullRequest", status, n=times,
                             message=f"bad token {TOKEN}!")
        with pytest.raises(Exception) as caught:
            provider.get(p.number)
        errors.append(f"{caught.value} {getattr(caught.value, 'hint', '')}")
    provider.merge(p.number, MergeMethod.MERGE, ALICE)
    text = "\n".join([*errors, *(r.getMessage() for r in caplog.records), caplog.text])
    assert "bad token ***!" in text and TOKEN not in text
    sent = world.fake.calls("repoGetPullRequest")[0].headers["Authorization"]
    assert sent == f"token {TOKEN}"  # it was sent, only where it belongs


# -- configuration and the whole path ------------------------------------------------------------
def test_configuration_is_validated_with_the_field_named(world: World) -> None:
    with pytest.raises(ConfigError, match=r"sources\.app\.provider\.repo\b"):
        world.provider(repo="x")
    with pytest.raises(ConfigError, match="owner/repo"):
        world.provider(repository="just-one")


def test_end_to_end_a_transaction_opens_a_pull_request_and_merging_moves_main(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def make_provider(source: StoreSource, db: Database, audit: AuditLog,
                      committer: Signature) -> Provider:
        assert source.config.provider.type == "gitea"
        return GiteaProvider(source, db, audit, committer, policy=FAST)

    monkeypatch.setattr(factory, "make_provider", make_provider)
    config = Config.model_validate({**world.config, "data_dir": str(world.tmp / "e2e")})
    with Revisor(config, env=world.env, identity=REVISOR, policy=GIT_POLICY).start() as app:
        source = app.source("app")
        result = source.update(None, "Add the schema\n\nFor the app.", ALICE,
                               changes=[Write("schema.json", b"{}\n")])
        assert result.proposal is not None and result.proposal.provider == "gitea"
        proposal = source.provider.get(result.proposal.number)
        assert proposal.source_commit == result.commit
        assert (proposal.title, proposal.description, proposal.author_email) == (
            "Add the schema", "For the app.", "alice@example.com")
        assert source.provider.find_by_branch(str(result.branch)) is not None
        merged = source.provider.merge(proposal.number, MergeMethod.REBASE, ALICE)
        assert merged.status is ProposalStatus.MERGED
    assert _git(world.bare, "show", "refs/heads/main:schema.json") == "{}"


# -- the shared HTTP client, on an in-memory transport -------------------------------------------
def _client(handler: Any, sleeps: list[float]) -> HttpClient:
    return HttpClient("https://scm.example/api", service="SCM", policy=FAST,
                      auth=lambda: TokenAuth(TOKEN), transport=httpx.MockTransport(handler),
                      sleep=sleeps.append)


def test_http_client_rate_limits_by_date_and_by_reset_header() -> None:
    sleeps: list[float] = []
    answers = iter([
        httpx.Response(429, headers={"Retry-After": email.utils.formatdate(
            time.time() + 30, usegmt=True)}),
        httpx.Response(403, headers={"X-RateLimit-Remaining": "0",
                                     "X-RateLimit-Reset": str(int(time.time()) + 20)},
                       json={"message": "API rate limit exceeded"}),
        httpx.Response(200, json=[]),
    ])
    assert _client(lambda request: next(answers), sleeps).get_json("x") == []
    assert len(sleeps) == 2 and 25 <= sleeps[0] <= 30 and 15 <= sleeps[1] <= 20


def test_http_client_never_repeats_a_post_that_may_have_been_applied() -> None:
    sleeps: list[float] = []
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        assert request.headers["Authorization"] == f"token {TOKEN}"
        return httpx.Response(502, json={"message": "bad gateway"})

    client = _client(handler, sleeps)
    with pytest.raises(RemoteUnavailable, match="502 bad gateway"):
        client.send_json("POST", "pulls", {})
    assert seen == ["POST"]
    with pytest.raises(RemoteUnavailable):
        client.get_json("pulls")
    assert seen == ["POST", "GET", "GET", "GET"] and len(sleeps) == 2

    def refused(request: httpx.Request) -> httpx.Response:
        seen.append("connect")
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(RemoteUnavailable, match="cannot connect"):
        _client(refused, sleeps).send_json("POST", "pulls", {})
    assert seen.count("connect") == 3  # never sent: safe to send again, even a POST


def test_http_client_does_not_follow_links_to_other_hosts() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[1], headers={
            "Link": '<https://evil.example/steal?page=2>; rel="next"'})

    with pytest.raises(RemoteUnavailable, match="another host"):
        list(_client(handler, []).paginate("items", per_page=1))
