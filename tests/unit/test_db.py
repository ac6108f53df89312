"""The SQL layer on SQLite and on a real PostgreSQL: migrations (twice, and from processes racing),
the journal's states and idempotency keys under races, the audit log's filters and pagination,
and proposal numbers allocated by concurrent processes.

The PostgreSQL cases start their own server (``initdb`` + ``pg_ctl`` in a temporary directory,
listening only on a unix socket) and are skipped only when the PostgreSQL binaries (or the
psycopg driver) are not installed.
"""

from __future__ import annotations

import glob
import multiprocessing
import os
import pwd
import shutil
import sqlite3
import subprocess
import tempfile
import threading
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect, select

from revisor.db import AuditLog, Database, Journal, ProposalStore, TxState
from revisor.db import database as database_module
from revisor.db.models import AuditRow, Base
from revisor.errors import (
    DatabaseUnavailable,
    InvalidInput,
    InvalidState,
    ProposalNotFound,
    TransactionNotFound,
)
from revisor.providers.base import MergeMethod, ProposalRequest, ProposalStatus
from revisor.vcs import ObjectId, Signature

ALICE = Signature("Alice", "alice@example.com", datetime(2024, 1, 1, tzinfo=UTC))
SHA = ObjectId("a" * 40)
TABLES = {"alembic_version", "audit_log", "proposal_comments", "proposals", "transactions"}


# -- a PostgreSQL server of our own --------------------------------------------------------------
def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for directory in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        candidate = os.path.join(directory, name)
        if os.access(candidate, os.X_OK):
            return candidate
    return None


