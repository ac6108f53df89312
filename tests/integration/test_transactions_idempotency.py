"""Idempotency keys after a failure, as Stripe's work: a transaction that failed without effect
(``failed``: nothing reached the remote; ``compensated``: what did was undone) leaves its key free,
so the client's retry with the same key runs — once; a transaction still running answers 409
(TransactionInProgress); one that did not finish and awaits recovery (its undoing failed while the
remote was down) answers 409 until recovery ends it; one that succeeded is replayed.

Real upstreams served over smart HTTP with faults injected by the server; the journal and the
audit log read back from the database; the journal's hand-over of a key raced by threads on
SQLite and on a real PostgreSQL.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from revisor import Write
from revisor.core.transaction import Transaction, TransactionResult
from revisor.db import Database, Journal, TxState
from revisor.errors import RemoteUnavailable, TransactionInProgress
from revisor.providers.base import Proposal, ProposalRequest
from tests.integration.test_transactions_support import ALICE, World, served_world
from tests.support.githttp import GitHttpServer
from tests.unit.test_db import db, db_url, postgres  # noqa: F401 - fixtures

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def world(http_git: GitHttpServer, http_git_root: Path, tmp_path: Path) -> Iterator[World]:
    w = served_world(http_git, http_git_root, tmp_path, {"README.md": "hello\n"})
    w.source.view()  # the mirror exists
    try:
        yield w
    finally:
        w.close()


def _update(world: World, key: str, content: bytes = b"a") -> TransactionResult:
    return world.source.update("main", "keyed change", ALICE,
                               changes=[Write("a.txt", content)], idempotency_key=key)


def _assert_ran_once(world: World, result: TransactionResult, key: str) -> None:
    """The key's transaction happened exactly once: one branch, one proposal, one entry holding
    the key (done), and the key now replays that result without touching anything."""
    assert not result.replayed and result.commit is not None
    assert world.upstream.revisor_branches() == {result.branch: result.commit}
    (proposal,) = world.source.provider.list()
    assert proposal.source_commit == result.commit
    keyed = [e for e in world.journal_rows() if e.idempotency_key == key]
    assert [(e.id, e.state) for e in keyed] == [(result.id, TxState.DONE)]
    refs = world.remote_refs()
    again = _update(world, key, b"ignored")
    assert again.replayed and (again.id, again.commit, again.branch) == (
        result.id, result.commit, result.branch)
    assert world.remote_refs() == refs and len(world.source.provider.list()) == 1


def test_a_transient_push_failure_then_the_same_key_succeeds_once(
    world: World, http_git: GitHttpServer
) -> None:
    http_git.fail_next(1, service="git-receive-pack")
    with pytest.raises(RemoteUnavailable):
        _update(world, "k-1")
    assert http_git.pending_faults() == 0
    (failed,) = world.journal_rows()
    assert failed.state is TxState.FAILED and failed.idempotency_key == "k-1"
    assert world.upstream.revisor_branches() == {}

    result = _update(world, "k-1")
    _assert_ran_once(world, result, "k-1")
    old = world.rv.journal.get(failed.id)  # the failed attempt is kept, without the key
    assert (old.state, old.idempotency_key, old.error) == (TxState.FAILED, None, failed.error)
    (retry,) = world.rv.audit.query(action="transaction.retry")
    assert retry.details == {"tx": result.id, "retried": failed.id, "key": "k-1"}
    assert world.audit_actions(result.id) == ["transaction.retry", "transaction.commit"]
    world.assert_clean()


def test_a_compensated_transaction_may_be_retried_with_its_key(
    world: World, http_git: GitHttpServer
) -> None:
    # The push is applied but reported failed and cannot be checked: the branch is deleted
    # again (compensated). Nothing is left, so the key is free.
    http_git.drop_response_next(1, service="git-receive-pack")
    http_git.fail_next(1, service="info/refs?service=git-upload-pack")
    with pytest.raises(RemoteUnavailable):
        _update(world, "k-2")
    (first,) = world.journal_rows()
    assert first.state is TxState.COMPENSATED and world.upstream.revisor_branches() == {}

    result = _update(world, "k-2")
    _assert_ran_once(world, result, "k-2")
    assert result.branch != first.branch  # a new attempt, with a branch of its own
    world.assert_clean()


def test_a_key_whose_undoing_awaits_recovery_is_refused_until_recovered(
    world: World, http_git: GitHttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider = world.source.provider
    real_open = provider.open

    def open_while_the_remote_goes_down(request: ProposalRequest) -> Proposal:
        http_git.stop()
        raise RuntimeError("provider down")

    monkeypatch.setattr(provider, "open", open_while_the_remote_goes_down)
    with pytest.raises(RuntimeError):
        _update(world, "k-3")
    (pending,) = world.journal_rows()
    assert not pending.finished and pending.branch in world.upstream.branches()
    monkeypatch.setattr(provider, "open", real_open)

    # its branch is still out there: the key must not run again, nor replay
    with pytest.raises(TransactionInProgress, match="awaits recovery") as caught:
        _update(world, "k-3")
    assert caught.value.hint is not None and "same key" in caught.value.hint
    assert len(world.journal_rows()) == 1

    http_git.start()
    assert world.source.recover() == [pending.id]
    assert world.rv.journal.get(pending.id).state is TxState.COMPENSATED
    result = _update(world, "k-3")  # undone: the key is free now
    _assert_ran_once(world, result, "k-3")
    assert pending.branch not in world.upstream.branches()
    world.assert_clean()


def test_concurrent_retries_of_a_failed_key_run_once(
    world: World, http_git: GitHttpServer
) -> None:
    """Several clients retry a failed key at the same moment: exactly one runs, every other
    gets TransactionInProgress while it runs (the winner is held in its callback until all of
    them have answered), and afterwards the key replays the winner's result."""
    http_git.fail_next(1, service="git-receive-pack")
    with pytest.raises(RemoteUnavailable):
        _update(world, "k-4")
    n = 6
    barrier, release = threading.Barrier(n), threading.Event()

    def hold(tx: Transaction) -> None:
        assert release.wait(60), "never released"
        tx.write("a.txt", b"retried")

    def attempt(_: int) -> TransactionResult | str:
        barrier.wait(timeout=60)
        try:
            return world.source.update("main", "retry", ALICE, hold, idempotency_key="k-4")
        except TransactionInProgress as exc:
            return f"409: {exc}"

    with ThreadPoolExecutor(n) as pool:
        futures = [pool.submit(attempt, i) for i in range(n)]
        # every attempt but the winner's ends by itself; the winner waits for `release`
        for _ in range(1200):
            if sum(f.done() for f in futures) == n - 1:
                break
            time.sleep(0.05)
        release.set()
        outcomes = [f.result(timeout=60) for f in futures]
    results = [o for o in outcomes if isinstance(o, TransactionResult)]
    conflicts = [o for o in outcomes if isinstance(o, str)]
    assert len(results) == 1 and len(conflicts) == n - 1, outcomes
    assert all("still running" in c for c in conflicts)
    _assert_ran_once(world, results[0], "k-4")
    assert len(world.journal_rows()) == 2  # the failed attempt and the one retry
    world.assert_clean()


