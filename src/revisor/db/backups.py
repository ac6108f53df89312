"""What each source's backup remote was verified to hold: per ref, per record, and its status.

Why this module exists: cleanup must never delete what the backup has not saved (DESIGN
principle 6), so "saved" has to be a fact in the shared database, not a hope. A backup run
pushes, then lists the backup remote, and only what it *saw there* is recorded here:

- ``backup_refs``: ref name → the object id the backup remote was seen holding, and when;
- ``backup_records``: a candidate's or workspace's metadata record (by its path in the metadata
  commit, e.g. ``candidates/7.json``) → the blob id of the record's JSON the remote holds;
- ``backup_status``: per source, the backup URL (redacted) the confirmations are about, the
  metadata commit last confirmed, the last attempt, the last success and the last error.

A record's *version* is the git blob id of its canonical JSON: equal content, equal version,
computed without writing anything. Confirmations for a URL that is no longer the configured one
are worthless and are dropped (:meth:`BackupStore.reset_if_moved`). Callers get frozen
dataclasses; every write takes an optional fence, called inside the same database transaction.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any

from sqlalchemy import String, Text, delete, insert, select, text
from sqlalchemy.orm import Mapped, Session, mapped_column

from revisor.db.database import Database
from revisor.db.models import NAME, REF, SHA, Base, CandidateRow, UTCDateTime, WorkspaceRow, utcnow
from revisor.errors import StoreCorrupt
from revisor.vcs import ObjectId

__all__ = [
    "BackupRecordRow",
    "BackupRefRow",
    "BackupStatus",
    "BackupStatusRow",
    "BackupStore",
    "Confirmed",
    "Fence",
    "export_records",
    "import_records",
    "no_fence",
    "record_path",
]

Fence = Callable[[Session | None], None]
"""Raises :class:`~revisor.errors.LeaseLost` when the caller's lease is no longer current; given
the session about to write, the check is part of that transaction."""


def no_fence(session: Session | None) -> None:
    """The fence of a caller that holds no lease (a test, the restore command)."""


class BackupRefRow(Base):
    """One ref the backup remote was seen holding at ``confirmed_at``."""

    __tablename__ = "backup_refs"

    source: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    ref: Mapped[str] = mapped_column(String(REF), primary_key=True)
    sha: Mapped[str] = mapped_column(String(SHA))
    confirmed_at: Mapped[datetime]


class BackupRecordRow(Base):
    """One metadata record (``candidates/<id>.json``, ``workspaces/<id>/<user>.json``) whose
    version (blob id) the backup's metadata commit was seen holding."""

    __tablename__ = "backup_records"

    source: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    path: Mapped[str] = mapped_column(String(REF), primary_key=True)
    version: Mapped[str] = mapped_column(String(SHA))
    confirmed_at: Mapped[datetime]


class BackupStatusRow(Base):
    """Per source: which backup URL the confirmations are about, and how the last runs went."""

    __tablename__ = "backup_status"

    source: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    url: Mapped[str] = mapped_column(Text)  # redacted: never a secret
    meta_commit: Mapped[str | None] = mapped_column(String(SHA))
    last_attempt_at: Mapped[datetime | None]
    last_ok_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


@dataclass(frozen=True)
class BackupStatus:
    """How a source's backups went (None fields: never)."""

    source: str
    url: str
    meta_commit: ObjectId | None
    last_attempt_at: datetime | None
    last_ok_at: datetime | None
    last_error: str | None


@dataclass(frozen=True)
class Confirmed:
    """What the backup remote of one source was verified to hold."""

    refs: Mapping[str, ObjectId] = field(default_factory=dict)
    records: Mapping[str, ObjectId] = field(default_factory=dict)
    status: BackupStatus | None = None


def _status(row: BackupStatusRow) -> BackupStatus:
    return BackupStatus(
        row.source, row.url, ObjectId(row.meta_commit) if row.meta_commit else None,
        row.last_attempt_at, row.last_ok_at, row.last_error,
    )


