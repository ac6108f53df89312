"""Faults end to end: remotes that refuse, hang or drop mid-pack; a GitHub that errs after acting,
rate-limits or times out; each with the promised outcome, checked from outside.

The world is one Revisor over one source whose upstream is a real bare repository served over
smart HTTP on loopback (``tests/support/githttp.py``, which injects the network faults) and whose
proposals go to a GitHub fake over the same repository (``tests/support/faulty_scm.py``: the
shared fake plus a timeline of its answers). Every test drives the public entry points
(``Source.update``, ``Source.view``, ``StoreSource.refresh``, a restart) and then reads the
outcome without the code under test: the upstream's refs with ``git ls-remote`` / ``for-each-ref``,
the pull requests in the fake, the journal and the audit rows, ``git fsck``.

The promises (DESIGN principles 3, 5, 8; issue 10 §4): a transient fault of a fetch, of an SCM
call or of a backup push is **retried** and the result is exactly what a fault-free run makes; a
lasting fault — and any failed push of a transaction, which is not retried inside it — is
**reported** (a typed error, a journal entry saying what failed) with **nothing half-made** left:
a pushed branch whose proposal could not be opened is **compensated** (deleted, the journal says
``compensated``) or, when the SCM is only unreachable, kept and **queued** so the proposal is
opened later — **never lost and never duplicated** (exactly one pull request per branch, whatever
failed after GitHub acted; a backup whose answer was lost is not pushed again). The backup remote
that goes away uses engineer B's backup service and its test helpers.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from revisor.bootstrap import Revisor
from revisor.config import Config
from revisor.core.changes import Write
from revisor.db.models import TxState
from revisor.errors import RevisorError
from tests.integration.test_candidates_support import ALICE, BASE_FILES
from tests.integration.test_transactions_support import (
    FAST,
    REVISOR,
    Upstream,
    World,
)
from tests.support.faulty_scm import TimelineGitHub
from tests.support.githttp import GitHttpServer, HangingTCPServer

pytestmark = pytest.mark.timeout(300)

TOKEN = "ghp_FaultTestToken0123456789abcdefXYZ"  # noqa: S105 - the fake's test token
#: Short provider limits: a hung request is given up after 1 s, two retries.
GH_FAST: dict[str, Any] = {
    "timeout": 1, "max_retries": 2, "backoff": 0.05, "max_wait": 5, "throttle": False,
    "poll_interval": 0.05,
}


@dataclass
class GhWorld:
    """A World (refs, journal, audit helpers) whose proposals go to ``fake``."""

    w: World
    fake: TimelineGitHub
    http: GitHttpServer
    env: dict[str, str]

    def restart(self) -> Revisor:
        rv = Revisor(self.w.config, policy=FAST, identity=REVISOR, env=self.env).start()
        self.w.others.append(rv)
        return rv

    def pulls(self) -> dict[int, Any]:
        return dict(self.fake.repo("octo/app").pulls)

    def pulls_of(self, branch: str) -> list[Any]:
        return [p for p in self.pulls().values() if p.head == branch]

    def creates(self) -> int:
        return len(self.fake.answered("pulls.create"))


@pytest.fixture
def fake() -> Iterator[TimelineGitHub]:
    server = TimelineGitHub()
    server.start()
    server.add_token(TOKEN, "revisor-bot")
    try:
        yield server
    finally:
        server.stop()


def _gh_world(http_git: GitHttpServer, root: Path, tmp: Path, fake: TimelineGitHub,
              **source: Any) -> GhWorld:
    up = Upstream.init(root / "octo" / "app.git", BASE_FILES)
    fake.add_repo("octo/app", up.path)
    url = http_git.url_for("octo/app.git")
    cfg: dict[str, Any] = {
        "type": "git", "url": url, "branch": "main", "refresh": "1h",
        "provider": {"type": "github", "api_url": fake.url, "repository": "octo/app",
                     "token_env": "GH_TOKEN", **GH_FAST},
        **source,
    }
    env = {"GH_TOKEN": TOKEN}
    config = Config.model_validate({"data_dir": str(tmp / "data"), "sources": {"proj": cfg}})
    rv = Revisor(config, policy=FAST, identity=REVISOR, env=env).start()
    w = World("http", tmp, up, url, cfg, rv)
    w.source.view()  # the mirror exists
    return GhWorld(w, fake, http_git, env)


@pytest.fixture
def gh(http_git: GitHttpServer, http_git_root: Path, tmp_path: Path,
       fake: TimelineGitHub) -> Iterator[GhWorld]:
    world = _gh_world(http_git, http_git_root, tmp_path, fake)
    try:
        yield world
    finally:
        http_git.clear_faults()
        http_git.release()
        fake.release()
        world.w.close()


def _update(gh: GhWorld, name: str, key: str | None = None) -> Any:
    return gh.w.source.update("main", f"Change {name}", ALICE,
                              changes=[Write(f"{name}.txt", f"{name}\n".encode())],
                              idempotency_key=key)


def _assert_one_proposal(gh: GhWorld, result: Any) -> None:
    """Exactly one open PR for the branch, at the commit; the branch on the remote; journal done."""
    assert result.branch is not None and result.commit is not None
    assert gh.w.remote_refs()[f"refs/heads/{result.branch}"] == result.commit
    pulls = gh.pulls_of(result.branch)
    assert len(pulls) == 1, pulls
    assert pulls[0].state == "open"
    entry = gh.w.rv.journal.get(result.id)
    assert entry.state is TxState.DONE
    if result.proposal is not None:
        assert result.proposal.number == pulls[0].number


def _assert_nothing_left(gh: GhWorld, before: dict[str, str]) -> None:
    assert gh.w.remote_refs() == before
    assert gh.pulls() == {}
    assert gh.w.tmp_leftovers() == []
    assert all(e.finished for e in gh.w.journal_rows())
    gh.w.upstream.fsck()


# -- the SCM: errors after acting, rate limits, timeouts -------------------------------------------
@pytest.mark.parametrize("fault", ["500-after-create", "timeout-after-create", "502-before"])
def test_a_create_that_failed_after_or_before_acting_is_never_duplicated(
    gh: GhWorld, fault: str
) -> None:
    if fault == "500-after-create":
        gh.fake.fail_next(500, route="pulls.create", after=True)
    elif fault == "timeout-after-create":
        gh.fake.hang_next(route="pulls.create", after=True)
    else:
        gh.fake.fail_next(502, route="pulls.create")
    result = _update(gh, "one")
    _assert_one_proposal(gh, result)
    assert result.proposal is not None and not result.proposal_queued
    # retried only when GitHub had not acted; after a failed create, a look-up came first
    assert gh.creates() == (2 if fault == "502-before" else 1)
    routes = [a.route for a in gh.fake.timeline]
    first_create = routes.index("pulls.create")
    assert "pulls.list" in routes[first_create + 1:]


def test_a_rate_limited_create_waits_for_retry_after_then_succeeds(gh: GhWorld) -> None:
    gh.fake.rate_limit_next(route="pulls.create", retry_after=1)
    result = _update(gh, "limited")
    _assert_one_proposal(gh, result)
    creates = gh.fake.answered("pulls.create")
    assert [a.status for a in creates] == [429, 201]
    # Retry-After is a promise about correctness, not speed: the retry did not come earlier
    assert creates[1].at - creates[0].at >= 0.9


def test_a_github_that_stays_down_queues_the_proposal_and_a_restart_opens_it_once(
    gh: GhWorld,
) -> None:
    gh.fake.fail_next(503, route="pulls.create", times=1_000)
    result = _update(gh, "queued", key="queued-key")
    # reported, nothing lost: the branch stays, the journal says queued
    assert result.proposal is None and result.proposal_queued
    assert gh.w.remote_refs()[f"refs/heads/{result.branch}"] == result.commit
    assert gh.w.rv.journal.get(result.id).state is TxState.QUEUED
    assert gh.pulls() == {}
    # still down: a restart leaves it queued, and opens nothing
    gh.restart()
    assert gh.w.rv.journal.get(result.id).state is TxState.QUEUED
    assert gh.pulls() == {}
    # back up: the next start opens it, exactly once, and a second start changes nothing
    gh.fake.clear_faults()
    gh.restart()
    gh.restart()
    _assert_one_proposal(gh, result)
    again = _update(gh, "queued", key="queued-key")
    assert again.replayed and again.branch == result.branch
    assert len(gh.pulls_of(result.branch)) == 1


def test_a_github_that_hangs_on_every_create_is_reported_and_not_duplicated(
    gh: GhWorld,
) -> None:
    gh.fake.hang_next(route="pulls.create", times=1_000)
    result = _update(gh, "hung")
    assert result.proposal is None and result.proposal_queued
    assert gh.w.remote_refs()[f"refs/heads/{result.branch}"] == result.commit
    gh.fake.release()
    gh.fake.clear_faults()
    gh.restart()
    _assert_one_proposal(gh, result)


def test_a_pr_created_whose_labels_fail_is_found_again_not_duplicated(gh: GhWorld) -> None:
    """GitHub created the PR, then every attempt to label it (Revisor's marker) failed: the
    proposal is reported as queued or opened, and after a restart there is exactly one PR."""
    gh.fake.fail_next(503, route="labels.add", times=1_000)
    try:
        result = _update(gh, "unlabelled")
    except RevisorError as exc:  # reported: then nothing may be left behind
        pytest.fail(f"the transaction failed outright after GitHub created the PR: {exc!r}")
    gh.fake.clear_faults()
    gh.restart()
    gh.restart()
    assert len(gh.pulls_of(result.branch)) == 1, gh.pulls()
    _assert_one_proposal(gh, result)


def test_a_create_github_refuses_is_compensated(gh: GhWorld) -> None:
    """A refusal (422: not a transient fault) after the push: the branch is deleted again, no PR,
    and the journal and the audit log say it was compensated."""
    before = gh.w.remote_refs()
    gh.fake.fail_next(422, route="pulls.create", message="Validation Failed", times=1_000)
    with pytest.raises(RevisorError):
        _update(gh, "refused")
    _assert_nothing_left(gh, before)
    (entry,) = gh.w.journal_rows()
    assert entry.state is TxState.COMPENSATED
    assert entry.error
    assert entry.branch is not None and entry.branch not in gh.w.upstream.branches()


# -- the git remote: refusing, hanging, dropping mid-pack --------------------------------------
def test_a_push_the_remote_refuses_is_reported_and_leaves_nothing(
    gh: GhWorld, http_git: GitHttpServer
) -> None:
    before = gh.w.remote_refs()
    http_git.fail_next(1_000, status=403, service="git-receive-pack")
    with pytest.raises(RevisorError):
        _update(gh, "refused-push")
    http_git.clear_faults()
    _assert_nothing_left(gh, before)
    (entry,) = gh.w.journal_rows()
    assert entry.state is TxState.FAILED and entry.error


def test_a_push_that_hangs_is_reported_and_a_retry_with_the_key_lands_once(
    gh: GhWorld, http_git: GitHttpServer
) -> None:
    """A push is not retried inside the transaction (the transport gives up at its stall limit):
    the failure is reported, nothing is left, and the caller's retry WITH THE SAME KEY (the
    failed transaction left nothing, so its key is free) makes exactly one branch and one pull
    request; the key then replays that result."""
    before = gh.w.remote_refs()
    http_git.hang_next(1, service="git-receive-pack")
    with pytest.raises(RevisorError):
        _update(gh, "hung-push", key="hung-key")
    http_git.release()
    _assert_nothing_left(gh, before)
    (failed,) = gh.w.journal_rows()
    assert failed.state is TxState.FAILED and failed.error
    result = _update(gh, "hung-push", key="hung-key")
    assert not result.replayed
    _assert_one_proposal(gh, result)
    assert len(gh.pulls()) == 1
    keyed = [e for e in gh.w.journal_rows() if e.idempotency_key == "hung-key"]
    assert [e.id for e in keyed] == [result.id]
    again = _update(gh, "hung-push", key="hung-key")
    assert again.replayed and (again.id, again.commit) == (result.id, result.commit)
    assert len(gh.pulls()) == 1 and gh.creates() == 1


def test_a_push_that_always_hangs_is_reported_and_leaves_nothing(
    gh: GhWorld, http_git: GitHttpServer
) -> None:
    before = gh.w.remote_refs()
    http_git.hang_next(1_000, service="git-receive-pack")
    with pytest.raises(RevisorError):
        _update(gh, "always-hung")
    http_git.clear_faults()
    http_git.release()
    gh.restart()  # whatever the dead attempts left is recovery's
    _assert_nothing_left(gh, before)


def test_a_push_applied_but_answered_with_a_dropped_connection_is_not_duplicated(
    gh: GhWorld, http_git: GitHttpServer
) -> None:
    http_git.drop_response_next(1, service="git-receive-pack")
    result = _update(gh, "dropped-answer")
    _assert_one_proposal(gh, result)


def test_a_fetch_dropped_mid_pack_is_fetched_again(
    gh: GhWorld, http_git: GitHttpServer
) -> None:
    moved = gh.w.upstream.commit("refs/heads/main", {"big.bin": bytes(range(256)) * 4096,
                                                     "new.txt": "new\n"})
    http_git.drop_mid_pack_next(1)
    gh.w.source.stored.refresh()
    assert gh.w.mirror_refs("refs/heads/")["refs/heads/main"] == moved
    assert gh.w.source.view("main").read("new.txt") == b"new\n"
    Upstream(gh.w.mirror_path or gh.w.upstream.path).fsck()
    fetches = [r for r in http_git.requests if r.endpoint == "git-upload-pack"]
    assert len(fetches) >= 2


def test_a_remote_that_refuses_every_fetch_is_reported_and_the_mirror_kept(
    gh: GhWorld, http_git: GitHttpServer
) -> None:
    before = gh.w.mirror_refs()
    gh.w.upstream.commit("refs/heads/main", {"later.txt": "later\n"})
    http_git.fail_next(1_000, status=503, service="git-upload-pack")
    with pytest.raises(RevisorError):
        gh.w.source.stored.refresh()
    assert gh.w.mirror_refs() == before  # nothing half-fetched
    Upstream(gh.w.mirror_path or gh.w.upstream.path).fsck()
    http_git.clear_faults()
    gh.w.source.stored.refresh()  # and it recovers by itself once the remote is back
    assert gh.w.source.view("main").read("later.txt") == b"later\n"


def test_a_remote_that_never_answers_is_reported(
    tmp_path: Path, hanging_tcp: HangingTCPServer, fake: TimelineGitHub
) -> None:
    url = hanging_tcp.url_for("octo/app.git")
    config = Config.model_validate({
        "data_dir": str(tmp_path / "data"),
        "sources": {"proj": {"type": "git", "url": url, "branch": "main", "refresh": "1h"}},
    })
    rv = Revisor(config, policy=FAST, identity=REVISOR, env={}).start()
    try:
        with pytest.raises(RevisorError):
            rv.source("proj").update("main", "never", ALICE, changes=[Write("x.txt", b"x")])
        # reported, and nothing half-fetched: the mirror, if made to record the failure, is an
        # empty sound repository that says so; no temporary directory is left
        mirror = rv.source("proj").stored.mirror
        assert mirror is not None
        if mirror.path.exists():
            assert Upstream(mirror.path).refs() == {}
            Upstream(mirror.path).fsck()
            assert mirror.read_state().last_error
        tmp = tmp_path / "data" / "tmp"
        assert not tmp.exists() or list(tmp.iterdir()) == []
    finally:
        rv.close()


# -- a backup remote that goes away (engineer B's backup) -----------------------------------------
@pytest.fixture
def backed(http_git: GitHttpServer, http_git_root: Path, tmp_path: Path) -> Iterator[
    tuple[World, Path]
]:
    from tests.integration.test_backup_support import bworld, init_backup

    bare = init_backup(http_git_root / "backup.git")
    w = bworld(tmp_path, http_git.url_for("backup.git"))
    try:
        yield w, bare
    finally:
        http_git.clear_faults()
        http_git.release()
        w.close()


def test_a_backup_remote_that_hangs_is_reported_then_completed_once_back(
    backed: tuple[World, Path], http_git: GitHttpServer
) -> None:
    from tests.integration.test_backup_support import (
        backup_refs,
        confirmed,
        populate,
        revisor_refs,
        run_backup,
    )

    w, bare = backed
    populate(w)
    http_git.hang_next(1_000, service="git-receive-pack")
    with pytest.raises(RevisorError):
        run_backup(w)
    http_git.clear_faults()
    http_git.release()
    status = confirmed(w).status
    assert status is not None and status.last_error  # reported
    assert dict(confirmed(w).refs).items() <= backup_refs(bare).items()  # nothing claimed
    result = run_backup(w)  # back: completed, everything saved
    assert backup_refs(bare) == revisor_refs(w)
    assert dict(confirmed(w).refs) == revisor_refs(w)
    assert result.refs == len(revisor_refs(w))
    assert run_backup(w).pushed == 0  # nothing duplicated


def test_a_backup_push_applied_but_its_answer_lost_is_not_pushed_again(
    backed: tuple[World, Path], http_git: GitHttpServer
) -> None:
    from tests.integration.test_backup_support import (
        backup_refs,
        confirmed,
        populate,
        revisor_refs,
        run_backup,
    )

    w, bare = backed
    populate(w)
    http_git.drop_response_next(1, service="git-receive-pack")
    try:
        run_backup(w)
    except RevisorError:
        run_backup(w)  # reported; the next run finds it on the remote
    assert backup_refs(bare) == revisor_refs(w)
    assert dict(confirmed(w).refs) == revisor_refs(w)
    assert run_backup(w).pushed == 0
    Upstream(bare).fsck()
