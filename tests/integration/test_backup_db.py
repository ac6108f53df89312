"""The backup tables on SQLite and PostgreSQL: the migration matches the models, confirmations
are recorded, replaced and dropped as documented, and records round-trip (same ids, and the
next id after them) through export and import."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import delete, inspect

from revisor.db import Database
from revisor.db.backups import BackupStore, export_records, import_records, record_path
from revisor.db.candidates import CandidateStore, CandidateStrategy
from revisor.db.models import Base, CandidateRow, WorkspaceRow
from revisor.vcs import ObjectId, Signature
from tests.unit.test_db import _pg_database, postgres  # noqa: F401 - the session's server

ALICE = Signature("Alice", "alice@example.com", datetime(2024, 1, 1, tzinfo=UTC))
A, B, C = (ObjectId(x * 40) for x in "abc")


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


def test_migration_creates_the_backup_tables_as_the_models_say(db: Database) -> None:
    tables = set(inspect(db.engine).get_table_names())
    assert {"backup_refs", "backup_records", "backup_status"} <= tables
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_confirmations_are_recorded_replaced_and_dropped(db: Database) -> None:
    store = BackupStore(db)
    assert store.confirmed("proj").refs == {} and store.status("proj") is None
    store.confirm("proj", "https://b.example/x.git", refs={"refs/revisor/a": A,
                                                           "refs/revisor/b": B},
                  records={"candidates/1.json": C}, meta_commit=A)
    store.confirm("proj", "https://b.example/x.git", refs={"refs/revisor/a": C,
                                                           "refs/revisor/b": None},
                  records={})
    got = store.confirmed("proj")
    assert dict(got.refs) == {"refs/revisor/a": C}
    assert dict(got.records) == {"candidates/1.json": C}
    assert got.status is not None and got.status.meta_commit == A and got.status.last_ok_at
    store.failed("proj", "https://b.example/x.git", "down")
    status = store.status("proj")
    assert status is not None and status.last_error == "down"
    assert store.confirmed("other").refs == {}  # per source
    store.forget("proj", records={"candidates/1.json": None}, meta_commit=B)
    after = store.confirmed("proj")
    assert dict(after.records) == {}
    assert after.status is not None and after.status.meta_commit == B
    # another backup URL: the confirmations were about another remote and are dropped
    assert store.reset_if_moved("proj", "https://b.example/x.git") is False
    assert store.reset_if_moved("proj", "file:///elsewhere.git") is True
    assert dict(store.confirmed("proj").refs) == {}


def test_many_confirmations_at_once(db: Database) -> None:
    store = BackupStore(db)
    refs = {f"refs/revisor/workspaces/{i}/u": A for i in range(1, 1201)}
    store.confirm("proj", "u", refs=dict(refs), records={})
    store.confirm("proj", "u", refs={r: B for r in list(refs)[:700]}, records={})
    got = store.confirmed("proj").refs
    assert len(got) == 1200 and sum(1 for v in got.values() if v == B) == 700


def test_records_round_trip_with_their_ids(db: Database) -> None:
    cands = CandidateStore(db)
    first = cands.create("proj", name="one", title="One", description="d", author=ALICE,
                         target_branch="main", base_commit=A, strategy=CandidateStrategy.MERGE)
    second = cands.create("proj", name="two", title="Two", description="", author=ALICE,
                          target_branch="main", base_commit=A, strategy=CandidateStrategy.REBASE)
    cands.update("proj", second.id, conflicts=("x.txt", "a/b.txt"), has_conflicts=True)
    ws, _ = cands.create_workspace(second.id, "Łukasz", author=ALICE, base_commit=B)
    exported = export_records(db, "proj")
    assert set(exported) == {record_path(first.id), record_path(second.id),
                             record_path(second.id, ws.ref_name)}
    before = (cands.list("proj"), cands.list_workspaces(second.id))
    with db.session() as s:
        s.execute(delete(WorkspaceRow))
        s.execute(delete(CandidateRow))
    with db.session() as s:
        assert import_records(s, "proj", exported) == (2, 1)
    assert export_records(db, "proj") == exported
    assert (cands.list("proj"), cands.list_workspaces(second.id)) == before
    third = cands.create("proj", name="three", title="Three", description="", author=ALICE,
                         target_branch="main", base_commit=A, strategy=CandidateStrategy.REBASE)
    assert third.id > second.id  # the id sequence moved past the imported ids
