"""Every failure point of a transaction, with the state checked afterwards: the remote's refs (over
smart HTTP, with faults injected by the server), the mirror's refs, the journal, the proposals, the
audit log and the temporary directories. Whatever fails, nothing half-made is left: a branch pushed
before the failure is deleted again (with a lease: a branch someone else moved is left alone), and
when even that is impossible (the remote is down at that moment) the journal entry stays unfinished
until ``recover()`` finishes the job.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revisor import Write
from revisor.core.transaction import Transaction
from revisor.db.models import TxState
from revisor.errors import RemoteUnavailable
from revisor.faults import InjectedFault
from revisor.providers.base import Proposal, ProposalRequest, ProposalStatus
from revisor.providers.builtin import BuiltinProvider
from tests.integration.test_transactions_support import ALICE, World, make_world, served_world
from tests.support.githttp import GitHttpServer

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def world(http_git: GitHttpServer, http_git_root: Path, tmp_path: Path) -> Iterator[World]:
    w = served_world(http_git, http_git_root, tmp_path, {"README.md": "hello\n"})
    w.source.view()  # the mirror exists
    try:
        yield w
    finally:
        w.close()


def _main_only(world: World) -> dict[str, str]:
    refs = world.remote_refs()
    assert list(refs) == ["refs/heads/main"]
    return refs


def _assert_nothing_left(world: World, before: dict[str, str]) -> None:
    assert world.remote_refs() == before
    assert world.upstream.branches() == {"main": before["refs/heads/main"]}
    assert world.mirror_refs("refs/heads/") == before
    assert world.tmp_leftovers() == []


class Boom(Exception):
    pass


# -- before anything reaches the remote --------------------------------------------------------
def test_fn_raising_leaves_nothing(world: World) -> None:
    before = _main_only(world)

    def fn(tx: Transaction) -> None:
        tx.write("a.txt", b"a")
        (tx.workdir() / "b.txt").write_text("b")
        raise Boom("fn failed")

    with pytest.raises(Boom):
        world.source.update("main", "fails", ALICE, fn)
    _assert_nothing_left(world, before)
    assert world.source.provider.list() == []
    (row,) = world.journal_rows()
    assert row.state is TxState.FAILED and row.error == "fn failed" and row.commit is None
    assert world.audit_actions(row.id) == ["transaction.abort"]
    world.assert_clean()


@pytest.mark.parametrize("point", ["tx.before_commit", "tx.before_push"])
def test_faults_before_the_push_leave_nothing(
    world: World, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _main_only(world)
    monkeypatch.setenv("REVISOR_FAULT", f"{point}=raise")

    def fn(tx: Transaction) -> None:
        (tx.workdir() / "b.txt").write_text("b")

    with pytest.raises(InjectedFault):
        world.source.update("main", "fails", ALICE, fn)
    _assert_nothing_left(world, before)
    assert world.source.provider.list() == []
    (row,) = world.journal_rows()
    assert row.state is TxState.FAILED
    assert (row.commit is None) == (point == "tx.before_commit")
    world.assert_clean()


# -- the push ----------------------------------------------------------------------------------
def test_a_failed_push_leaves_nothing(world: World, http_git: GitHttpServer) -> None:
    before = _main_only(world)
    http_git.fail_next(1, service="git-receive-pack")
    with pytest.raises(RemoteUnavailable):
        world.source.update("main", "push fails", ALICE, changes=[Write("a", b"a")])
    assert http_git.pending_faults() == 0
    _assert_nothing_left(world, before)
    assert world.source.provider.list() == []
    (row,) = world.journal_rows()
    assert row.state is TxState.FAILED and row.commit is not None  # a dangling commit at most
    world.assert_clean()

    # the source works again at once
    result = world.source.update("main", "push works", ALICE, changes=[Write("a", b"a")])
    assert world.remote_refs()[f"refs/heads/{result.branch}"] == result.commit


def test_a_push_applied_whose_answer_was_lost_completes(
    world: World, http_git: GitHttpServer
) -> None:
    # The server applies the push but the connection drops before git hears so: the remote's
    # state decides, and the transaction completes (branch, proposal, journal all agree).
    http_git.drop_response_next(1, service="git-receive-pack")
    result = world.source.update("main", "answer lost", ALICE, changes=[Write("a", b"a")])
    assert http_git.pending_faults() == 0
    assert world.remote_refs()[f"refs/heads/{result.branch}"] == result.commit
    (proposal,) = world.source.provider.list()
    assert proposal.source_commit == result.commit
    assert world.rv.journal.get(result.id).state is TxState.DONE
    world.assert_clean()


def test_a_push_applied_but_reported_failed_is_deleted_again(
    world: World, http_git: GitHttpServer
) -> None:
    # The push is applied but the client sees an error, and cannot even ask the remote what
    # happened (the ls-remote after it fails too): the transaction fails, so the branch it may
    # have left is deleted again — with a lease on the commit it pushed.
    before = _main_only(world)
    http_git.drop_response_next(1, service="git-receive-pack")
    http_git.fail_next(1, service="info/refs?service=git-upload-pack")
    with pytest.raises(RemoteUnavailable):
        world.source.update("main", "reported failed", ALICE, changes=[Write("a", b"a")])
    assert http_git.pending_faults() == 0
    _assert_nothing_left(world, before)
    assert world.source.provider.list() == []
    (row,) = world.journal_rows()
    assert row.state is TxState.COMPENSATED and row.commit is not None
    assert world.audit_actions(row.id) == ["transaction.compensate"]
    (audit,) = world.rv.audit.query(action="transaction.compensate")
    assert audit.before == row.commit and audit.details["branch_deleted"] is True
    deletes = [r for r in http_git.requests if r.endpoint == "git-receive-pack"]
    assert len(deletes) == 2  # the push, and the deletion
    world.assert_clean()


# -- the proposal ------------------------------------------------------------------------------
def test_a_failing_proposal_deletes_the_pushed_branch(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _main_only(world)
    provider = world.source.provider
    seen: dict[str, Any] = {}

    def failing_open(request: ProposalRequest) -> Proposal:
        # the branch is on the remote when the provider is asked
        seen["remote"] = world.remote_refs().get(f"refs/heads/{request.source_branch}")
        seen["commit"] = request.source_commit
        raise Boom("the SCM said no")

    monkeypatch.setattr(provider, "open", failing_open)
    with pytest.raises(Boom, match="the SCM said no"):
        world.source.update("main", "no proposal", ALICE, changes=[Write("a", b"a")])
    assert seen["remote"] == seen["commit"]
    _assert_nothing_left(world, before)
    assert provider.list() == []
    (row,) = world.journal_rows()
    assert row.state is TxState.COMPENSATED and row.error == "the SCM said no"
    assert world.audit_actions(row.id) == ["transaction.compensate"]
    world.assert_clean()


def test_a_proposal_opened_before_a_failure_is_closed_again(world: World) -> None:
    before = _main_only(world)

    class OpensThenFails(BuiltinProvider):
        def open(self, request: ProposalRequest) -> Proposal:
            super().open(request)
            raise Boom("timed out after creating it")

    stored = world.source.stored
    world.source._provider = OpensThenFails(
        stored, world.rv.db, world.rv.audit, world.rv.identity)
    with pytest.raises(Boom):
        world.source.update("main", "half open", ALICE, changes=[Write("a", b"a")])
    _assert_nothing_left(world, before)
    (proposal,) = world.source.provider.list()
    assert proposal.status is ProposalStatus.CLOSED
    (row,) = world.journal_rows()
    assert row.state is TxState.COMPENSATED
    assert world.audit_actions(row.id) == ["transaction.compensate"]
    assert [e.action for e in world.rv.audit.query(source="proj", action="proposal.")] == [
        "proposal.close", "proposal.open"]


@pytest.mark.parametrize("point", ["tx.after_push", "tx.after_proposal"])
def test_faults_after_the_push_are_compensated(
    world: World, point: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _main_only(world)
    monkeypatch.setenv("REVISOR_FAULT", f"{point}=raise")
    with pytest.raises(InjectedFault):
        world.source.update("main", "fails late", ALICE, changes=[Write("a", b"a")])
    _assert_nothing_left(world, before)
    proposals = world.source.provider.list()
    if point == "tx.after_proposal":
        assert [p.status for p in proposals] == [ProposalStatus.CLOSED]
    else:
        assert proposals == []
    (row,) = world.journal_rows()
    assert row.state is TxState.COMPENSATED
    world.assert_clean()


def test_compensation_never_deletes_a_branch_someone_else_moved(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = world.source.provider
    theirs: dict[str, str] = {}

    def open_after_someone_moved_it(request: ProposalRequest) -> Proposal:
        ref = f"refs/heads/{request.source_branch}"
        theirs["commit"] = world.upstream.commit(ref, {"theirs.txt": "theirs"})
        raise Boom("proposal failed")

    monkeypatch.setattr(provider, "open", open_after_someone_moved_it)
    with pytest.raises(Boom):
        world.source.update("main", "x", ALICE, changes=[Write("a", b"a")])
    (row,) = world.journal_rows()
    assert row.branch is not None
    # the lease protected their commit
    assert world.remote_refs()[f"refs/heads/{row.branch}"] == theirs["commit"]
    assert row.state is TxState.FAILED
    assert world.tmp_leftovers() == []


def test_the_deletion_carries_a_lease(
    world: World, http_git: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Someone moves the branch after compensation read it and before its deletion reaches the
    remote: the lease refuses the deletion, and their commit survives."""
    provider = world.source.provider
    theirs: dict[str, str] = {}

    def failing_open(request: ProposalRequest) -> Proposal:
        ref = f"refs/heads/{request.source_branch}"
        seen = len([r for r in http_git.requests
                    if r.matches("info/refs?service=git-receive-pack")])
        # hold the deletion's ref discovery until the branch has moved
        http_git.delay_next(1, 2.5, service="info/refs?service=git-receive-pack")

        def move_meanwhile() -> None:
            http_git.wait_for_requests(seen + 1, service="info/refs?service=git-receive-pack")
            theirs["commit"] = world.upstream.commit(ref, {"theirs.txt": "theirs"})

        mover = threading.Thread(target=move_meanwhile, daemon=True)
        mover.start()
        theirs["thread"] = mover  # type: ignore[assignment]
        raise Boom("proposal failed")

    monkeypatch.setattr(provider, "open", failing_open)
    with pytest.raises(Boom):
        world.source.update("main", "x", ALICE, changes=[Write("a", b"a")])
    theirs["thread"].join(timeout=10)  # type: ignore[attr-defined]
    (row,) = world.journal_rows()
    assert world.remote_refs()[f"refs/heads/{row.branch}"] == theirs["commit"]
    assert row.state is TxState.FAILED
    assert http_git.pending_faults() == 0