@pytest.fixture(scope="session")
def postgres() -> Iterator[Path]:
    """A PostgreSQL server for this test session; yields the directory of its unix socket."""
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if initdb is None or pg_ctl is None:
        pytest.skip("PostgreSQL is not installed (initdb, pg_ctl)")
    pytest.importorskip("psycopg", reason="the psycopg driver is not installed")
    root = Path(tempfile.mkdtemp(prefix="revisor-pg-", dir="/tmp"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        user = next((u for u in ("postgres", "nobody") if _has_user(u)), None)
        if user is None or shutil.which("runuser") is None:
            pytest.skip("running as root without a postgres user to run PostgreSQL as")
        entry = pwd.getpwnam(user)
        os.chown(root, entry.pw_uid, entry.pw_gid)
        as_user = ["runuser", "-u", user, "--"]
    data = root / "data"

    def run(*args: str) -> None:
        proc = subprocess.run([*as_user, *args], capture_output=True, text=True, check=False,
                              timeout=120)
        if proc.returncode != 0:
            raise AssertionError(f"{' '.join(args)} failed: {proc.stdout}{proc.stderr}")

    try:
        run(initdb, "-D", str(data), "-A", "trust", "-U", "revisor", "--no-sync", "-E", "UTF8",
            "--locale=C")
        run(pg_ctl, "-D", str(data), "-l", str(root / "log"), "-w", "-t", "60",
            "-o", f"-k {root} -c listen_addresses='' -F -c max_connections=200", "start")
        try:
            yield root
        finally:
            run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _head_revision(db: Database) -> str:
    """The newest migration shipped in the package (what ``migrate()`` must reach)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(db.alembic_config()).get_current_head()
    assert head is not None
    return head


def _has_user(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False


def _pg_database(socket_dir: Path) -> str:
    import psycopg

    name = f"t_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(host=str(socket_dir), user="revisor", dbname="postgres",
                         autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"postgresql+psycopg://revisor@/{name}?host={socket_dir}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database's URL, on each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'data' / 'revisor.db'}"
    return _pg_database(request.getfixturevalue("postgres"))


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.migrate()
    try:
        yield database
    finally:
        database.dispose()


# -- the database ------------------------------------------------------------------------------
def test_constructing_does_no_io(tmp_path: Path) -> None:
    db = Database.for_data_dir(tmp_path / "a" / "b")
    assert db.sqlite_path == tmp_path / "a" / "b" / "revisor.db"
    assert not (tmp_path / "a").exists()
    with db.session(write=False) as s:
        s.execute(select(1))
    assert (tmp_path / "a" / "b" / "revisor.db").exists()


def test_unsupported_or_invalid_urls_are_refused() -> None:
    with pytest.raises(InvalidInput):
        Database("mysql://localhost/revisor")
    with pytest.raises(InvalidInput):
        Database("not a url")


def test_repr_hides_the_password() -> None:
    db = Database("postgresql+psycopg://bot:s3cret@db.example/revisor")
    assert "s3cret" not in repr(db)


def test_migrate_twice_is_idempotent_and_matches_the_models(db: Database) -> None:
    db.migrate()
    assert db.current_revision() == _head_revision(db)
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    with db.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_sqlite_connection_settings(tmp_path: Path) -> None:
    db = Database.for_data_dir(tmp_path)
    with db.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        assert conn.exec_driver_sql("PRAGMA busy_timeout").scalar() == 30_000


def _migrate(url: str, barrier: Any, queue: Any) -> None:
    barrier.wait(timeout=60)
    try:
        db = Database(url)
        db.migrate()
        queue.put(db.current_revision())
    except Exception as exc:  # reported to the parent
        queue.put(repr(exc))


def test_processes_migrating_at_once(db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_migrate, args=(db_url, barrier, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert results == [_head_revision(Database("sqlite://"))] * 4
    db = Database(db_url)
    assert set(inspect(db.engine).get_table_names()) >= TABLES
    db.dispose()


def test_session_commits_or_rolls_back(db: Database) -> None:
    audit = AuditLog(db)

    def fail_inside() -> None:
        with db.session() as s:
            audit.record("a", "x.y", "s", "t", session=s)
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        fail_inside()
    assert audit.query() == []
    with db.session() as s:
        audit.record("a", "x.y", "s", "t", session=s)
    assert len(audit.query()) == 1


def test_a_lock_held_past_the_busy_timeout_is_unavailable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(database_module, "BUSY_TIMEOUT", 0.2)
    db = Database.for_data_dir(tmp_path)
    db.migrate()
    holder = sqlite3.connect(str(db.sqlite_path), isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(DatabaseUnavailable), db.session() as s:
            s.execute(select(1))
        with db.session(write=False) as s:  # readers are not blocked by the writer (WAL)
            assert s.execute(select(AuditRow)).all() == []
    finally:
        holder.rollback()
        holder.close()
    with db.session() as s:
        s.execute(select(1))


# -- the journal -------------------------------------------------------------------------------
def _begin(journal: Journal, key: str | None = None, source: str = "src", **kw: Any) -> Any:
    return journal.begin(source=source, actor=ALICE, message="change", base_ref="main",
                         idempotency_key=key, **kw)


def test_journal_steps_and_ending(db: Database) -> None:
    journal = Journal(db)
    began = _begin(journal, branch="revisor/x")
    entry = began.entry
    assert began.created and entry.state is TxState.STARTED and not entry.finished
    assert len(entry.id) == 32 and entry.created_at.tzinfo is not None
    assert entry.owner.endswith(f":{os.getpid()}")
    entry = journal.advance(entry.id, TxState.STARTED, base_commit=SHA)
    assert entry.base_commit == SHA
    entry = journal.advance(entry.id, TxState.COMMITTED, commit=SHA)
    entry = journal.advance(entry.id, TxState.PUSHED, expected=TxState.COMMITTED)
    assert entry.state is TxState.PUSHED and entry.commit == SHA
    with pytest.raises(InvalidState):
        journal.advance(entry.id, TxState.PROPOSED, expected=TxState.COMMITTED)
    entry = journal.advance(entry.id, TxState.PROPOSED, proposal_number=3)
    done = journal.finish(entry.id, TxState.DONE, result_json='{"ok": true}')
    assert done.finished and done.result_json == '{"ok": true}' and done.proposal_number == 3
    assert done.updated_at >= done.created_at
    assert journal.get(entry.id) == done
    with pytest.raises(InvalidState):
        journal.finish(entry.id, TxState.FAILED, error="late")
    with pytest.raises(InvalidState):
        journal.advance(entry.id, TxState.COMMITTED)
    with pytest.raises(InvalidInput):
        journal.advance(entry.id, TxState.DONE)
    with pytest.raises(InvalidInput):
        journal.finish(entry.id, TxState.PUSHED)
    with pytest.raises(TypeError):
        journal.advance(_begin(journal).entry.id, TxState.COMMITTED, colour="red")
    with pytest.raises(TransactionNotFound):
        journal.get("0" * 32)
    with pytest.raises(InvalidInput):
        _begin(journal, tx_id="not-hex")


def test_journal_unfinished_is_what_recovery_sees(db: Database) -> None:
    journal = Journal(db)
    started = _begin(journal, source="a").entry
    pushed = journal.advance(_begin(journal, source="b").entry.id, TxState.PUSHED)
    for state in (TxState.DONE, TxState.EMPTY, TxState.FAILED, TxState.COMPENSATED):
        journal.finish(_begin(journal, source="a").entry.id, state)
    assert [e.id for e in journal.unfinished()] == [started.id, pushed.id]
    assert [e.id for e in journal.unfinished("b")] == [pushed.id]
    assert journal.unfinished(older_than=timedelta(hours=1)) == []
    assert len(journal.unfinished(older_than=timedelta(0))) == 2


def test_idempotency_key_returns_the_first_entry(db: Database) -> None:
    journal = Journal(db)
    first = _begin(journal, "key-1")
    again = _begin(journal, "key-1")
    assert first.created and not again.created and again.entry == first.entry
    assert _begin(journal, "key-1", source="other").created  # keys are per source
    assert journal.by_key("src", "key-1") == first.entry
    assert journal.by_key("src", "nope") is None
    assert _begin(journal).created and _begin(journal).created  # no key: never deduplicated
    with pytest.raises(InvalidInput):
        _begin(journal, " ")


def test_idempotency_key_race_between_threads(db: Database) -> None:
    journal = Journal(db)
    barrier = threading.Barrier(8)

    def attempt(_: int) -> tuple[str, bool]:
        barrier.wait(timeout=30)
        began = _begin(journal, "same")
        return began.entry.id, began.created

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(attempt, range(8)))
    assert sum(created for _, created in results) == 1
    assert len({tx for tx, _ in results}) == 1


def _begin_with_key(url: str, barrier: Any, queue: Any) -> None:
    db = Database(url)
    barrier.wait(timeout=60)
    try:
        began = _begin(Journal(db), "raced")
        queue.put((began.entry.id, began.created))
    except Exception as exc:  # reported to the parent
        queue.put((repr(exc), None))


def test_idempotency_key_race_between_processes(db: Database, db_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(4), ctx.Queue()
    procs = [ctx.Process(target=_begin_with_key, args=(db_url, barrier, queue)) for _ in range(4)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sorted(created for _, created in results) == [False, False, False, True], results
    assert len({tx for tx, _ in results}) == 1
    assert Journal(db).by_key("src", "raced") is not None


# -- the audit log -------------------------------------------------------------------------------
def test_audit_filters(db: Database) -> None:
    audit = AuditLog(db)
    audit.record("alice", "proposal.open", "a", "proposals/1", after=SHA, details={"n": 1})
    audit.record("bob", "proposal.merge", "a", "proposals/1", before=SHA, after="b" * 40)
    audit.record("bob", "ref.move", "a", "refs/heads/main", before=SHA, after="b" * 40)
    audit.record("alice", "ref.move", "b", "refs/heads/Main_x")
    audit.record("carol", "transaction.done", "b", "refs/heads/main")

    def actions(**kw: Any) -> list[str]:
        return [e.action for e in audit.query(**kw)]

    assert actions() == ["transaction.done", "ref.move", "ref.move", "proposal.merge",
                         "proposal.open"]
    assert actions(actor="alice") == ["ref.move", "proposal.open"]
    assert actions(source="a", action="ref.move") == ["ref.move"]
    assert actions(action="proposal.") == ["proposal.merge", "proposal.open"]
    assert actions(target="proposals/1", actor="bob") == ["proposal.merge"]
    assert len(audit.query(target_prefix="refs/heads/")) == 3
    assert [e.target for e in audit.query(target_prefix="refs/heads/main")] == [
        "refs/heads/main", "refs/heads/main"]  # case-sensitive: not refs/heads/Main_x
    assert [e.target for e in audit.query(target_prefix="refs/heads/Main_")] == [
        "refs/heads/Main_x"]  # '_' is not a wildcard
    opened = audit.query(action="proposal.open")[0]
    assert opened.details == {"n": 1} and opened.after == SHA and opened.actor == "alice"
    assert opened.at.tzinfo is not None


def test_audit_time_range_and_pagination(db: Database) -> None:
    audit = AuditLog(db)
    before = datetime.now(UTC) - timedelta(seconds=1)
    ids = [audit.record("alice", "ref.move", "a", f"refs/heads/b{i}").id for i in range(25)]
    after = datetime.now(UTC) + timedelta(seconds=1)
    assert ids == sorted(ids)
    assert len(audit.query(since=before, until=after)) == 25
    assert audit.query(until=before) == [] and audit.query(since=after) == []
    pages: list[int] = []
    cursor = None
    while True:
        page = audit.query(limit=10, before_id=cursor)
        if not page:
            break
        pages.extend(e.id for e in page)
        cursor = page[-1].id
    assert pages == ids[::-1]
    with pytest.raises(InvalidInput):
        audit.query(limit=0)
    with pytest.raises(InvalidInput):
        audit.query(since=datetime(2024, 1, 1))  # naive


# -- proposals -----------------------------------------------------------------------------------
def _request(branch: str, title: str = "change") -> ProposalRequest:
    return ProposalRequest(title, "why", ALICE, branch, SHA, "main", labels=("x",))


def test_proposal_rows(db: Database) -> None:
    store = ProposalStore(db, url_for=lambda source, n: f"revisor://{source}/proposals/{n}")
    first = store.create("src", _request("revisor/a"))
    assert first.created and first.proposal.number == 1
    assert first.proposal.url == "revisor://src/proposals/1"
    assert first.proposal.labels == ("x",) and first.proposal.status is ProposalStatus.OPEN
    again = store.create("src", _request("revisor/a"))
    assert not again.created and again.proposal == first.proposal
    assert store.create("src", _request("revisor/b")).proposal.number == 2
    assert store.create("other", _request("revisor/a")).proposal.number == 1
    merged = store.update("src", 1, status=ProposalStatus.MERGED, merged_commit=SHA,
                          merge_method=MergeMethod.SQUASH)
    assert merged.merge_method is MergeMethod.SQUASH and merged.merged_commit == SHA
    with pytest.raises(InvalidState):
        store.update("src", 1, require={ProposalStatus.OPEN}, title="late")
    reopened = store.create("src", _request("revisor/a"))  # the branch has no open one now
    assert reopened.created and reopened.proposal.number == 3
    assert store.find_by_branch("src", "revisor/a") == reopened.proposal
    assert store.find_by_branch("src", "revisor/a", status=ProposalStatus.MERGED) == merged
    assert [p.number for p in store.list("src")] == [3, 2, 1]
    assert [p.number for p in store.list("src", ProposalStatus.MERGED)] == [1]
    with pytest.raises(ProposalNotFound):
        store.get("src", 99)
    comment = store.add_comment("src", 2, ALICE, "looks good")
    assert [c.text for c in store.comments("src", 2)] == ["looks good"]
    assert comment.author_email == "alice@example.com"


def test_one_open_proposal_per_branch_under_a_thread_race(db: Database) -> None:
    store = ProposalStore(db)
    barrier = threading.Barrier(6)

    def attempt(_: int) -> tuple[int, bool]:
        barrier.wait(timeout=30)
        opened = store.create("src", _request("revisor/same"))
        return opened.proposal.number, opened.created

    with ThreadPoolExecutor(6) as pool:
        results = list(pool.map(attempt, range(6)))
    assert sum(created for _, created in results) == 1
    assert {n for n, _ in results} == {1}


def _create_proposals(url: str, worker: int, count: int, barrier: Any, queue: Any) -> None:
    store = ProposalStore(Database(url))
    barrier.wait(timeout=60)
    try:
        queue.put([store.create("src", _request(f"w{worker}/{i}")).proposal.number
                   for i in range(count)])
    except Exception as exc:  # reported to the parent
        queue.put([repr(exc)])


def test_numbers_from_concurrent_processes_are_unique_and_dense(
    db: Database, db_url: str
) -> None:
    ctx = multiprocessing.get_context("spawn")
    barrier, queue = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_create_proposals, args=(db_url, w, 15, barrier, queue))
             for w in range(3)]
    for p in procs:
        p.start()
    numbers = [n for _ in procs for n in queue.get(timeout=180)]
    for p in procs:
        p.join(timeout=60)
    assert sorted(numbers) == list(range(1, 46)), numbers