# -- the journal: handing a failed key over, raced ---------------------------------------------
def test_the_journal_hands_a_failed_key_to_one_retry(db: Database) -> None:  # noqa: F811
    journal = Journal(db)

    def begin(key: str) -> tuple[str, bool, str | None]:
        b = journal.begin(source="src", actor=ALICE, message="m", base_ref="main",
                          idempotency_key=key)
        return b.entry.id, b.created, b.retried

    for state in (TxState.FAILED, TxState.COMPENSATED):
        key = f"key-{state}"
        first, created, _ = begin(key)
        assert created
        journal.finish(first, state, error="boom")
        barrier = threading.Barrier(8)

        def race(
            _: int, key: str = key, barrier: threading.Barrier = barrier
        ) -> tuple[str, bool, str | None]:
            barrier.wait(timeout=30)
            return begin(key)

        with ThreadPoolExecutor(8) as pool:
            outcomes = list(pool.map(race, range(8)))
        winners = [o for o in outcomes if o[1]]
        assert len(winners) == 1 and winners[0][2] == first, outcomes
        assert {tx for tx, _, _ in outcomes} == {winners[0][0]}  # the losers got the winner
        assert journal.by_key("src", key) == journal.get(winners[0][0])
        old = journal.get(first)
        assert (old.state, old.idempotency_key, old.error) == (state, None, "boom")

    # every other ending keeps its key: done and empty are replayed, unfinished ones wait
    for state in (TxState.DONE, TxState.EMPTY, None):
        key = f"kept-{state}"
        tx, _, _ = begin(key)
        if state is not None:
            journal.finish(tx, state, result_json="{}")
        assert begin(key) == (tx, False, None)