# -- compensation failing, then recovery -------------------------------------------------------
def test_compensation_that_fails_is_finished_by_recover(
    world: World, http_git: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = world.source.provider

    def open_while_the_remote_goes_down(request: ProposalRequest) -> Proposal:
        http_git.stop()
        raise Boom("provider down too")

    monkeypatch.setattr(provider, "open", open_while_the_remote_goes_down)
    with pytest.raises(Boom):
        world.source.update("main", "x", ALICE, changes=[Write("a", b"a")])
    (row,) = world.journal_rows()
    assert not row.finished and row.state is TxState.COMMITTED
    assert "provider down too" in (row.error or "") and "undo" in (row.error or "")
    assert row.branch is not None and row.commit is not None
    # the branch is still on the remote (read from disk: the server is down)
    assert world.upstream.branches()[row.branch] == row.commit
    assert "transaction.abort" in world.audit_actions(row.id)

    # the remote is still down: recovery tries, and leaves the entry for later
    assert world.source.recover() == []
    assert not world.rv.journal.get(row.id).finished
    assert world.upstream.branches()[row.branch] == row.commit

    http_git.start()
    assert world.source.recover() == [row.id]
    entry = world.rv.journal.get(row.id)
    assert entry.state is TxState.COMPENSATED
    assert row.branch not in world.upstream.branches()
    assert world.audit_actions(row.id)[-1] == "transaction.recover"
    assert world.source.recover() == []  # nothing left to do
    world.assert_clean()


def test_a_restart_recovers_an_entry_left_by_failed_compensation(
    world: World, http_git: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    def open_while_the_remote_goes_down(request: ProposalRequest) -> Proposal:
        http_git.stop()
        raise Boom("down")

    monkeypatch.setattr(world.source.provider, "open", open_while_the_remote_goes_down)
    with pytest.raises(Boom):
        world.source.update("main", "x", ALICE, changes=[Write("a", b"a")])
    http_git.start()
    world.reopen()  # start() recovers
    (row,) = world.journal_rows()
    assert row.state is TxState.COMPENSATED
    assert row.branch not in world.upstream.branches()


def test_recover_leaves_running_transactions_alone(world: World) -> None:
    with world.source.transaction("running", ALICE) as tx:
        tx.write("a", b"a")
        assert world.source.recover() == []
        assert world.reopen().source("proj").recover() == []
        assert world.rv.journal.get(tx.id).state is TxState.STARTED
    assert tx.result is not None
    assert world.rv.journal.get(tx.id).state is TxState.DONE


# -- direct commits ----------------------------------------------------------------------------
def test_a_direct_commit_that_landed_before_a_failure_is_recorded_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world("git", tmp_path, {"README.md": "hi\n"}, allow_direct=True)
    try:
        base = world.upstream.ref("refs/heads/main")
        monkeypatch.setenv("REVISOR_FAULT", "tx.after_push=raise")
        with pytest.raises(InjectedFault):
            world.source.update("main", "direct", ALICE, changes=[Write("d", b"d")],
                                branch="main", propose=False)
        (row,) = world.journal_rows()
        # a direct commit is never undone: it landed, and the journal says so
        assert world.remote_refs() == {"refs/heads/main": row.commit}
        assert world.upstream.parents(row.commit or "") == [base]
        assert row.state is TxState.DONE and row.result_json is not None
        world.assert_clean()
    finally:
        world.close()
