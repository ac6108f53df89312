"""A proposal host that is down does not lose the change: the branch stays pushed, the proposal
is queued in the journal and opened by the next recovery — exactly once, even when the SCM had
created it before failing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from revisor.core.changes import Write
from revisor.db.models import TxState
from revisor.errors import RemoteUnavailable
from revisor.providers.base import Proposal, ProposalRequest
from revisor.vcs import Signature
from tests.integration.test_transactions_support import World, make_world

ALICE = Signature.now("Alice", "alice@example.com")


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    w = make_world("git", tmp_path)
    try:
        yield w
    finally:
        w.close()


def _unreachable(*_: Any, **__: Any) -> Proposal:
    raise RemoteUnavailable("the SCM is down", retry_after=5)


def test_unreachable_provider_queues_the_proposal(world: World,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    provider = world.source.provider
    monkeypatch.setattr(provider, "open", _unreachable)
    result = world.source.update("main", "Queued change\n\nbody", ALICE,
                                 changes=[Write("q.txt", b"queued\n")])
    assert result.proposal is None and result.proposal_queued
    assert world.remote_refs()[f"refs/heads/{result.branch}"] == result.commit  # branch kept
    entry = world.rv.journal.get(result.id)
    assert entry.state is TxState.QUEUED and "down" in (entry.error or "")
    assert provider.list() == []
    # still down: recovery leaves it queued
    assert world.source.recover() == []
    assert world.rv.journal.get(result.id).state is TxState.QUEUED
    monkeypatch.undo()
    assert world.source.recover() == [result.id]
    done = world.rv.journal.get(result.id)
    assert done.state is TxState.DONE
    [proposal] = world.source.provider.list()
    assert (proposal.source_branch, proposal.source_commit) == (result.branch, result.commit)
    assert proposal.title == "Queued change" and proposal.author_email == "alice@example.com"
    assert world.source.recover() == []  # nothing left to do, nothing opened twice
    assert len(world.source.provider.list()) == 1
    world.assert_clean()


def test_created_despite_the_error_is_not_duplicated(world: World,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    provider = world.source.provider
    real_open = provider.open

    def created_then_failed(request: ProposalRequest) -> Proposal:
        real_open(request)  # the SCM created it, then answered 5xx
        raise RemoteUnavailable("500 after creating the pull request")

    monkeypatch.setattr(provider, "open", created_then_failed)
    result = world.source.update("main", "Once", ALICE, changes=[Write("o.txt", b"o\n")])
    assert result.proposal_queued
    monkeypatch.undo()
    world.source.recover()
    assert [p.source_branch for p in world.source.provider.list()] == [result.branch]
    assert world.rv.journal.get(result.id).state is TxState.DONE


def test_a_restart_opens_queued_proposals(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(world.source.provider, "open", _unreachable)
    result = world.source.update("main", "Across a restart", ALICE,
                                 changes=[Write("r.txt", b"r\n")], idempotency_key="k-queued")
    monkeypatch.undo()
    again = world.source.update("main", "Across a restart", ALICE,
                                changes=[Write("r.txt", b"r\n")], idempotency_key="k-queued")
    assert again.replayed and again.commit == result.commit and again.proposal_queued
    rv2 = world.reopen()  # start() runs recovery
    entry = rv2.journal.get(result.id)
    assert entry.state is TxState.DONE and entry.proposal_number is not None