class BackupStore:
    """Backup confirmations in ``db``. Constructing it does no I/O."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @contextmanager
    def _write(self, fence: Fence) -> Iterator[Session]:
        with self.db.session() as s:
            fence(s)
            yield s

    def confirmed(self, source: str) -> Confirmed:
        """Everything confirmed for ``source`` (empty when it was never backed up)."""
        with self.db.session(write=False) as s:
            refs = {
                r: ObjectId(sha) for r, sha in s.execute(
                    select(BackupRefRow.ref, BackupRefRow.sha).where(BackupRefRow.source == source)
                )
            }
            records = {
                p: ObjectId(v) for p, v in s.execute(
                    select(BackupRecordRow.path, BackupRecordRow.version)
                    .where(BackupRecordRow.source == source)
                )
            }
            row = s.get(BackupStatusRow, source)
            return Confirmed(MappingProxyType(refs), MappingProxyType(records),
                             _status(row) if row is not None else None)

    def status(self, source: str) -> BackupStatus | None:
        with self.db.session(write=False) as s:
            row = s.get(BackupStatusRow, source)
            return _status(row) if row is not None else None

    def _status_row(self, s: Session, source: str, url: str) -> BackupStatusRow:
        row = s.get(BackupStatusRow, source)
        if row is None:
            row = BackupStatusRow(source=source, url=url, meta_commit=None, last_attempt_at=None,
                                  last_ok_at=None, last_error=None)
            s.add(row)
        return row

    def reset_if_moved(self, source: str, url: str, *, fence: Fence = no_fence) -> bool:
        """Drop every confirmation of ``source`` if they were about another backup URL; True if
        something was dropped (the next backup is then a full one)."""
        with self._write(fence) as s:
            row = s.get(BackupStatusRow, source)
            if row is None or row.url == url:
                return False
            s.execute(delete(BackupRefRow).where(BackupRefRow.source == source))
            s.execute(delete(BackupRecordRow).where(BackupRecordRow.source == source))
            row.url = url
            row.meta_commit = None
            return True

    def confirm(
        self,
        source: str,
        url: str,
        *,
        refs: Mapping[str, ObjectId | None],
        records: Mapping[str, ObjectId | None],
        meta_commit: ObjectId | None = None,
        at: datetime | None = None,
        fence: Fence = no_fence,
    ) -> None:
        """Record what was verified on the backup remote: each ref or record at its value, or
        (None) verified absent there, which removes its confirmation. One transaction."""
        at = at or utcnow()
        with self._write(fence) as s:
            self._apply(s, source, refs, records, at)
            row = self._status_row(s, source, url)
            if meta_commit is not None:
                row.meta_commit = meta_commit
            row.last_attempt_at = at
            row.last_ok_at = at
            row.last_error = None

    def forget(
        self,
        source: str,
        *,
        refs: Mapping[str, ObjectId | None] = MappingProxyType({}),
        records: Mapping[str, ObjectId | None] = MappingProxyType({}),
        meta_commit: ObjectId | None = None,
        fence: Fence = no_fence,
    ) -> None:
        """Record refs and records (None: gone) without counting as a backup run (cleanup,
        after deleting them on the backup remote and verifying it), and the metadata commit
        the backup now holds, if given."""
        at = utcnow()
        with self._write(fence) as s:
            self._apply(s, source, refs, records, at)
            if meta_commit is not None:
                row = s.get(BackupStatusRow, source)
                if row is not None:
                    row.meta_commit = meta_commit

    @staticmethod
    def _apply(
        s: Session,
        source: str,
        refs: Mapping[str, ObjectId | None],
        records: Mapping[str, ObjectId | None],
        at: datetime,
    ) -> None:
        # Delete, then insert: one statement per 500 keys and one executemany, whatever the
        # mix of new and changed confirmations (a first backup of 10,000 refs is one insert).
        for table, key, value_col, items in (
            (BackupRefRow, "ref", "sha", refs),
            (BackupRecordRow, "path", "version", records),
        ):
            names = list(items)
            column = getattr(table, key)
            for i in range(0, len(names), 500):
                s.execute(delete(table).where(table.source == source,
                                              column.in_(names[i:i + 500])))
            rows = [{"source": source, key: k, value_col: v, "confirmed_at": at}
                    for k, v in items.items() if v is not None]
            if rows:
                s.execute(insert(table), rows)

    def failed(self, source: str, url: str, error: str, *, at: datetime | None = None) -> None:
        """Record a failed attempt (nothing is confirmed by it). ``error`` must be redacted."""
        at = at or utcnow()
        with self.db.session() as s:
            row = self._status_row(s, source, url)
            row.last_attempt_at = at
            row.last_error = error


# -- the records themselves -----------------------------------------------------------------------
_CANDIDATES = "candidates/"
_WORKSPACES = "workspaces/"


def record_path(candidate_id: int, ref_name: str | None = None) -> str:
    """Where a record lives in the metadata commit: ``candidates/<id>.json`` or
    ``workspaces/<id>/<encoded user>.json`` (the encoded user is one safe path component)."""
    if ref_name is None:
        return f"{_CANDIDATES}{candidate_id}.json"
    return f"{_WORKSPACES}{candidate_id}/{ref_name}.json"


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    return value


def _row_json(row: Mapping[Any, Any]) -> bytes:
    # Every column, as stored (JSON columns stay the text they are): what restore inserts back.
    data = {key: _encode(value) for key, value in row.items()}
    return json.dumps(data, sort_keys=True, ensure_ascii=False).encode() + b"\n"


def export_records(db: Database, source: str) -> dict[str, bytes]:
    """Every candidate and workspace row of ``source`` as canonical JSON, by record path: the
    same rows give the same bytes (so the same blob ids). Read in one transaction, as plain
    rows (no ORM objects: ten thousand workspaces cost a tenth of the time)."""
    out: dict[str, bytes] = {}
    candidates = CandidateRow.__table__
    workspaces = WorkspaceRow.__table__
    with db.session(write=False) as s:
        for cand in s.execute(
            select(candidates).where(candidates.c.source == source)
        ).mappings():
            out[record_path(cand["id"])] = _row_json(cand)
        for ws in s.execute(
            select(workspaces).join(candidates, workspaces.c.candidate_id == candidates.c.id)
            .where(candidates.c.source == source)
        ).mappings():
            out[record_path(ws["candidate_id"], ws["ref_name"])] = _row_json(ws)
    return out


def _decode_row(table: type[Base], path: str, data: bytes) -> dict[str, Any]:
    try:
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise TypeError("not an object")
        values: dict[str, Any] = {}
        for column in table.__table__.columns:
            value = raw[column.key]
            if value is not None and isinstance(column.type, UTCDateTime):
                value = datetime.fromisoformat(value)
            values[column.key] = value
        return values
    except (ValueError, TypeError, KeyError) as exc:
        raise StoreCorrupt(path, f"not a {table.__tablename__} record: {exc}") from exc


def import_records(
    session: Session, source: str, records: Mapping[str, bytes]
) -> tuple[int, int]:
    """Insert the rows the records describe (candidates first, keeping their ids) into
    ``session``; (candidates, workspaces) inserted. A candidate record of another source is
    refused (StoreCorrupt): a backup is restored only into the source it was made for."""
    candidates = []
    workspaces = []
    for path, data in sorted(records.items()):
        if path.startswith(_CANDIDATES):
            row = _decode_row(CandidateRow, path, data)
            if row["source"] != source:
                raise StoreCorrupt(path, f"a record of source {row['source']!r}, not {source!r}")
            candidates.append(row)
        elif path.startswith(_WORKSPACES):
            workspaces.append(_decode_row(WorkspaceRow, path, data))
    if candidates:
        session.execute(insert(CandidateRow), candidates)
    if workspaces:
        session.execute(insert(WorkspaceRow), workspaces)
    if session.get_bind().dialect.name == "postgresql":  # explicit ids: move the sequences on
        for table in ("candidates", "workspaces"):
            session.execute(text(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "  # noqa: S608
                f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
            ))
    return len(candidates), len(workspaces)
