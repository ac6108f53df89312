"""The stored side of the last-commit cache on SQLite and on a real PostgreSQL (the server that
``tests/unit/test_db.py`` starts): migration 0005 matches the model and can be undone, a key is
written once (a second insert is ignored, not an error, also when threads with their own
connections and processes race on it), and a listing computed by one cache is answered by another
cache over another connection — a restart — on both databases, equal to ``git log -1``.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from revisor.core.lastcommits import LastCommitCache
from revisor.db import Database
from revisor.db.lastcommits import LastCommitStore, path_key
from revisor.db.models import Base
from revisor.vcs import Repository
from tests.compat.test_lastcommit_cache import Reference, linear
from tests.gitutil import GitRepo
from tests.unit.test_db import _pg_database, postgres  # noqa: F401 - the session's server

TABLE = "last_commit_listings"
SHA = "a" * 40


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
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


def _mine(diffs: list[Any]) -> list[Any]:
    """The schema differences that concern the last-commit table."""
    return [d for d in diffs if TABLE in repr(d)]


def test_migration_matches_the_model_and_can_be_undone(db: Database) -> None:
    assert TABLE in inspect(db.engine).get_table_names()
    with db.engine.connect() as conn:
        assert _mine(compare_metadata(MigrationContext.configure(conn), Base.metadata)) == []
    cfg = db.alembic_config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    db.dispose()
    assert TABLE not in inspect(db.engine).get_table_names()
    db.migrate()
    assert TABLE in inspect(db.engine).get_table_names()


def test_put_get_and_insert_or_ignore(db: Database) -> None:
    store = LastCommitStore(db)
    assert store.get("s", SHA, "") is None
    assert store.put("s", SHA, "", '{"v":1}') is True
    assert store.put("s", SHA, "", '{"v":"other"}') is False  # the first answer stays
    assert store.get("s", SHA, "") == '{"v":1}'
    long_path = "/".join(["directory-with-a-long-name"] * 200)  # beyond any index's key size
    assert store.put("s", SHA, long_path, "deep") is True
    assert store.put("t", SHA, "", "another source") is True
    assert store.get("s", SHA, long_path) == "deep"
    assert store.get_many("s", [SHA, "b" * 40], "") == {SHA: '{"v":1}'}
    assert store.commits("s", "") == {SHA} and store.commits("s", "missing") == set()
    assert store.count() == 3 and store.count("s") == 2
    assert path_key(long_path) != path_key("") and len(path_key(long_path)) == 64
    assert store.forget("s") == 2
    assert store.count() == 1


def test_threads_with_their_own_connections_race_on_one_key(db_url: str, db: Database) -> None:
    databases = [Database(db_url) for _ in range(6)]
    try:
        with ThreadPoolExecutor(6) as pool:
            results = list(pool.map(
                lambda d: LastCommitStore(d).put("s", SHA, "dir", "payload"), databases))
        assert sorted(results) == [False] * 5 + [True]
        assert LastCommitStore(db).count() == 1
    finally:
        for d in databases:
            d.dispose()


def _fill(url: str, path: str, head: str, barrier: Any, queue: Any) -> None:
    barrier.wait(timeout=60)
    try:
        db = Database(url)
        with Repository.open(path) as repo:
            cache = LastCommitCache(db, "proj", repo)
            listing = cache.listing(head, "sub")
            queue.put({n: c.id if c else None for n, c in listing.entries.items()})
            cache.close()
        db.dispose()
    except Exception as exc:  # reported to the parent
        queue.put(repr(exc))


def test_processes_filling_the_same_key(db_url: str, db: Database, git_repo: GitRepo) -> None:
    linear(git_repo, commits=4)
    head = git_repo.head()
    ctx = multiprocessing.get_context("fork")  # spawn would re-import everything: slow
    barrier, queue = ctx.Barrier(3), ctx.Queue()
    args = (db_url, str(git_repo.path), head, barrier, queue)
    procs = [ctx.Process(target=_fill, args=args) for _ in range(3)]
    for p in procs:
        p.start()
    results = [queue.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(60)
    expected = Reference(git_repo).answers(head, "sub")
    assert results == [expected] * 3
    assert LastCommitStore(db).count() == 1


def test_a_restarted_cache_answers_from_the_database(
    db_url: str, db: Database, git_repo: GitRepo
) -> None:
    linear(git_repo)
    ref = Reference(git_repo)
    head = git_repo.head()
    with Repository.open(git_repo.path) as repo:
        first = LastCommitCache(db, "proj", repo)
        for directory in ("", "sub"):
            ref.check(first.listing(head, directory), head, directory)
        git_repo.write("sub/s2", "new")
        child = git_repo.commit("child")
        ref.check(first.listing(child, "sub"), child, "sub")
        assert first.stats.walks == 2 and first.stats.reused == 1
    again = Database(db_url)
    try:
        with Repository.open(git_repo.path) as repo:
            second = LastCommitCache(again, "proj", repo)
            for commit, directory in ((head, ""), (head, "sub"), (child, "sub")):
                listing = second.listing(commit, directory)
                assert listing.from_cache
                ref.check(listing, commit, directory)
            assert second.stats.db_hits == 3 and second.stats.fills == 0
    finally:
        again.dispose()
