"""Candidate and workspace rows on SQLite and on a real PostgreSQL (the server that
``tests/unit/test_db.py`` starts): migration 0002 matches the models, names are unique per source
under concurrent creators, a user's first uses meet on one workspace row, JSON columns round-trip,
state changes are checked under the write lock, and workspaces go with their candidate."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, inspect

from revisor.db import Database
from revisor.db.candidates import (
    CandidateStatus,
    CandidateStore,
    CandidateStrategy,
    Resolution,
    WorkspaceConflict,
)
from revisor.db.models import Base, CandidateRow
from revisor.errors import AlreadyExists, CandidateNotFound, InvalidState, WorkspaceNotFound
from revisor.vcs import ObjectId, Signature
from tests.unit.test_db import _pg_database, postgres  # noqa: F401 - the session's server

ALICE = Signature("Alice", "alice@example.com", datetime(2024, 1, 1, tzinfo=UTC))
SHA = ObjectId("a" * 40)
SHA2 = ObjectId("b" * 40)


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'data' / 'revisor.db'}"
    else:
        url = _pg_database(request.getfixturevalue("postgres"))
    database = Database(url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


def _create(store: CandidateStore, name: str, source: str = "proj") -> int:
    return store.create(
        source, name=name, title="T", description="", author=ALICE, target_branch="main",
        base_commit=SHA, strategy=CandidateStrategy.REBASE,
    ).id


def test_migration_matches_the_models(db: Database) -> None:
    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    assert head is not None and head >= "0002"
    assert db.current_revision() == head
    assert {"candidates", "workspaces"} <= set(inspect(db.engine).get_table_names())
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_candidates_round_trip(db: Database) -> None:
    store = CandidateStore(db)
    cid = _create(store, "one-1")
    c = store.get("proj", cid)
    assert (c.name, c.status, c.strategy, c.base_commit, c.head_commit) == (
        "one-1", CandidateStatus.OPEN, CandidateStrategy.REBASE, SHA, SHA)
    assert c.conflicts == () and c.rewrites == {} and c.proposal is None
    assert c.created_at.tzinfo is not None and c.ref == f"refs/revisor/candidates/{cid}"
    with pytest.raises(AlreadyExists):
        _create(store, "one-1")
    other = _create(store, "one-1", source="elsewhere")  # unique per source only
    assert other != cid
    with pytest.raises(CandidateNotFound):
        store.get("proj", other)  # another source's candidate is not found here
    c = store.update("proj", cid, conflicts=("b", "a"), has_conflicts=True,
                     rewrites={SHA: SHA2}, proposal_provider="builtin", proposal_number=3)
    assert c.conflicts == ("a", "b") and c.rewrites == {SHA: SHA2}
    assert c.proposal is not None and c.proposal.number == 3
    store.update("proj", cid, require={CandidateStatus.OPEN}, status=CandidateStatus.ABANDONED)
    with pytest.raises(InvalidState):
        store.update("proj", cid, require={CandidateStatus.OPEN}, action="submit",
                     status=CandidateStatus.SUBMITTED)
    assert [x.name for x in store.list("proj", status=CandidateStatus.ABANDONED)] == ["one-1"]
    assert store.list("proj", author="nobody") == []
    with pytest.raises(TypeError):
        store.update("proj", cid, name="renamed")


def test_concurrent_creators_of_one_name(db: Database) -> None:
    store = CandidateStore(db)
    barrier = threading.Barrier(6)
    outcomes: list[str] = []

    def create() -> None:
        barrier.wait(30)
        try:
            _create(store, "shared")
            outcomes.append("created")
        except AlreadyExists:
            outcomes.append("exists")

    threads = [threading.Thread(target=create) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(outcomes) == ["created"] + ["exists"] * 5


def test_workspaces(db: Database) -> None:
    store = CandidateStore(db)
    cid = _create(store, "ws-1")
    barrier = threading.Barrier(5)
    created: list[bool] = []

    def first_use() -> None:
        barrier.wait(30)
        created.append(store.create_workspace(cid, "Łukasz", author=ALICE, base_commit=SHA)[1])

    threads = [threading.Thread(target=first_use) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(created) == [False] * 4 + [True]
    rec = store.get_workspace(cid, "Łukasz")
    assert rec.ref == f"refs/revisor/workspaces/{cid}/%C5%81ukasz" and rec.merge_base == SHA
    conflict = WorkspaceConflict("a.txt", (SHA2,), ("bob",))
    rec = store.update_workspace(
        cid, "Łukasz", conflicts=(conflict,), changes_base=SHA2,
        resolutions={"a.txt": Resolution("a.txt", SHA, 0o100644, None)},
    )
    assert rec.conflicts == (conflict,) and rec.merge_base == SHA2
    assert rec.resolutions["a.txt"] == Resolution("a.txt", SHA, 0o100644, None)
    with pytest.raises(WorkspaceNotFound):
        store.get_workspace(cid, "nobody")
    with pytest.raises(WorkspaceNotFound):
        store.update_workspace(cid, "nobody", head_commit=SHA)
    store.create_workspace(cid, "bob", author=ALICE, base_commit=SHA)
    assert [w.user for w in store.list_workspaces(cid)] == ["Łukasz", "bob"]
    with db.session() as s:  # workspaces go with their candidate
        s.execute(delete(CandidateRow).where(CandidateRow.id == cid))
    assert store.list_workspaces(cid) == []
