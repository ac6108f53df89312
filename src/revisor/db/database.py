"""The one door to the SQL database: engine, sessions and migrations, for SQLite and PostgreSQL.

Why this module exists: Revisor keeps its metadata (proposals, the transaction journal, the audit
log) in SQL (DESIGN principle 7) — an SQLite file under ``data_dir`` by default, PostgreSQL when
several nodes share it. Everything dialect-specific lives here, so the models, the migrations and
the data-access modules stay portable:

- SQLite is opened in WAL mode (readers never wait for the writer), with a 30 s busy timeout and
  foreign keys on, from a ``connect`` event, and is safe from many threads and processes.
  Python's ``sqlite3`` driver would start transactions lazily (only before the first write), so a
  session that reads, then writes, could fail at once with "database is locked" when another
  writer got in between. SQLAlchemy takes over ``BEGIN`` instead: a write session starts with
  ``BEGIN IMMEDIATE`` (it takes the write lock first, waiting up to the busy timeout), a read-only
  one with a plain ``BEGIN``. So a write session's reads are never stale: "read the highest
  number, insert the next" is atomic across processes.
- PostgreSQL runs at READ COMMITTED; the data-access modules make each race end in a unique
  constraint and retry it inside a savepoint, which is portable to both.
- :meth:`Database.migrate` runs Alembic's ``upgrade head`` from inside the package, once at a
  time: under a file lock next to an SQLite file, under an advisory lock on PostgreSQL. Two
  processes starting together both return with the schema current.

Constructing a :class:`Database` does no I/O; the engine is made on first use (and remade in a
forked child, which must not share its parent's connections).
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import filelock
from sqlalchemy import Engine, create_engine, event, exc, text
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from revisor.errors import DatabaseUnavailable, InvalidInput

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

__all__ = ["BUSY_TIMEOUT", "DB_FILE", "MIGRATIONS", "Database"]

DB_FILE = "revisor.db"
MIGRATIONS = Path(__file__).with_name("migrations")
BUSY_TIMEOUT = 30.0
"""Seconds an SQLite connection waits for a lock before giving up."""

_WRITE = "revisor_write"  # execution option: this connection's transactions start IMMEDIATE
_PG_MIGRATE_LOCK = 0x7265_7669_736F_72  # "revisor": pg_advisory_lock key for migrations
_SQLITE_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
_SUPPORTED = ("sqlite", "postgresql")


class Database:
    """One SQL database, by SQLAlchemy URL (``sqlite:///path``, ``postgresql+psycopg://…``)."""

    def __init__(self, url: str | URL, *, echo: bool = False) -> None:
        try:
            self.url = make_url(url)
        except exc.ArgumentError as e:
            raise InvalidInput(f"invalid database URL: {e}") from None
        backend = self.url.get_backend_name()
        if backend not in _SUPPORTED:
            raise InvalidInput(
                f"unsupported database {backend!r}",
                hint="use sqlite:///path/to/revisor.db or postgresql+psycopg://…",
            )
        self.echo = echo
        self._engine: Engine | None = None
        self._pid = os.getpid()
        self._lock = threading.Lock()
        self._migrate_lock = threading.Lock()
        self._read: sessionmaker[Session] | None = None
        self._write: sessionmaker[Session] | None = None

    @classmethod
    def for_data_dir(cls, data_dir: Path) -> Database:
        """The embedded default: an SQLite file ``<data_dir>/revisor.db`` (made on first use,
        with its parent directories)."""
        return cls(URL.create("sqlite", database=str(Path(data_dir).absolute() / DB_FILE)))

    def __repr__(self) -> str:
        return f"Database({self.url.render_as_string(hide_password=True)!r})"

    # -- the engine -------------------------------------------------------------------------------
    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    @property
    def sqlite_path(self) -> Path | None:
        """The SQLite file, or None (PostgreSQL, or an in-memory SQLite database)."""
        if not self.is_sqlite or self.url.database in (None, "", ":memory:"):
            return None
        return Path(str(self.url.database)).absolute()

    @property
    def engine(self) -> Engine:
        with self._lock:
            if self._engine is not None and self._pid != os.getpid():
                # A forked child: forget the parent's pooled connections without closing them.
                self._engine.dispose(close=False)
                self._pid = os.getpid()
            if self._engine is None:
                self._engine = self._create_engine()
                self._read = sessionmaker(self._engine, expire_on_commit=False)
                self._write = sessionmaker(
                    self._engine.execution_options(**{_WRITE: True}), expire_on_commit=False
                )
            return self._engine

    def _create_engine(self) -> Engine:
        if not self.is_sqlite:
            return create_engine(self.url, echo=self.echo, pool_pre_ping=True)
        path = self.sqlite_path
        kwargs: dict[str, Any] = {}
        if path is None:
            kwargs["poolclass"] = StaticPool  # one in-memory database, shared by all threads
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url,
            echo=self.echo,
            connect_args={"timeout": BUSY_TIMEOUT, "check_same_thread": False},
            **kwargs,
        )
        in_memory = path is None

        @event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: sqlite3.Connection, _record: object) -> None:
            dbapi_connection.isolation_level = None  # SQLAlchemy emits BEGIN (see _on_begin)
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT * 1000)}")
                if not in_memory:
                    cursor.execute("PRAGMA journal_mode = WAL")
                    cursor.execute("PRAGMA synchronous = NORMAL")
                cursor.execute("PRAGMA foreign_keys = ON")
            finally:
                cursor.close()

        @event.listens_for(engine, "begin")
        def _on_begin(conn: Connection) -> None:
            immediate = conn.get_execution_options().get(_WRITE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

        return engine

    def dispose(self) -> None:
        """Close every pooled connection (the engine is made again on next use)."""
        with self._lock:
            if self._engine is not None:
                self._engine.dispose()
            self._engine = None

    # -- sessions ---------------------------------------------------------------------------------
    @contextmanager
    def session(self, *, write: bool = True) -> Iterator[Session]:
        """A session in one transaction: committed when the block ends, rolled back on error.

        ``write=False`` is for sessions that only read: on SQLite they do not take the write
        lock, so they never wait for a writer. Database errors meaning "busy, try again" (a lock
        held past the busy timeout, a lost connection, a deadlock) become
        :class:`~revisor.errors.DatabaseUnavailable`.
        """
        self.engine  # noqa: B018 - makes the session factories (and remakes them after a fork)
        maker = self._write if write else self._read
        assert maker is not None
        try:
            with maker() as session, session.begin():
                yield session
        except exc.OperationalError as e:
            if _unavailable(e):
                raise DatabaseUnavailable(
                    f"the database is busy or unreachable: {e.orig}", retry_after=1.0
                ) from e
            raise

    # -- migrations -------------------------------------------------------------------------------
    def alembic_config(self) -> AlembicConfig:
        """Alembic's configuration for the migrations shipped in this package."""
        from alembic.config import Config as AlembicConfig  # imported when needed: ~0.5 s

        cfg = AlembicConfig()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        cfg.set_main_option(
            "sqlalchemy.url", self.url.render_as_string(hide_password=False).replace("%", "%%")
        )
        return cfg

    def migrate(self, revision: str = "head") -> None:
        """Bring the schema to ``revision`` (the newest by default). Idempotent; safe when
        several threads or processes call it at once (they take turns)."""
        from alembic import command

        cfg = self.alembic_config()
        with (
            self._migrate_lock,
            self._cross_process_lock(),
            self.engine.execution_options(**{_WRITE: True}).begin() as conn,
        ):
            if not self.is_sqlite:
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_MIGRATE_LOCK})
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)

    def current_revision(self) -> str | None:
        """The schema revision the database is at (None: never migrated)."""
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            rev: str | None = MigrationContext.configure(conn).get_current_revision()
            return rev

    def _cross_process_lock(self) -> AbstractContextManager[object]:
        path = self.sqlite_path
        if path is None:
            return nullcontext()  # PostgreSQL: the advisory lock; in memory: this process only
        path.parent.mkdir(parents=True, exist_ok=True)
        return filelock.FileLock(str(path) + ".migrate.lock", timeout=600)


def _unavailable(error: exc.OperationalError) -> bool:
    code = getattr(error.orig, "sqlite_errorcode", None)
    if isinstance(code, int):
        return (code & 0xFF) in _SQLITE_BUSY
    return True  # PostgreSQL: connection lost, deadlock, lock or statement timeout
