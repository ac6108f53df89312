"""Stored last-commit listings: one row per (source, commit, directory), written once.

Why this module exists: a browser shows, next to every entry of a directory, the commit that last
touched it; computing that walks history, so ``revisor.core.lastcommits`` keeps each answer here
and fills new ones from old ones. A listing of one commit never changes (history below a commit is
immutable), so rows are only ever inserted: two processes computing the same listing both insert,
and the second insert is ignored (``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL),
never an error. Only complete listings are stored: a partial answer (a time budget ran out) is
never written, so a row always means "this is the whole answer".

The listing itself is an opaque, compact text (``core.lastcommits`` encodes and decodes it); the
directory is keyed by the SHA-256 of its path, so that paths of any length fit one unique index on
both databases.
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection
from datetime import datetime

from sqlalchemy import String, Text, UniqueConstraint, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Mapped, mapped_column

from revisor.db.database import Database
from revisor.db.models import NAME, SHA, Base, utcnow

__all__ = ["LastCommitRow", "LastCommitStore", "path_key"]


def path_key(path: str) -> str:
    """The directory's key column: the hex SHA-256 of its path ("" for the root)."""
    return hashlib.sha256(path.encode("utf-8", "surrogateescape")).hexdigest()


class LastCommitRow(Base):
    """One complete last-commit listing of directory ``path`` at ``commit`` in ``source``."""

    __tablename__ = "last_commit_listings"

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(NAME))
    commit: Mapped[str] = mapped_column(String(SHA))
    path_key: Mapped[str] = mapped_column(String(64))  # sha256(path): fits any index
    path: Mapped[str] = mapped_column(Text)  # informative: the key is path_key
    payload: Mapped[str] = mapped_column(Text)  # the encoded listing (core.lastcommits)
    created_at: Mapped[datetime]

    # (source, directory) first: the commits holding listings of one directory are one range.
    __table_args__ = (UniqueConstraint("source", "path_key", "commit"),)


class LastCommitStore:
    """Data access for stored listings; values in and out are plain strings."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def get(self, source: str, commit: str, path: str) -> str | None:
        """The stored payload of (source, commit, path), or None."""
        found = self.get_many(source, (commit,), path)
        return found.get(commit)

    def get_many(self, source: str, commits: Collection[str], path: str) -> dict[str, str]:
        """The stored payloads of directory ``path`` at any of ``commits``, by commit."""
        if not commits:
            return {}
        query = select(LastCommitRow.commit, LastCommitRow.payload).where(
            LastCommitRow.source == source,
            LastCommitRow.path_key == path_key(path),
            LastCommitRow.commit.in_(list(commits)),
        )
        with self.db.session(write=False) as s:
            return {commit: payload for commit, payload in s.execute(query)}

    def commits(self, source: str, path: str, *, limit: int = 20_000) -> set[str]:
        """The commits at which a listing of directory ``path`` is stored (the newest ``limit``
        stored, when there are more)."""
        query = (
            select(LastCommitRow.commit)
            .where(LastCommitRow.source == source, LastCommitRow.path_key == path_key(path))
            .order_by(LastCommitRow.id.desc())
            .limit(limit)
        )
        with self.db.session(write=False) as s:
            return set(s.scalars(query))

    def put(self, source: str, commit: str, path: str, payload: str) -> bool:
        """Store a complete listing; False when one was already stored (it is kept: both are the
        same answer)."""
        values = {
            "source": source, "commit": commit, "path_key": path_key(path),
            # for people reading the table: non-UTF-8 bytes of a name written as \xNN
            "path": path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace"),
            "payload": payload, "created_at": utcnow(),
        }
        dialect = sqlite if self.db.is_sqlite else postgresql
        statement = (
            dialect.insert(LastCommitRow)
            .values(**values)
            .on_conflict_do_nothing(index_elements=["source", "path_key", "commit"])
            .returning(LastCommitRow.id)
        )
        with self.db.session(write=True) as s:
            return s.execute(statement).first() is not None

    def count(self, source: str | None = None) -> int:
        """How many listings are stored (for one source, or all)."""
        query = select(func.count()).select_from(LastCommitRow)
        if source is not None:
            query = query.where(LastCommitRow.source == source)
        with self.db.session(write=False) as s:
            return int(s.execute(query).scalar_one())

    def forget(self, source: str) -> int:
        """Drop every listing of ``source`` (e.g. when it is removed); returns how many."""
        with self.db.session(write=True) as s:
            result = s.execute(delete(LastCommitRow).where(LastCommitRow.source == source))
            return int(getattr(result, "rowcount", 0))
